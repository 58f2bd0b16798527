"""The ``vllm`` backend: the ``vlm`` captions through vLLM offline inference, for large catalogues on a GPU.

NOTE: vLLM does not run on this project's CPU machines, so only the request building and
the missing-vLLM error are tested here; the generation call follows vLLM's documented
offline multimodal API (``LLM.generate`` with ``multi_modal_data={"image": pil_image}``).
vLLM is imported only when this backend is used.
"""
import functools

from recbole_mllmr1.optional_packages import require_vllm
from recbole_mllmr1.textualize.caption import (
    DEFAULT_CAPTION_PROMPT,
    DEFAULT_VLM_MODEL,
    MAX_NEW_TOKENS,
    SEED,
    caption_prompt_text,
    clean_caption,
)


def build_requests(prompt_text, images):
    """One vLLM prompt dict per image: the chat-formatted caption prompt plus the image itself."""
    return [{"prompt": prompt_text, "multi_modal_data": {"image": image}} for image in images]


class VLLMDescriber:
    backend = "vllm"

    def __init__(self, model=None, prompt=None):
        # Fail before any file is read, not at the first batch.
        require_vllm("The 'vllm' textualize backend", "use backend 'vlm' (transformers, CPU or GPU) or 'offline' (CPU)")
        self.model = model or DEFAULT_VLM_MODEL
        self.prompt = prompt or DEFAULT_CAPTION_PROMPT

    @functools.cached_property
    def _engine(self):
        import vllm

        return vllm.LLM(model=self.model, seed=SEED, limit_mm_per_prompt={"image": 1})

    @functools.cached_property
    def _prompt_text(self):
        from transformers import AutoProcessor

        return caption_prompt_text(AutoProcessor.from_pretrained(self.model), self.prompt)

    def describe(self, images):
        import vllm

        sampling = vllm.SamplingParams(temperature=0.0, max_tokens=MAX_NEW_TOKENS, seed=SEED)
        outputs = self._engine.generate(build_requests(self._prompt_text, images), sampling, use_tqdm=False)
        return [clean_caption(output.outputs[0].text) for output in outputs]
