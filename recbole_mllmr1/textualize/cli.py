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


def add_arguments(parser):
    parser.add_argument("--dataset", required=True, help="RecBole dataset name; also names the cache file.")
    parser.add_argument(
        "--images", help="Folder of item images: <item_id>.<ext> files, or the root of the .item file's image paths."
    )
    parser.add_argument(
        "--backend", default="offline", choices=BACKENDS, help="Textualizer (default: offline, CPU, no download)."
    )
    parser.add_argument("--cache-dir", help=f"Cache folder (default: {default_cache_dir()}).")
    parser.add_argument("--model", help=f"vlm/vllm: model id or local path (default: {DEFAULT_VLM_MODEL}).")
    parser.add_argument(
        "--prompt", help="vlm/vllm: caption prompt (default: at most 50 words on content, style and mood, no title)."
    )
    parser.add_argument("--batch-size", type=int, default=8, help="Images per model call (default: 8).")
    parser.add_argument(
        "--data-path", default="dataset", help="RecBole data_path holding <dataset>/<dataset>.item (default: dataset)."
    )
    parser.add_argument("--image-field", default="image", help="The .item file's image-path column (default: image).")


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
