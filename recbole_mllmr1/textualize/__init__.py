"""Offline image textualization: each item image becomes a short text, so the LLM recommender never sees visual tokens.

>>> from recbole_mllmr1.textualize import textualize_images
>>> result = textualize_images({"2": "posters/2.jpg"}, backend="offline", dataset="ml-100k")  # doctest: +SKIP
>>> result.texts["2"]  # doctest: +SKIP
'High-contrast image, mostly blue, black and orange. Resembles: bra. Text: "GOLDENEYE 007".'
"""

from recbole_mllmr1.textualize.backends import BACKENDS
from recbole_mllmr1.textualize.caption import DEFAULT_CAPTION_PROMPT
from recbole_mllmr1.textualize.pipeline import TextualizationResult, default_cache_dir, textualize_images

__all__ = ["BACKENDS", "DEFAULT_CAPTION_PROMPT", "TextualizationResult", "default_cache_dir", "textualize_images"]
