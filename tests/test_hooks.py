"""The image-text data hook: item images -> textualizer -> prompts; items without images get none."""
import os

import pytest
from PIL import Image

from recbole_mllmr1.config import Config
from recbole_mllmr1.quick_start import prepare_run
from recbole_mllmr1.sequential_model import TEXT_ONLY
from tests.conftest import SHARED, TINY_CONFIG, write_tiny_dataset


def draw(path, colour):
    Image.new("RGB", (96, 128), colour).save(path)


@pytest.fixture(scope="module")
def model_with_images(tmp_path_factory, tiny_llm_dir):
    root = tmp_path_factory.mktemp("images")
    data_path = write_tiny_dataset(str(root), name="pics")
    image_dir = root / "posters"
    image_dir.mkdir()
    for item in range(1, 21):  # items 21..40 have no image
        draw(image_dir / f"i{item}.png", "red" if item % 2 else "blue")
    config = Config(
        model="MLLMRecR1",
        dataset="pics",
        config_dict={**TINY_CONFIG, "data_path": data_path, "textualizer": "offline", "image_dir": str(image_dir),
                     "textualize_cache_dir": str(root / "cache"), "state": "INFO", "llm_path": tiny_llm_dir},
    )
    return prepare_run(config)[0]


def item_id(model, token):
    return next(i for i in range(model.n_items) if model.item_token(i) == token)


def described_items(model):
    """The tokens of the items whose prompt entry carries an image description."""
    return [model.item_token(i) for i in range(1, model.n_items) if " | image: " in model.item_entry(i)[1]]


def test_items_with_images_get_their_description_in_prompts(model_with_images):
    red, blue = item_id(model_with_images, "i1"), item_id(model_with_images, "i2")
    assert "red" in model_with_images.item_entry(red)[1].split(" | image: ")[1].lower()
    assert "blue" in model_with_images.item_entry(blue)[1].split(" | image: ")[1].lower()
    assert "| image: " in model_with_images.prompt([red], [blue, red])


def test_items_without_an_image_get_no_invented_text(model_with_images):
    assert sorted(described_items(model_with_images)) == sorted(f"i{item}" for item in range(1, 21))
    assert "| image:" not in model_with_images.item_entry(item_id(model_with_images, "i30"))[1]


def test_the_no_image_ablation_drops_image_text(model_with_images):
    red = item_id(model_with_images, "i1")
    model_with_images.use_image_text = False
    try:
        assert "| image:" not in model_with_images.prompt([red], [red])
    finally:
        model_with_images.use_image_text = True


def test_teacher_only_image_text_leaves_it_out_of_the_recommender_prompt(model_with_images, monkeypatch):
    """recommender_image_text: False (the official recipe): the CoT teacher's entries keep the image text."""
    red, blue = item_id(model_with_images, "i1"), item_id(model_with_images, "i2")
    monkeypatch.setattr(model_with_images, "recommender_image_text", False)
    assert "| image:" not in model_with_images.prompt([red], [blue, red])
    assert "| image:" not in model_with_images.prompt_entry(red)[1]
    assert "| image: " in model_with_images.item_entry(red)[1]


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(os.path.join(SHARED, "data", "ml-100k-posters")), reason="../shared posters absent")
def test_ml100k_with_the_shared_posters(default_llm_dir, tmp_path):
    config = Config(
        model="MLLMRecR1",
        dataset="ml-100k",
        config_dict={**TEXT_ONLY, "stages": [], "state": "WARNING", "textualizer": "offline", "textualize_cache_dir": str(tmp_path),
                     "image_dir": os.path.join(SHARED, "data", "ml-100k-posters", "images"), "show_progress": False},
    )
    # Describe only a few posters here: keep the folder but point the hook at 12 of them.
    posters = sorted(os.listdir(config["image_dir"]))[:12]
    subset = tmp_path / "subset"
    subset.mkdir()
    for name in posters:
        os.symlink(os.path.join(config["image_dir"], name), subset / name)
    config["image_dir"] = str(subset)
    model = prepare_run(config)[0]
    described = described_items(model)
    assert len(described) == 12 and set(described) == {os.path.splitext(n)[0] for n in posters}


def test_a_converted_dataset_with_images_runs_through_mllmrecr1(tmp_path, tiny_llm_dir):
    """`recbole-mllmr1 convert` output (its yaml found automatically) -> image text -> RecBole evaluation."""
    from converters_support import FIXTURES, run_convert
    from recbole_mllmr1.trainer import MLLMRecR1Trainer

    posters = tmp_path / "posters"
    posters.mkdir()
    for movie in range(1, 13):
        draw(posters / f"{movie}.jpg", "green" if movie % 2 else "yellow")
    out = tmp_path / "ml-small"
    assert run_convert("movielens", "--src", FIXTURES / "movielens" / "ml-100k", "--posters", posters, "--out", out) == 0
    config = Config(
        model="MLLMRecR1",
        dataset="ml-small",
        config_dict={"data_path": str(tmp_path), "stages": [], "state": "WARNING", "show_progress": False,
                     "textualize_cache_dir": str(tmp_path / "cache"), "eval_args": {"mode": "uni9"}, "llm_path": tiny_llm_dir},
    )
    assert config["title_field"] == "title" and config["item_meta_fields"] == ["categories"]  # from the converter's yaml
    model, _, _, test_data = prepare_run(config)
    assert len(described_items(model)) == 12
    result = MLLMRecR1Trainer(config, model).evaluate(test_data)
    assert 0.0 <= result["hit@1"] <= 1.0 and result["hit@10"] == 1.0
