"""The ``vlm`` backend: captions from any transformers image-text-to-text model (Qwen2.5-VL, Qwen3-VL, LLaVA, ...).

Batched, greedy and seeded, so the same images give the same captions. The model loads on the
first batch that needs it, not when the describer is made, so a fully cached run loads nothing.
"""

import functools

import torch

from recbole_mllmr1.textualize.caption import (
    DEFAULT_CAPTION_PROMPT,
    DEFAULT_VLM_MODEL,
    MAX_NEW_TOKENS,
    SEED,
    caption_prompt_text,
    clean_caption,
)


class VLMDescriber:
    backend = "vlm"

    def __init__(self, model=None, prompt=None):
        self.model = model or DEFAULT_VLM_MODEL
        self.prompt = prompt or DEFAULT_CAPTION_PROMPT
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    @functools.cached_property
    def _processor(self):
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(self.model)
        # Batched generation appends to the last position of every row: pad on the left.
        processor.tokenizer.padding_side = "left"
        return processor

    @functools.cached_property
    def _network(self):
        from transformers import AutoModelForImageTextToText

        # bf16 matmul is ~300x slower than fp32 on CPU; on GPU, bf16 is what these VLMs are released in.
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        network = AutoModelForImageTextToText.from_pretrained(self.model, dtype=dtype)
        return network.to(self.device).eval()

    @functools.cached_property
    def _prompt_text(self):
        return caption_prompt_text(self._processor, self.prompt)

    def describe(self, images):
        network = self._network
        inputs = self._processor(
            text=[self._prompt_text] * len(images), images=list(images), padding=True, return_tensors="pt"
        ).to(self.device, dtype=network.dtype)  # casts only the float tensors (pixels), not token ids
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(SEED)
            output = network.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        return [clean_caption(text) for text in self._processor.batch_decode(new_tokens, skip_special_tokens=True)]
