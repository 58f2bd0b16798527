"""The ``offline`` backend: a short description composed from three CPU models shipped in PyPI wheels.

colours (pixel statistics) + concepts (EfficientNet-Lite0 ImageNet classes) + printed text
(RapidOCR), e.g. ``Dark, vivid image, mostly black and blue. Resembles: sunglasses, crash helmet. Text: "COPYCAT".``
"""

from recbole_mllmr1.textualize.colours import describe_colours
from recbole_mllmr1.textualize.concepts import classify
from recbole_mllmr1.textualize.ocr import read_texts

MAX_DESCRIPTION_WORDS = 40


def compose_description(colour_sentence, concepts, printed_text):
    """Join the parts; the printed text gets whatever is left of the word budget."""
    parts = [colour_sentence]
    if concepts:
        parts.append("Resembles: " + ", ".join(concepts) + ".")
    used_words = len(" ".join(parts).split())
    text_words = printed_text.split()[: max(0, MAX_DESCRIPTION_WORDS - used_words - 1)]
    if text_words:
        parts.append('Text: "' + " ".join(text_words) + '".')
    return " ".join(parts)


class OfflineDescriber:
    backend = "offline"
    # Part of every cache key: bump the version whenever the wording or a model changes.
    model = "efficientnet-lite0+rapidocr-ppocrv4+palette/v2"
    prompt = ""

    def describe(self, images):
        concepts, printed_texts = classify(images), read_texts(images)
        return [
            compose_description(describe_colours(image), image_concepts, printed_text)
            for image, image_concepts, printed_text in zip(images, concepts, printed_texts, strict=True)
        ]
