"""Hand-written datasets: a clear error when the time-ordered split has no time field to order by,
the documented own-data yaml works, and the CPU cost estimate that warns before a long CPU run.

RecBole Configs only (and one small dataset load): no LLM.
"""
import logging
import re
from pathlib import Path

import pytest
import torch
import yaml

from recbole_mllmr1.config import Config, properties_path
from recbole_mllmr1.settings import (
    CPU_WARNING_MINUTES,
    LAPTOP_CONFIG,
    SettingsError,
    _count_users,
    check_settings,
    cpu_cost_parts,
    estimated_cpu_minutes,
    warn_if_long_on_cpu,
)
from tests.conftest import TINY_CONFIG, write_tiny_dataset

OWN_DATA_DOC = Path(__file__).resolve().parents[1] / "docs" / "own_data.md"
ML_100K_USERS = 943


@pytest.fixture
def data_path(tmp_path):
    return write_tiny_dataset(str(tmp_path))


def config(data_path, model="MLLMRecR1", config_files=None, **overrides):
    return Config(model=model, dataset="tiny", config_file_list=config_files, config_dict={"data_path": data_path, "state": "WARNING", **overrides})


# ---- the time field -----------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["MLLMRecR1", "SASRec"])
def test_a_time_ordered_split_without_the_loaded_time_field_is_one_clear_error(data_path, model):
    load_col = {"inter": ["user_id", "item_id"], "item": ["item_id", "title", "genre"]}
    with pytest.raises(SettingsError) as error:
        check_settings(config(data_path, model, load_col=load_col, eval_args={"order": "TO"}))
    message = str(error.value)
    assert "[load_col]" in message
    assert "['user_id', 'item_id']" in message
    assert "[timestamp]" in message and "order: RO" in message


def test_the_time_field_is_the_configured_one(data_path):
    load_col = {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title"]}
    with pytest.raises(SettingsError, match=r"time field \[when\]"):
        check_settings(config(data_path, load_col=load_col, TIME_FIELD="when", stages=[]))


@pytest.mark.parametrize(
    "overrides",
    [
        {"load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "title", "genre"]}},
        {"load_col": None},  # ~ loads every column
        {"load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "title"]}, "eval_args": {"order": "RO"}},
    ],
)
def test_a_loaded_time_field_an_unrestricted_load_or_a_random_order_passes(data_path, overrides):
    check_settings(config(data_path, **{"stages": [], **overrides}))


def _doc_blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", OWN_DATA_DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_guide_s_dataset_yaml_passes_and_loads_titles(data_path):
    dataset_yaml = next(block for block in _doc_blocks("yaml") if "load_col" in block)
    settings = yaml.safe_load(dataset_yaml)
    assert "timestamp" in settings["load_col"]["inter"]
    # The tiny dataset's item file has title and genre columns, as the guide's example.
    settings["item_meta_fields"] = [field for field in settings.get("item_meta_fields", []) if field == "genre"]
    settings["load_col"]["item"] = [c for c in settings["load_col"]["item"] if c in ("item_id", "title", "genre")]
    run_config = config(data_path, **settings, stages=[])
    check_settings(run_config)
    from recbole.data import create_dataset

    dataset = create_dataset(run_config)
    assert settings["title_field"] in dataset.item_feat.columns


# ---- the CPU cost estimate ---------------------------------------------------------------------
def test_the_main_command_s_config_is_estimated_well_under_the_warning(data_path):
    main_cpu = config(data_path, config_files=[properties_path("quick_start_config", "main_cpu.yaml")], load_col=TINY_CONFIG["load_col"])
    minutes = estimated_cpu_minutes(main_cpu, n_users=ML_100K_USERS)
    # Measured: 12 min 53 s (benchmarks/results/README.md, "The main command"); within 2x of it.
    assert 12.9 / 2 < minutes < 12.9 * 2
    assert minutes < CPU_WARNING_MINUTES


def test_the_plain_defaults_on_ml_100k_are_estimated_at_hours(data_path):
    defaults = config(data_path, load_col=TINY_CONFIG["load_col"])
    parts = cpu_cost_parts(defaults, n_users=ML_100K_USERS)
    assert sum(parts.values()) > 10 * CPU_WARNING_MINUTES
    names = " ".join(parts)
    for part in ("SASRec (30 epochs)", "CoT teacher (128 samples)", "SFT (100 steps, 800 samples)", "GRPO (50 steps)", "943 users x 10 candidates"):
        assert part in names


def test_eval_user_sample_caps_the_users_and_the_users_are_counted_from_the_inter_file(data_path):
    plain = config(data_path, load_col=TINY_CONFIG["load_col"], stages=[], sequential_model=None, item_tokens=False, fusion_weight=0)
    assert _count_users(plain) == 30
    assert estimated_cpu_minutes(plain) == pytest.approx(estimated_cpu_minutes(plain, n_users=30))
    sampled = config(data_path, load_col=TINY_CONFIG["load_col"], stages=[], sequential_model=None, item_tokens=False, fusion_weight=0, eval_user_sample=10)
    assert estimated_cpu_minutes(sampled, n_users=ML_100K_USERS) == pytest.approx(estimated_cpu_minutes(plain, n_users=10))
    more_candidates = config(data_path, load_col=TINY_CONFIG["load_col"], stages=[], sequential_model=None, item_tokens=False, fusion_weight=0,
                             eval_args={"mode": "uni19"})
    assert estimated_cpu_minutes(more_candidates, n_users=30) == pytest.approx(2 * estimated_cpu_minutes(plain, n_users=30))


def test_the_warning_is_logged_only_on_cpu_and_only_for_a_long_run(data_path, caplog):
    logger = logging.getLogger("test_own_data")
    defaults = config(data_path, load_col=TINY_CONFIG["load_col"])
    defaults["device"] = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="test_own_data"):
        assert warn_if_long_on_cpu(defaults, logger, n_users=ML_100K_USERS) > CPU_WARNING_MINUTES
    assert len(caplog.records) == 1
    message = caplog.records[0].getMessage()
    assert "estimated at" in message and LAPTOP_CONFIG in message and "SFT (100 steps" in message

    caplog.clear()
    defaults["device"] = torch.device("cuda:0")
    with caplog.at_level(logging.WARNING, logger="test_own_data"):
        assert warn_if_long_on_cpu(defaults, logger, n_users=ML_100K_USERS) is None
    assert not caplog.records

    main_cpu = config(data_path, config_files=[properties_path("quick_start_config", "main_cpu.yaml")], load_col=TINY_CONFIG["load_col"])
    main_cpu["device"] = torch.device("cpu")
    with caplog.at_level(logging.WARNING, logger="test_own_data"):
        warn_if_long_on_cpu(main_cpu, logger, n_users=ML_100K_USERS)
    assert not caplog.records

    sasrec = config(data_path, model="SASRec", load_col=TINY_CONFIG["load_col"])
    assert warn_if_long_on_cpu(sasrec, logger) is None
