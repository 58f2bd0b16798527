"""The switches between this project's choices and the official code's (docs/training.md, "The official code's choices").

Each switch keeps this project's behaviour by default; each test shows the official setting changes what it says.
"""
import pytest

from recbole_mllmr1.config import Config
from recbole_mllmr1.training import settings, stages
from recbole_mllmr1.training_samples import draw_training_samples, last_row_per_user
from tests.conftest import TINY_CONFIG
from tests.test_model import build


@pytest.fixture(scope="module")
def tiny(tiny_data_path, tiny_llm_dir):
    return build("tiny", {**TINY_CONFIG, "data_path": tiny_data_path, "llm_path": tiny_llm_dir, "train_candidates": 5})


def _overridden(config, monkeypatch, **values):
    for key, value in values.items():
        monkeypatch.setitem(config.final_config_dict, key, value)
    return config


# ---- grpo_top_p ------------------------------------------------------------------------------
def test_grpo_top_p_reaches_trls_rollout_sampling():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING"})
    assert settings.grpo_config(config, "/tmp/unused").top_p == 1.0  # TRL's default: no nucleus cut
    config["grpo_top_p"] = 0.9
    assert settings.grpo_config(config, "/tmp/unused").top_p == 0.9


# ---- train_sample_per_user -------------------------------------------------------------------
def test_last_row_per_user_takes_each_users_last_row():
    import numpy as np

    assert last_row_per_user(np.array([1, 1, 1, 2, 2, 3])).tolist() == [2, 4, 5]


def test_one_sample_per_user_is_each_users_last_training_interaction(tiny, monkeypatch):
    config, model, train_data, _, _ = tiny
    train_dataset = train_data._dataset
    users = train_dataset.inter_feat[model.USER_ID].tolist()
    targets = train_dataset.inter_feat[model.ITEM_ID].tolist()
    training_items = {}
    for user, item in zip(users, targets):
        training_items.setdefault(user, []).append(item)

    samples = stages.training_samples(_overridden(config, monkeypatch, train_samples=None, train_sample_per_user=True), model, train_dataset, 0)
    assert sorted(s.user_id for s in samples) == sorted(training_items)  # every user once
    for sample in samples:
        *earlier, last = training_items[sample.user_id]
        assert sample.target == last
        assert sample.history[-len(earlier) :] == tuple(earlier)  # the whole training history before it (a user's first item is no target)

    drawn = stages.training_samples(_overridden(config, monkeypatch, train_samples=7), model, train_dataset, 0)
    assert len({s.user_id for s in drawn}) == 7 and {s.target for s in drawn} <= {training_items[s.user_id][-1] for s in drawn}

    default = stages.training_samples(_overridden(config, monkeypatch, train_samples=None, train_sample_per_user=False), model, train_dataset, 0)
    assert len(default) == len(users)  # every training interaction, several per user
    assert default == draw_training_samples(model, train_dataset, None, config["train_candidates"], 0)
