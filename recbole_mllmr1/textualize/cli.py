"""``recbole-mllmr1 textualize``: describe a dataset's item images ahead of training, filling the cache.

Items come from the ``.item`` atomic file at ``<data-path>/<dataset>/<dataset>.item`` when it has
an image column (paths relative to ``--images``, else to the dataset folder), and otherwise from
``--images``, a folder of ``<item_id>.<ext>`` files (the way for RecBole's bundled ml-100k).
"""

import logging

from recbole_mllmr1.textualize.backends import BACKENDS
from recbole_mllmr1.textualize.caption import DEFAULT_VLM_MODEL
from recbole_mllmr1.textualize.pipeline import default_cache_dir, textualize_images
from recbole_mllmr1.textualize.sources import images_from_folder, images_from_item_file, item_file, item_file_has_column


# Config key -> flag: the keys of a run's yaml that say where the images are and how to describe them.
_KEYS = {
    "dataset": "dataset",
    "data_path": "data_path",
    "image_dir": "images",
    "image_field": "image_field",
    "textualizer": "backend",
    "textualizer_model": "model",
    "textualizer_prompt": "prompt",
    "textualize_cache_dir": "cache_dir",
}
_DEFAULTS = {"data_path": "dataset", "image_field": "image", "backend": "offline"}


def add_arguments(parser):
    parser.add_argument("--dataset", help="RecBole dataset name; also names the cache file (key: dataset).")
    parser.add_argument(
        "--images",
        help="Folder of item images: <item_id>.<ext> files, or the root of the .item file's image paths (key: image_dir).",
    )
    parser.add_argument("--backend", help=f"Textualizer: {', '.join(BACKENDS)} (key: textualizer; default: offline, CPU, no download).")
    parser.add_argument("--cache-dir", help=f"Cache folder (key: textualize_cache_dir; default: {default_cache_dir()}).")
    parser.add_argument("--model", help=f"vlm/vllm: model id or local path (key: textualizer_model; default: {DEFAULT_VLM_MODEL}).")
    parser.add_argument(
        "--prompt",
        help="vlm/vllm: caption prompt (key: textualizer_prompt; default: at most 50 words on content, style and mood, no title).",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="Images per model call (default: 8).")
    parser.add_argument(
        "--data-path", help="RecBole data_path holding <dataset>/<dataset>.item (key: data_path; default: dataset)."
    )
    parser.add_argument("--image-field", help="The .item file's image-path column (key: image_field; default: image).")


def resolve_options(args):
    """``args`` with each option from, lowest first: its default, the ``--config_files`` yamls, the
    ``--key=value`` keys and the dash flag (a key given both ways on the command line is an error)."""
    import yaml

    from recbole_mllmr1.cli import with_flags
    from recbole_mllmr1.known_keys import check_known_keys

    from_files = {}
    for path in args.config_files.split() if args.config_files else []:
        with open(path, encoding="utf-8") as file:
            keys = yaml.safe_load(file) or {}
        check_known_keys(keys, f"config file {path}")
        from_files.update({key: value for key, value in keys.items() if key in _KEYS})
    unread = sorted(set(args.config_dict) - set(_KEYS))
    if unread:
        raise SystemExit(f"textualize does not read [{', '.join(unread)}]; its keys are {', '.join(_KEYS)}")
    command_line = with_flags(
        args.config_dict,
        {key: getattr(args, flag) for key, flag in _KEYS.items()},
        "textualize",
    )
    for key, value in {**from_files, **command_line}.items():
        setattr(args, _KEYS[key], value)
    for flag, default in _DEFAULTS.items():
        if getattr(args, flag) is None:
            setattr(args, flag, default)
    if not args.dataset:
        raise SystemExit("textualize needs a dataset: --dataset NAME (or dataset: NAME in a --config_files yaml)")
    if args.backend not in BACKENDS:
        raise SystemExit(f"textualizer [{args.backend}] is not a backend; choose one of {', '.join(BACKENDS)}")
    return args


def collect_images(args):
    """``{item_id: path}`` from the .item file's image column if it has one, else from the --images folder."""
    atomic_file = item_file(args.data_path, args.dataset)
    if atomic_file.is_file() and item_file_has_column(atomic_file, args.image_field):
        return images_from_item_file(atomic_file, args.image_field, image_root=args.images)
    if args.images:
        return images_from_folder(args.images)
    raise SystemExit(
        f"No item images for {args.dataset}: {atomic_file} has no '{args.image_field}' column (or does not exist), "
        "and --images was not given. Pass --images with a folder of <item_id>.<ext> files."
    )


def run(args):
    args = resolve_options(args)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    images = collect_images(args)
    result = textualize_images(
        images,
        backend=args.backend,
        cache_dir=args.cache_dir,
        dataset=args.dataset,
        model=args.model,
        prompt=args.prompt,
        batch_size=args.batch_size,
    )
    print(
        f"{result.described}/{result.total} items described ({result.reused} from cache, {result.computed} new), "
        f"{result.failed} failed" + (f"; cache: {result.cache_path}" if result.cache_path else "")
    )
    return 0
