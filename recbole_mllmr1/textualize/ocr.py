"""Printed text on images, read by RapidOCR (``rapidocr-onnxruntime``, Apache-2.0).

The wheel ships its PP-OCRv4 ONNX detection and recognition models, so nothing is
downloaded. Each worker thread loads its engine once, on first use.
"""

import concurrent.futures
import functools
import logging
import os
import threading

import numpy as np

# The detector enlarges an image until its short side reaches this. Its default, 736, made
# 92-px posters 8x larger: 4x slower and no better (measured on 30 ml-100k posters).
_DETECTOR_SHORT_SIDE = 480
# Below this confidence, words read off ml-100k posters were mostly garbage ('LNIR', 'HLCODN').
DEFAULT_MIN_CONFIDENCE = 0.85
# One single-threaded engine per worker: ONNX Runtime's own thread pool spins while it waits,
# which halved OCR speed on a busy 2-core machine; whole images in parallel scale without that.
_WORKERS = min(4, os.cpu_count() or 1)
_INSTALL_HINT = "pip install rapidocr-onnxruntime"
_engines = threading.local()


def _engine():
    if not hasattr(_engines, "engine"):
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as error:
            raise ImportError(f"The offline textualizer needs {error.name}: run `{_INSTALL_HINT}`.") from error
        _engines.engine = RapidOCR(
            det_limit_side_len=_DETECTOR_SHORT_SIDE, intra_op_num_threads=1, inter_op_num_threads=1
        )
        # RapidOCR logs every result at INFO on its own handler; keep the run's log readable.
        logging.getLogger("RapidOCR").setLevel(logging.WARNING)
    return _engines.engine


@functools.lru_cache(maxsize=1)
def _pool():
    return concurrent.futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="ocr")


def read_text(image, min_confidence=DEFAULT_MIN_CONFIDENCE, max_words=10):
    """The words printed on an RGB PIL image, top to bottom, at most ``max_words`` of them."""
    # RapidOCR takes OpenCV's BGR channel order.
    lines, _ = _engine()(np.ascontiguousarray(np.asarray(image)[:, :, ::-1]))
    words = []
    for _box, text, confidence in lines or []:
        if float(confidence) >= min_confidence:
            words.extend(text.split())
    return " ".join(words[:max_words])


def read_texts(images, min_confidence=DEFAULT_MIN_CONFIDENCE, max_words=10):
    """:func:`read_text` for each image, several images at a time, results in order."""
    return list(_pool().map(lambda image: read_text(image, min_confidence, max_words), images))
