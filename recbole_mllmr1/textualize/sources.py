"""Where item images come from: a folder of ``<item_id>.<ext>`` files, or a RecBole ``.item`` file's image column."""

import csv
import os
from pathlib import Path

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
POSTERS_SUBDIR = os.path.join("data", "ml-100k-posters", "images")


def shared_posters_dir():
    """The real ml-100k poster fixture: ``$RECBOLE_MLLMR1_SHARED/data/ml-100k-posters/images``, else
    ``../shared/...`` beside the repository checkout; None where neither exists (e.g. a fresh clone)."""
    repository_root = Path(__file__).resolve().parents[2]
    shared = os.environ.get("RECBOLE_MLLMR1_SHARED") or repository_root.parent / "shared"
    folder = Path(shared) / POSTERS_SUBDIR
    return folder if folder.is_dir() else None


def images_from_folder(folder):
    """``{item_id: path}`` for every image file in ``folder``, the item id being the file name without extension."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Image folder {folder} does not exist: pass --images with a folder of <item_id>.<ext> files."
        )
    images = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            continue
        if path.stem in images:
            raise ValueError(f"Item {path.stem} has two images, {images[path.stem]} and {path}: keep one.")
        images[path.stem] = path
    return images


def item_file(data_path, dataset):
    return Path(data_path).expanduser() / dataset / f"{dataset}.item"


def _column(header, wanted):
    """Index of the atomic-file column ``wanted`` (headers look like ``name:type``), or None."""
    names = [field.split(":", 1)[0] for field in header]
    return names.index(wanted) if wanted in names else None


def item_file_has_column(path, field):
    with open(path, encoding="utf-8", newline="") as handle:
        header = next(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE), [])
    return _column(header, field) is not None


def images_from_item_file(path, image_field="image", image_root=None, item_field="item_id"):
    """``{item_id: path}`` from the ``image_field`` column of a RecBole ``.item`` file.

    Relative paths are resolved against ``image_root`` (default: the ``.item`` file's folder).
    Items whose image cell is empty have no image and are left out: they get no text.
    """
    path = Path(path)
    image_root = Path(image_root).expanduser() if image_root else path.parent
    with open(path, encoding="utf-8", newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(rows, [])
        item_column, image_column = _column(header, item_field), _column(header, image_field)
        if item_column is None or image_column is None:
            missing = item_field if item_column is None else image_field
            raise ValueError(
                f"{path} has no '{missing}' column (its columns: {', '.join(header)}): "
                "name the image column with --image-field, or pass --images with a folder of <item_id>.<ext> files."
            )
        images = {}
        for row in rows:
            if len(row) > max(item_column, image_column) and row[image_column].strip():
                images[row[item_column]] = image_root / row[image_column].strip()
    return images
