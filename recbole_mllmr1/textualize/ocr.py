"""Printed text on an image, read by RapidOCR (``rapidocr-onnxruntime``, Apache-2.0).

The wheel ships its PP-OCRv4 ONNX detection and recognition models, so nothing is
downloaded. The engine loads once per process, on first use.
"""
import functools
import logging

import numpy as np

# The detector enlarges an image until its short side reaches this. Its default, 736, made
# 92-px posters 8x larger: 4x slower and no better (measured on 30 ml-100k posters).
_DETECTOR_SHORT_SIDE = 480
_INSTALL_HINT = "pip install rapidocr-onnxruntime"


@functools.lru_cache(maxsize=1)
def load_ocr_engine():
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as error:
        raise ImportError(f"The offline textualizer needs {error.name}: run `{_INSTALL_HINT}`.") from error
    engine = RapidOCR(det_limit_side_len=_DETECTOR_SHORT_SIDE)
    # RapidOCR logs every result at INFO on its own handler; keep the run's log readable.
    logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return engine


def read_text(image, min_confidence=0.7, max_words=10):
    """The words printed on an RGB PIL image, top to bottom, at most ``max_words`` of them."""
    # RapidOCR takes OpenCV's BGR channel order.
    lines, _ = load_ocr_engine()(np.ascontiguousarray(np.asarray(image)[:, :, ::-1]))
    words = []
    for _box, text, confidence in lines or []:
        if float(confidence) >= min_confidence:
            words.extend(text.split())
    return " ".join(words[:max_words])
