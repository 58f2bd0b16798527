"""The caption request shared by the ``vlm`` and ``vllm`` backends: prompt, chat turn and clean-up."""

import re

from recbole_mllmr1.prompts import generation_prompt

DEFAULT_VLM_MODEL = "Qwen/Qwen2.5-VL-3B-Instruct"
# In the paper's spirit: the recommender should learn what an item looks like, not re-read its title.
DEFAULT_CAPTION_PROMPT = (
    "Describe this image in at most 50 words: its visual content, style and mood. "
    "Do not mention or guess any title or names, and do not transcribe text."
)
MAX_CAPTION_WORDS = 50
SEED = 0  # generation is greedy; the seed pins whatever a backend still draws at random
MAX_NEW_TOKENS = 96  # 50 English words are ~70 tokens; the rest is headroom before the word cap cuts


def caption_messages(prompt):
    """One user turn: the image, then the instruction (the order the VLM chat templates expect)."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def caption_prompt_text(processor, prompt):
    """The model's own chat template applied to the caption turn, ready for generation."""
    return generation_prompt(processor, caption_messages(prompt))


def clean_caption(text, max_words=MAX_CAPTION_WORDS):
    """One line, at most ``max_words`` words: the prompt asks for that, the model may not comply."""
    words = re.sub(r"\s+", " ", text).strip().split(" ")
    return " ".join(words[:max_words]).strip()
