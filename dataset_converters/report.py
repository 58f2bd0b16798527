"""What a conversion did: the manifest.json content and the summary printed at the end."""
from importlib import metadata

import numpy as np


def _converter_version():
    try:
        return metadata.version("recbole-mllmr1")
    except metadata.PackageNotFoundError:  # running from a source checkout that is not installed
        return "unknown"


def build_manifest(source, options, bad_lines, table, filtered, catalog, image_report):
    """The manifest: source files with hashes, options, counts kept and dropped by reason, images, warnings."""
    kept_rows = filtered.rows
    manifest = {
        "dataset": options.name,
        "format": source.format_name,
        "converter": f"recbole-mllmr1 {_converter_version()}",
        "sources": [input_file.describe(bad_lines) for input_file in source.sources],
        "options": {**options.as_manifest(), **source.settings()},
        "counts": {
            "interactions": {"read": len(table), "kept": len(kept_rows), "dropped": filtered.dropped},
            "kcore_passes": filtered.kcore_passes,
            "users": {"read": len(table.user_ids), "kept": int(np.unique(table.users[kept_rows]).size)},
            "items": {
                "read": len(table.item_ids),
                "kept": len(catalog.wanted),
                "with_metadata": len(catalog.items),
                "without_metadata": len(catalog.wanted) - len(catalog.items),
                "titles_only_markup": len(catalog.titles_only_markup),
            },
            "metadata_records": {
                "of_items_not_kept": catalog.unused_records,
                "repeated": catalog.repeated_records,
            },
            "bad_lines_skipped": bad_lines.totals(),
        },
        "bad_line_examples": bad_lines.examples,
        "images": image_report,
    }
    manifest["warnings"] = item_text_warnings(manifest["counts"]["items"], source.sources[1].path)
    return manifest


def item_text_warnings(item_counts, metadata_path):
    """Warnings about kept items that the LLM will see without a title (none, when every item has one)."""
    kept = item_counts["kept"]
    warnings = []
    if item_counts["without_metadata"]:
        warnings.append(
            f"items without metadata in {metadata_path}: {share_of_kept(item_counts['without_metadata'], kept)}; "
            "their title, categories and description are empty, so MLLMRecR1 shows them to the LLM without a "
            "title; --require-meta=drop drops their interactions, --require-meta=fail stops the conversion"
        )
    if item_counts["titles_only_markup"]:
        warnings.append(
            f"items whose title in {metadata_path} has no text once its HTML markup is removed (e.g. "
            f"'<span class=\"a-size-medium\"'): {share_of_kept(item_counts['titles_only_markup'], kept)}; "
            "their title is written empty"
        )
    return warnings


def share_of_kept(count, kept):
    """``"3 of the 40 kept (7.5%)"``."""
    return f"{count:,} of the {kept:,} kept ({count / kept:.1%})"


def _listing(counts):
    return ", ".join(f"{count:,} {reason}" for reason, count in counts.items()) or "none"


def format_summary(manifest, out_dir):
    """A few lines for the terminal: counts kept and dropped, skipped lines, image results."""
    counts = manifest["counts"]
    interactions, users, items = counts["interactions"], counts["users"], counts["items"]
    images = manifest["images"]
    lines = [
        f"Converted {manifest['format']} into {out_dir} (dataset name {manifest['dataset']!r}).",
        f"  interactions: {interactions['read']:,} read, {interactions['kept']:,} kept; "
        f"dropped: {_listing(interactions['dropped'])} (k-core passes: {counts['kcore_passes']})",
        f"  users: {users['read']:,} read, {users['kept']:,} kept; items: {items['read']:,} read, {items['kept']:,} kept, "
        f"{items['with_metadata']:,} with metadata",
        f"  bad lines skipped: {_listing(counts['bad_lines_skipped'])}",
        f"  images: {images['stored']:,} stored, {images['already_present']:,} already present, "
        f"{images['failed']:,} failed, {images['written_as_url']:,} written as URLs, "
        f"{images['without_image_source']:,} items without an image",
    ]
    if counts["bad_lines_skipped"] or images["failed"]:
        lines.append(f"  details (skipped lines, image failures): {out_dir}/manifest.json")
    return "\n".join(lines)
