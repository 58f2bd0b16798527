"""Writing a converted dataset: RecBole atomic files, the dataset yaml and manifest.json.

Everything is written into a hidden staging folder next to the output folder and moved into place
only once complete, so a failed or interrupted conversion never leaves a half-written dataset.
"""
import csv
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

INTER_COLUMNS = ("user_id:token", "item_id:token", "rating:float", "timestamp:float")
ITEM_COLUMNS = ("item_id:token", "title:token_seq", "categories:token_seq", "description:token_seq", "image:token")
MANIFEST_NAME = "manifest.json"

# (key, value as written, type, description): the dataset yaml, one commented key per line.
_YAML_ENTRIES = (
    ("field_separator", '"\\t"', "str", "Separator of the columns in the atomic files."),
    ("seq_separator", '" "', "str", "Separator of the values inside token_seq fields."),
    ("USER_ID_FIELD", "user_id", "str", "Field name of the user id."),
    ("ITEM_ID_FIELD", "item_id", "str", "Field name of the item id."),
    ("RATING_FIELD", "rating", "str", "Field name of the rating."),
    ("TIME_FIELD", "timestamp", "str", "Field name of the timestamp (seconds)."),
    ("load_col", None, "dict", "Columns RecBole loads from each atomic file."),
    ("title_field", "title", "str", "Item field holding the title shown to the LLM."),
    ("item_meta_fields", "[categories]", "list", "Item fields described to the LLM next to the title."),
    ("image_field", "image", "str", "Item field with the image: a path relative to the dataset folder, or a URL."),
)
DATASET_YAML_KEYS = tuple(key for key, _, _, _ in _YAML_ENTRIES)


def _column_names(columns):
    return ", ".join(column.split(":")[0] for column in columns)


@contextmanager
def staged_output(out_dir):
    """Yield an empty staging folder next to ``out_dir``; on success move its files into ``out_dir``.

    On any error the staging folder is removed and ``out_dir`` is left as it was.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial", dir=out_dir.parent))
    # mkdtemp makes the folder private (0700); the published dataset should get the usual permissions.
    os.chmod(stage, 0o777 & ~_current_umask())
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    publish(stage, out_dir)


def _current_umask():
    umask = os.umask(0)
    os.umask(umask)
    return umask


def publish(stage, out_dir):
    """Move the staged files into ``out_dir``; the manifest, which marks a complete dataset, goes last.

    A new ``out_dir`` appears in one rename. An existing one (holding e.g. downloaded images or files
    of other tools) keeps its other files; its old manifest is removed first so that old and new
    files are never presented together as complete.
    """
    if not out_dir.exists():
        os.rename(stage, out_dir)
        return
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for path in sorted(stage.iterdir(), key=lambda staged: staged.name == MANIFEST_NAME):
        os.replace(path, out_dir / path.name)
    stage.rmdir()


def _tsv_writer(stream):
    # QUOTE_MINIMAL matches how RecBole reads atomic files (pandas read_csv), so a '"' in a title survives.
    return csv.writer(stream, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def format_number(value):
    """A float as written to the atomic files: ``5`` rather than ``5.0``, else the shortest exact form."""
    return str(int(value)) if value.is_integer() else repr(value)


def write_inter_file(path, table, rows):
    """The ``.inter`` file: one line per row of ``table`` listed in ``rows``, in that order."""
    user_ids, item_ids = table.user_ids, table.item_ids
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = _tsv_writer(stream)
        writer.writerow(INTER_COLUMNS)
        writer.writerows(
            (user_ids[user], item_ids[item], format_number(rating), format_number(timestamp))
            for user, item, rating, timestamp in zip(
                table.users[rows].tolist(),
                table.items[rows].tolist(),
                table.ratings[rows].tolist(),
                table.timestamps[rows].tolist(),
            )
        )


def write_item_file(path, item_rows):
    """The ``.item`` file from ``(item_id, ItemRecord, image field)`` rows."""
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = _tsv_writer(stream)
        writer.writerow(ITEM_COLUMNS)
        writer.writerows(
            (item_id, item.title, " ".join(item.categories), item.description, image)
            for item_id, item, image in item_rows
        )


def write_dataset_yaml(path, header_comment):
    """The RecBole dataset yaml, one key per line with a ``# (type) description`` comment."""
    lines = [f"# {header_comment}"]
    for key, value, value_type, description in _YAML_ENTRIES:
        if key == "load_col":
            lines.append(f"{key + ':':<34} # ({value_type}) {description}")
            lines.append(f"  inter: [{_column_names(INTER_COLUMNS)}]")
            lines.append(f"  item: [{_column_names(ITEM_COLUMNS)}]")
        else:
            lines.append(f"{key + ': ' + value:<34} # ({value_type}) {description}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_manifest(path, manifest):
    """``manifest.json``: sources, options, counts and image failures of the conversion."""
    with open(path, "w", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=2, ensure_ascii=False)
        stream.write("\n")
