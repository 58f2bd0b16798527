"""One conversion, whatever the source format: read, filter, describe items, fetch images, write.

A source (see ``amazon2023.Amazon2023Source`` and its siblings) provides ``format_name``,
``sources`` (its input files: the interactions file first, the item metadata file second), ``settings()``,
``read_interactions(collector, reader)`` and ``read_items(catalog, reader)``. Interactions are
read first, so that only the metadata of items that survive filtering is kept in memory (with
``--require-meta=drop``, the metadata of every item read, until filtering is done).
"""
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .atomic import (
    MANIFEST_NAME,
    staged_output,
    write_dataset_yaml,
    write_inter_file,
    write_item_file,
    write_manifest,
)
from .bad_lines import BadLineLog
from .errors import ConversionError
from .filters import filter_interactions
from .images import (
    ALREADY_PRESENT,
    FAILED,
    IMAGE_DIR,
    STORED,
    ImageSettings,
    ImageTask,
    fetch_images,
    image_file_name,
    is_url,
)
from .interactions import InteractionCollector
from .items import ItemCatalog, ItemRecord
from .records import RecordReader
from .report import build_manifest, share_of_kept

NO_METADATA = ItemRecord()
# --require-meta: what to do with the interactions of items that the metadata file lacks.
DROP_WITHOUT_METADATA = "drop"
FAIL_WITHOUT_METADATA = "fail"
REQUIRE_META_CHOICES = (DROP_WITHOUT_METADATA, FAIL_WITHOUT_METADATA)
MISSING_METADATA_EXAMPLES = 5


@dataclass(frozen=True)
class ConvertOptions:
    """Where to write and how to filter; see ``recbole-mllmr1 convert <format> --help``."""

    out: Path
    name: str
    kcore: int = 0
    min_rating: float | None = None
    keep_duplicates: bool = False
    skip_bad_lines: bool = False
    download_images: bool = False
    description_words: int = 50
    require_meta: str | None = None
    images: ImageSettings = field(default_factory=ImageSettings)
    show_progress: bool = False

    def as_manifest(self):
        """The options as recorded in the manifest."""
        recorded = asdict(self)
        recorded["out"] = str(self.out)
        del recorded["show_progress"]
        del recorded["images"]["show_progress"]
        return recorded


def convert(source, options):
    """Convert ``source`` into ``options.out``; returns the manifest (also written as manifest.json).

    Raises :class:`ConversionError` for input problems; nothing is written to ``options.out``
    then, except images already fetched (each complete, kept so that a rerun resumes).
    """
    _check_output(options)
    # A missing metadata file should not be found only after hours of reading the reviews.
    for input_file in source.sources:
        input_file.require_exists()
    reader = RecordReader(BadLineLog(options.skip_bad_lines), options.show_progress)

    collector = InteractionCollector()
    source.read_interactions(collector, reader)
    if len(collector) == 0:
        skipped = reader.bad_lines.totals()
        raise ConversionError(
            f"no interactions could be read from {source.sources[0].path} (skipped lines: {skipped or 'none'}); "
            "check that it is the right file for this format"
        )
    table = collector.to_table()
    filtered, item_ids, catalog = filter_and_describe_items(source, table, reader, options)
    image_fields, image_report = place_images(item_ids, catalog.items, options)

    manifest = build_manifest(source, options, reader.bad_lines, table, filtered, catalog, image_report)
    with staged_output(options.out) as stage:
        write_inter_file(stage / f"{options.name}.inter", table, filtered.rows)
        write_item_file(
            stage / f"{options.name}.item",
            ((item_id, catalog.items.get(item_id, NO_METADATA), image_fields.get(item_id, "")) for item_id in item_ids),
        )
        write_dataset_yaml(
            stage / f"{options.name}.yaml",
            f"RecBole dataset config of {options.name}, written by recbole-mllmr1 convert {source.format_name}.",
        )
        write_manifest(stage / MANIFEST_NAME, manifest)
    return manifest


