"""Storing item images in the dataset folder: downloaded from URLs or copied from a local folder.

Fetching runs on a bounded thread pool. Transient failures (5xx, 408, 429, connection errors,
timeouts, cut-off transfers) are retried with exponential backoff; anything else (404, a file
that is not an image) fails at once. Every file is checked with PIL before it is written, and is
written to a temporary name then renamed, so an image file that exists is complete: a second
run skips it, which makes an interrupted download resumable.
"""
import hashlib
import http.client
import io
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from tqdm import tqdm

IMAGE_DIR = "images"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")
USER_AGENT = "recbole-mllmr1-dataset-converter/0.1"
JPEG_QUALITY = 90
RETRYABLE_HTTP_STATUSES = frozenset({408, 429})
_SAFE_FILE_STEM = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
# What PIL raises for data that is not a (complete) image.
_IMAGE_DECODING_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)

STORED = "stored"
ALREADY_PRESENT = "already_present"
FAILED = "failed"


@dataclass(frozen=True)
class ImageSettings:
    """How images are fetched; ``max_side`` (pixels) shrinks larger images, keeping their aspect ratio."""

    workers: int = 8
    timeout: float = 20.0
    retries: int = 3
    backoff: float = 1.0
    max_side: int | None = None
    show_progress: bool = False


@dataclass(frozen=True)
class ImageTask:
    """Fetch ``source`` (an http(s) URL or a local file path) into ``destination``."""

    item_id: str
    source: str
    destination: Path


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one task: ``stored``, ``already_present`` or ``failed`` (with the reason)."""

    task: ImageTask
    status: str
    reason: str = ""


class ImageFetchError(Exception):
    """A failed fetch; ``retryable`` tells whether trying again may help."""

    def __init__(self, reason, retryable):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def is_url(source):
    """Whether an image source is fetched over HTTP(S) rather than read from disk."""
    return source.startswith(("http://", "https://"))


def image_file_name(item_id):
    """``<item_id>.jpg``, or a hash of the id when the id is not safe as a file name."""
    stem = item_id if _SAFE_FILE_STEM.fullmatch(item_id) else hashlib.sha1(item_id.encode()).hexdigest()
    return f"{stem}.jpg"


def index_image_folder(folder):
    """``{file stem: path}`` of the image files in ``folder`` (e.g. ``{"1": .../1.jpg}``)."""
    return {
        path.stem: path
        for path in sorted(Path(folder).iterdir())
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    }


def fetch_images(tasks, settings):
    """Run all tasks concurrently; returns one :class:`ImageOutcome` per task, in task order."""
    outcomes = [None] * len(tasks)
    pool = ThreadPoolExecutor(max_workers=settings.workers)
    try:
        futures = {pool.submit(fetch_image, task, settings): index for index, task in enumerate(tasks)}
        done = tqdm(
            as_completed(futures), total=len(tasks), desc="images", unit=" images",
            disable=not settings.show_progress or not tasks,
        )
        for future in done:
            outcomes[futures[future]] = future.result()
    finally:
        # Without cancel_futures an interrupt would wait for every queued download.
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def fetch_image(task, settings):
    """Fetch, check, optionally shrink and store one image, unless a valid copy is already there."""
    if is_complete_image(task.destination, settings.max_side):
        return ImageOutcome(task, ALREADY_PRESENT)
    try:
        data = read_with_retries(task.source, settings)
        write_atomically(task.destination, prepare_image(data, settings.max_side))
    except ImageFetchError as error:
        return ImageOutcome(task, FAILED, error.reason)
    return ImageOutcome(task, STORED)


def is_complete_image(path, max_side=None):
    """Whether ``path`` holds a decodable image no larger than ``max_side``."""
    if not path.is_file():
        return False
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
            return max_side is None or max(image.size) <= max_side
    except _IMAGE_DECODING_ERRORS:
        return False


def read_with_retries(source, settings):
    """The bytes of ``source``, retrying transient failures with exponentially growing pauses."""
    attempt = 1
    while True:
        try:
            return read_source(source, settings.timeout)
        except ImageFetchError as error:
            if not error.retryable:
                raise
            if attempt > settings.retries:
                raise ImageFetchError(f"{error.reason} (gave up after {attempt} attempts)", retryable=False) from None
        time.sleep(settings.backoff * 2 ** (attempt - 1))
        attempt += 1


def read_source(source, timeout):
    """The bytes of a URL or a local file, with failures classified as retryable or not."""
    if not is_url(source):
        try:
            return Path(source).read_bytes()
        except OSError as error:
            raise ImageFetchError(f"cannot read {source}: {error.strerror}", retryable=False) from None
    request = urllib.request.Request(source, headers={"User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        error.close()
        retryable = error.code >= 500 or error.code in RETRYABLE_HTTP_STATUSES
        raise ImageFetchError(f"HTTP {error.code} {error.reason}", retryable) from None
    except urllib.error.URLError as error:
        reason = "timed out" if isinstance(error.reason, TimeoutError) else f"connection failed: {error.reason}"
        raise ImageFetchError(reason, retryable=True) from None
    except TimeoutError:
        raise ImageFetchError(f"timed out after {timeout:g}s", retryable=True) from None
    except (http.client.HTTPException, ConnectionError) as error:
        raise ImageFetchError(f"transfer failed: {type(error).__name__} {error}", retryable=True) from None
    except ValueError as error:
        raise ImageFetchError(f"invalid URL: {error}", retryable=False) from None


def prepare_image(data, max_side):
    """The bytes to store: the original JPEG when it needs no resizing, else a re-encoded JPEG.

    Raises :class:`ImageFetchError` when ``data`` is not a complete image.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
        image = Image.open(io.BytesIO(data))
        image.load()
    except _IMAGE_DECODING_ERRORS as error:
        raise ImageFetchError(f"not a valid image: {error}", retryable=False) from None
    if image.format == "JPEG" and (max_side is None or max(image.size) <= max_side):
        return data
    image = flatten_to_rgb(image)
    if max_side is not None:
        image.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    encoded = io.BytesIO()
    image.save(encoded, format="JPEG", quality=JPEG_QUALITY)
    return encoded.getvalue()


def flatten_to_rgb(image):
    """An RGB copy of ``image``, with any transparency composited onto white (JPEG has no alpha)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def write_atomically(destination, data):
    """Write ``data`` to a temporary file beside ``destination``, then rename it into place."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.", suffix=".part")
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.replace(temporary, destination)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
