"""Backend names -> describers. A describer has ``backend``, ``model`` and ``prompt`` (its cache identity)
and ``describe(images) -> list[str]``, one text per RGB PIL image, in order.
"""

import functools

BACKENDS = ("offline", "vlm", "vllm", "none")


@functools.lru_cache(maxsize=4)
def make_describer(backend, model=None, prompt=None):
    """The describer for ``backend``, made once per process and arguments (so models load once); None for 'none'."""
    if backend not in BACKENDS:
        raise ValueError(f"textualize backend [{backend}] is not one of {', '.join(BACKENDS)}.")
    if backend in ("offline", "none") and (model or prompt):
        raise ValueError(
            f"textualize backend '{backend}' takes no model or prompt (got model={model!r}, prompt={prompt!r}): "
            "leave them unset, or pick backend 'vlm' or 'vllm'."
        )
    if backend == "none":
        return None
    if backend == "offline":
        from recbole_mllmr1.textualize.offline import OfflineDescriber

        return OfflineDescriber()
    if backend == "vlm":
        from recbole_mllmr1.textualize.vlm import VLMDescriber

        return VLMDescriber(model, prompt)
    from recbole_mllmr1.textualize.vllm_backend import VLLMDescriber

    return VLLMDescriber(model, prompt)
