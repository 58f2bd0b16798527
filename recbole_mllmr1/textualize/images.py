"""Read item image files into RGB PIL images, turning every way a file can be bad into a short reason.

A bad file must never stop a textualization run: callers catch :class:`UnreadableImage`,
record its ``reason`` for the item and go on with the others.
"""

import hashlib
import io

from PIL import Image


class UnreadableImage(Exception):
    """The file at ``path`` gives no image; ``reason`` is what is recorded for the item."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise UnreadableImage(path, "missing file") from None
    except IsADirectoryError:
        raise UnreadableImage(path, "a folder, not a file") from None
    except OSError as error:
        raise UnreadableImage(path, f"unreadable file ({error.strerror or error})") from None
    if not data:
        raise UnreadableImage(path, "empty file")
    return data


def file_sha256(path):
    """Hex sha256 of the file's bytes: the cache's key for the image's content."""
    return hashlib.sha256(_read_bytes(path)).hexdigest()


def _decode(path, data):
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise UnreadableImage(path, "image too large") from None
    except (Image.UnidentifiedImageError, ValueError, SyntaxError):
        raise UnreadableImage(path, "not an image") from None
    try:
        # open() reads only the header; decoding every pixel is what exposes a cut-off file.
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        reason = "truncated image" if "truncated" in str(error).lower() else f"corrupt image ({error})"
        raise UnreadableImage(path, reason) from None
    return image


def _to_rgb(image):
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    if not has_alpha:
        return image.convert("RGB")
    # A plain convert("RGB") would show transparent areas as black; describe them as the white they render as.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def read_image(path):
    """``(sha256 of the bytes, fully decoded RGB image)``; raises :class:`UnreadableImage`."""
    data = _read_bytes(path)
    return hashlib.sha256(data).hexdigest(), _to_rgb(_decode(path, data))
