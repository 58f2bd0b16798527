"""``textualize_images``: describe item images once, cache every description, reuse them on every later run."""

import collections
import dataclasses
import hashlib
import os
from logging import getLogger

from tqdm import tqdm

from recbole_mllmr1.cache_dirs import cache_root
from recbole_mllmr1.textualize.backends import make_describer
from recbole_mllmr1.textualize.cache import DescriptionCache, cache_file, record_key
from recbole_mllmr1.textualize.images import UnreadableImage, file_sha256, read_image

NO_IMAGE = "no image"
EMPTY_DESCRIPTION = "empty description"


def default_cache_dir():
    """``$RECBOLE_MLLMR1_CACHE/textualize``, else ``~/.cache/recbole_mllmr1/textualize``."""
    return os.path.join(cache_root(), "textualize")


@dataclasses.dataclass
class TextualizationResult:
    """``texts``: item -> description, only for readable images; ``failures``: item -> why it has none."""

    texts: dict
    failures: dict
    computed: int  # described in this run
    reused: int  # taken from the cache
    total: int  # items asked for
    cache_path: str = None

    @property
    def described(self):
        return len(self.texts)

    @property
    def failed(self):
        return len(self.failures)

    @property
    def not_described(self):
        return self.total - self.described


def _identity(describer):
    return {
        "backend": describer.backend,
        "model": describer.model,
        "prompt_sha256": hashlib.sha256(describer.prompt.encode("utf-8")).hexdigest(),
    }


def _log_summary(result, backend, dataset, paths):
    logger = getLogger()
    logger.info(
        f"textualize [{backend}] {dataset}: {result.total} items, {result.described} described "
        f"({result.reused} reused from cache, {result.computed} new), {result.failed} failed, "
        f"{result.not_described} without text" + (f"; cache {result.cache_path}" if result.cache_path else "")
    )
    if result.failures:
        by_reason = collections.Counter(result.failures.values())
        example_item = next(iter(result.failures))
        logger.warning(
            f"textualize [{backend}] {dataset}: {result.failed} items have no description ("
            + ", ".join(f"{reason}: {count}" for reason, count in by_reason.most_common())
            + f"), e.g. item {example_item}: {paths.get(example_item) or '(no path)'}"
        )


def _batches(items, size):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def textualize_images(
    images,
    backend="offline",
    cache_dir=None,
    dataset="ml-100k",
    model=None,
    prompt=None,
    batch_size=8,
    show_progress=True,
):
    """Describe each item's image as a short text, reusing cached descriptions.

    ``images`` maps item keys (RecBole item tokens) to image paths; a None or empty path means
    the item has no image. Bad files are recorded in ``failures`` with a reason and the run goes
    on; items without a readable image get no text. Every new description is appended to
    ``<cache_dir>/<dataset>.<backend>.jsonl`` as soon as it exists, so an interrupted run resumes
    where it stopped.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size [{batch_size}] must be at least 1.")
    describer = make_describer(backend, model, prompt)
    paths = {str(item): path for item, path in images.items()}
    if describer is None:
        result = TextualizationResult(texts={}, failures={}, computed=0, reused=0, total=len(paths))
        _log_summary(result, backend, dataset, {})
        return result

    cache = DescriptionCache(cache_file(cache_dir or default_cache_dir(), dataset, backend))
    identity = _identity(describer)
    texts, failures, reused = {}, {}, 0
    pending = {}  # image sha256 -> (path, items): an image shared by several items is described once
    for item, path in paths.items():
        if path is None or str(path) == "":
            failures[item] = NO_IMAGE
            continue
        try:
            digest = file_sha256(path)
        except UnreadableImage as error:
            failures[item] = error.reason
            continue
        cached = cache.get(record_key({**identity, "image_sha256": digest}))
        if cached is not None:
            texts[item] = cached
            reused += 1
        else:
            pending.setdefault(digest, (path, []))[1].append(item)

    computed = 0
    work = list(pending.values())
    with tqdm(total=len(work), desc=f"textualize [{backend}]", unit="image", disable=not show_progress) as progress:
        for batch in _batches(work, batch_size):
            readable = []
            for path, items in batch:
                try:
                    digest, image = read_image(path)
                except UnreadableImage as error:
                    failures.update((item, error.reason) for item in items)
                    continue
                readable.append((digest, image, items))
            descriptions = describer.describe([image for _, image, _ in readable]) if readable else []
            for (digest, _, items), text in zip(readable, descriptions, strict=True):
                if not text.strip():
                    failures.update((item, EMPTY_DESCRIPTION) for item in items)
                    continue
                cache.append({**identity, "image_sha256": digest, "item": items[0], "text": text})
                texts.update((item, text) for item in items)
                computed += len(items)
            progress.update(len(batch))

    result = TextualizationResult(  # in the caller's item order, whatever came from the cache first
        texts={item: texts[item] for item in paths if item in texts},
        failures={item: failures[item] for item in paths if item in failures},
        computed=computed,
        reused=reused,
        total=len(paths),
        cache_path=cache.path,
    )
    _log_summary(result, backend, dataset, paths)
    return result
