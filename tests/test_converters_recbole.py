"""Converted datasets load in RecBole (with the written dataset yaml) and train SASRec."""
import math
import os

import pytest
import recbole
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed

from converters_support import FIXTURES, run_convert
from recbole_mllmr1.dataset_converters.movielens import ML100K_GENRES

BUNDLED_ML100K = os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k")
QUIET = {"state": "ERROR", "show_progress": False}


def load(out, extra=None):
    """The converted dataset in ``out`` as RecBole loads it, configured by its own yaml."""
    config = Config(
        model=SASRec,
        dataset=out.name,
        config_file_list=[str(out / f"{out.name}.yaml")],
        config_dict={"data_path": str(out.parent), "train_neg_sample_args": None, "loss_type": "CE", **QUIET, **(extra or {})},
    )
    return config, create_dataset(config)


def test_converted_ml100k_fixture_loads(tmp_path):
    out = tmp_path / "ml-100k-converted"
    assert run_convert("movielens", "--src", FIXTURES / "movielens" / "ml-100k", "--out", out) == 0
    _, dataset = load(out)
    assert dataset.inter_num == 64 and dataset.user_num - 1 == 8 and dataset.item_num - 1 == 12
    item = dataset.token2id("item_id", "12")
    title = dataset.id2token("title", dataset.item_feat["title"][item][dataset.item_feat["title"][item] > 0])
    assert list(title) == ["Misérables,", "Les", "(1995)"]


def test_quoted_title_survives_recbole_reading(tmp_path):
    out = tmp_path / "amazon-beauty"
    amazon = FIXTURES / "amazon2023"
    reviews, meta = amazon / "Beauty.jsonl.gz", amazon / "meta_Beauty.jsonl.gz"
    assert run_convert("amazon2023", "--reviews", reviews, "--meta", meta, "--out", out) == 0
    _, dataset = load(out)
    item = dataset.token2id("item_id", "B09JS339BZ")
    title = dataset.item_feat["title"][item]
    assert list(dataset.id2token("title", title[title > 0])) == ['"Mineral"', "Powder", "Brush"]


def write_grouplens_ml100k(folder):
    """u.data and u.item in GroupLens' format, regenerated from RecBole's bundled ml-100k atomic files."""
    folder.mkdir()
    with open(os.path.join(BUNDLED_ML100K, "ml-100k.inter"), encoding="utf-8") as inter, open(folder / "u.data", "w") as u_data:
        next(inter)
        for line in inter:
            u_data.write(line)  # user, item, rating, timestamp: already tab-separated in this order
    bundled_items = os.path.join(BUNDLED_ML100K, "ml-100k.item")
    with open(bundled_items, encoding="utf-8") as item_file, open(folder / "u.item", "wb") as u_item:
        next(item_file)
        for line in item_file:
            movie_id, title, year, genres = line.rstrip("\n").split("\t")
            flags = "|".join("1" if genre in genres.split() else "0" for genre in ML100K_GENRES)
            release = f"01-Jan-{year}" if year else ""
            row = f"{movie_id}|{title} ({year})|{release}||http://us.imdb.com/M/title-exact?{movie_id}|{flags}\n"
            u_item.write(row.encode("latin-1", errors="replace"))


@pytest.mark.filterwarnings("ignore")
def test_ml100k_regenerated_from_recbole_has_the_same_interaction_count(tmp_path):
    with open(os.path.join(BUNDLED_ML100K, "ml-100k.inter"), encoding="utf-8") as inter:
        bundled_count = sum(1 for _ in inter) - 1
    assert bundled_count == 100_000
    write_grouplens_ml100k(tmp_path / "ml-100k")
    out = tmp_path / "ml-100k-converted"
    assert run_convert("movielens", "--src", tmp_path / "ml-100k", "--out", out) == 0
    _, dataset = load(out, {"load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}})
    assert dataset.inter_num == bundled_count
    assert dataset.user_num - 1 == 943 and dataset.item_num - 1 == 1682


@pytest.mark.filterwarnings("ignore")
def test_sasrec_trains_one_epoch_on_a_converted_fixture(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # RecBole writes log_tensorboard/ into the working directory
    out = tmp_path / "ml-100k-converted"
    assert run_convert("movielens", "--src", FIXTURES / "movielens" / "ml-100k", "--out", out) == 0
    config, dataset = load(out, {
        "epochs": 1, "train_batch_size": 64, "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
        "checkpoint_dir": str(tmp_path / "saved"), "device": "cpu", "use_gpu": False,
    })
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = SASRec(config, train_data.dataset)
    trainer = Trainer(config, model)
    trainer.fit(train_data, valid_data, saved=False, show_progress=False)
    assert trainer.train_loss_dict and math.isfinite(trainer.train_loss_dict[0])
