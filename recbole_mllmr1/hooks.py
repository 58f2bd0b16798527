"""The textualize stage: item image descriptions, computed before MLLMRecR1 is built."""
import os
from logging import getLogger


def item_images(config, dataset):
    """Item token -> image path, from the ``.item`` image field or a folder of ``<item id>.<ext>`` files.

    A path in the image field is relative to ``image_dir`` when set, else to the dataset folder.
    """
    image_field, image_dir = config["image_field"], config["image_dir"]
    item_tokens = dataset.field2id_token[dataset.iid_field]
    if dataset.item_feat is not None and image_field in dataset.item_feat.interaction:
        root = image_dir or config["data_path"]
        id2token = dataset.field2id_token[image_field]
        values = {str(item_tokens[i]): str(id2token[int(v)]) for i, v in enumerate(dataset.item_feat[image_field]) if i and int(v)}
        urls = {token for token, value in values.items() if value.startswith(("http://", "https://"))}
        if urls:
            getLogger().warning(
                f"{len(urls)} items of [{dataset.dataset_name}] have an image URL, not a file: they get no image text. "
                "Convert with --download-images to fetch them."
            )
        return {token: os.path.join(root, value) for token, value in values.items() if token not in urls}
    if image_dir:
        from recbole_mllmr1.textualize.sources import images_from_folder

        by_item = images_from_folder(image_dir)
        return {str(token): str(by_item[str(token)]) for token in item_tokens[1:] if str(token) in by_item}
    return {}


def attach_image_texts(config, dataset):
    """Run the textualize stage for ``dataset``: MLLMRecR1 reads ``dataset.item_image_texts`` when it is built.

    Item token -> description (from the textualize cache when already computed); {} when
    ``use_image_text`` is off.
    """
    dataset.item_image_texts = image_texts_for(config, dataset) if config["use_image_text"] else {}


def image_texts_for(config, dataset):
    """Item token -> image description through the configured ``textualizer`` (cached); {} when off."""
    logger = getLogger()
    backend = config["textualizer"]
    if backend in (None, "none"):
        return {}
    images = item_images(config, dataset)
    n_items = dataset.item_num - 1
    if not images:
        logger.info(f"No item images found for [{dataset.dataset_name}] (image_field / image_dir): prompts carry no image text.")
        return {}
    from recbole_mllmr1.textualize import default_cache_dir, textualize_images

    captions = backend in ("vlm", "vllm")  # only captioning backends take a model and a prompt
    result = textualize_images(
        images,
        backend=backend,
        cache_dir=config["textualize_cache_dir"] or default_cache_dir(),
        dataset=dataset.dataset_name,
        model=config["textualizer_model"] if captions else None,
        prompt=config["textualizer_prompt"] if captions else None,
        show_progress=config["show_progress"],
    )
    logger.info(
        f"Image text for {len(result.texts)} of {n_items} items; {n_items - len(images)} have no image, "
        f"{len(result.failures)} images could not be read."
    )
    return result.texts