def filter_and_describe_items(source, table, reader, options):
    """The filtered interactions, the ids of the items they keep (in order), and those items' metadata.

    The metadata is read after filtering, for the kept items only, which bounds memory by the output.
    With ``--require-meta=drop`` which items have metadata must be known before k-core, so it is then
    read first, for every item, and the records of items that filtering drops are forgotten after.
    """
    if options.require_meta == DROP_WITHOUT_METADATA:
        catalog = ItemCatalog(set(table.item_ids), options.description_words)
        source.read_items(catalog, reader)
        with_metadata = np.array([item_id in catalog.items for item_id in table.item_ids], dtype=bool)
        filtered = _filter(table, options, with_metadata)
        item_ids = _kept_item_ids(table, filtered)
        catalog.keep_only(item_ids)
        return filtered, item_ids, catalog
    filtered = _filter(table, options)
    item_ids = _kept_item_ids(table, filtered)
    catalog = ItemCatalog(set(item_ids), options.description_words)
    source.read_items(catalog, reader)
    if options.require_meta == FAIL_WITHOUT_METADATA:
        _require_metadata(item_ids, catalog, source.sources[1].path)
    return filtered, item_ids, catalog


def _filter(table, options, items_with_metadata=None):
    filtered = filter_interactions(table, options.min_rating, options.keep_duplicates, options.kcore, items_with_metadata)
    if len(filtered.rows) == 0:
        raise ConversionError(
            f"no interactions are left after filtering (dropped: {filtered.dropped}); lower --kcore or --min-rating"
        )
    return filtered


def _kept_item_ids(table, filtered):
    return [table.item_ids[index] for index in np.unique(table.items[filtered.rows]).tolist()]


def _require_metadata(item_ids, catalog, metadata_path):
    missing = [item_id for item_id in item_ids if item_id not in catalog.items]
    if missing:
        examples = ", ".join(missing[:MISSING_METADATA_EXAMPLES])
        raise ConversionError(
            f"items without metadata in {metadata_path}: {share_of_kept(len(missing), len(item_ids))}, e.g. "
            f"{examples}; --require-meta=fail requires metadata for every item: use the matching metadata file, "
            "or --require-meta=drop to drop the interactions of those items"
        )


def _check_output(options):
    if not options.name or "/" in options.name or "\\" in options.name or options.name.startswith("."):
        raise ConversionError(f"--name {options.name!r} is not a usable dataset name (it names files: <name>.inter)")
    if options.out.exists() and not options.out.is_dir():
        raise ConversionError(f"--out {options.out} exists and is not a folder")


def place_images(item_ids, items, options):
    """The ``image`` field of each item, and the image part of the manifest.

    Local files are always copied into ``<out>/images``; URLs are downloaded there only with
    ``download_images``, and are otherwise written as they are.
    """
    fields = {}
    tasks = []
    for item_id in item_ids:
        image_source = items.get(item_id, NO_METADATA).image_source
        if not image_source:
            continue
        if is_url(image_source) and not options.download_images:
            fields[item_id] = image_source
        else:
            tasks.append(ImageTask(item_id, image_source, options.out / IMAGE_DIR / image_file_name(item_id)))
    written_as_url = len(fields)
    outcomes = fetch_images(tasks, options.images)
    failures = []
    for outcome in outcomes:
        if outcome.status == FAILED:
            failures.append({"item_id": outcome.task.item_id, "source": outcome.task.source, "reason": outcome.reason})
        else:
            fields[outcome.task.item_id] = f"{IMAGE_DIR}/{outcome.task.destination.name}"
    statuses = [outcome.status for outcome in outcomes]
    report = {
        "without_image_source": len(item_ids) - written_as_url - len(tasks),
        "written_as_url": written_as_url,
        "stored": statuses.count(STORED),
        "already_present": statuses.count(ALREADY_PRESENT),
        "failed": len(failures),
        "failures": failures,
    }
    return fields, report
