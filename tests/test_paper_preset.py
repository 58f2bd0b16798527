"""The paper presets (properties/quick_start_config/paper_*.yaml) hold the official recipe of docs/paper.md
and pass the settings check; scripts/run_paper_gpu.py refuses to start without CUDA and runs its whole
sequence on CPU with --dry-run."""
import importlib.util
import os

import pytest

from recbole_mllmr1.config import Config, properties_path
from recbole_mllmr1.settings import check_settings
from tests.conftest import REPO_ROOT, TINY_CONFIG, write_tiny_dataset
from tests.test_paper_models import tiny_qwen3_dir  # noqa: F401 (fixture)

PRESETS = ("movielens", "microlens")


def _script():
    spec = importlib.util.spec_from_file_location("run_paper_gpu", os.path.join(REPO_ROOT, "scripts", "run_paper_gpu.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def users_with_ten_items(tmp_path_factory):
    """The tiny dataset with 12 items per user, so that the presets' [10,inf) filter keeps every user."""
    return write_tiny_dataset(str(tmp_path_factory.mktemp("data")), per_user=12)


def _preset(name, data_path):
    return Config(model="MLLMRecR1", dataset="tiny", config_file_list=[properties_path("quick_start_config", f"paper_{name}.yaml")],
                  config_dict={"data_path": data_path, "load_col": TINY_CONFIG["load_col"], "state": "WARNING"})


@pytest.mark.parametrize("name", PRESETS)
def test_a_paper_preset_passes_the_settings_check_without_grounding(name, users_with_ten_items):
    config = _preset(name, users_with_ten_items)
    check_settings(config)
    assert config["sequential_model"] is None and config["item_tokens"] is False and config["fusion_weight"] == 0


@pytest.mark.parametrize("name", PRESETS)
def test_a_paper_preset_holds_the_official_values_of_docs_paper_md(name, users_with_ten_items):
    config = _preset(name, users_with_ten_items)
    official = {
        "seed": 42, "user_inter_num_interval": "[10,inf)", "max_history": 9, "train_candidates": 10,
        "lora_r": 16, "lora_alpha": 16, "sft_learning_rate": 1e-5, "grpo_learning_rate": 1e-5,
        "grpo_lora": "fresh", "grpo_lora_r": 16, "grpo_lora_alpha": 32,
        "cot_placement": "input", "cot_input_share_sft": 0.1, "cot_refine_sees_target": True,
        "train_sample_per_user": True, "train_samples": None, "grpo_num_generations": 8,
        "grpo_max_completion_length": 128, "grpo_temperature": 0.9, "grpo_top_p": 0.9, "grpo_rewards": ["paper"],
        "topk": [3, 5, 10], "metrics": ["Hit", "NDCG"], "valid_metric": "NDCG@10", "reasoning_eval": False,
        "sft_completion_only_loss": False, "lr_scheduler_type": "linear",
        "use_image_text": True, "recommender_image_text": False, "cot_max_new_tokens": 256, "cot_temperature": 0.0,
        "cot_refine_max_new_tokens": 300, "cot_refine_temperature": 0.1, "cot_refine_teacher": None,
        "grpo_epochs": 3,
    }
    assert {key: config[key] for key in official} == official
    assert config["eval_args"]["mode"] == {"valid": "uni9", "test": "uni9"}
    per_dataset = {"movielens": (0.05, 0.1, 3), "microlens": (0.1, 0.05, 5)}[name]
    assert (config["cot_input_share_grpo"], config["grpo_beta"], config["sft_epochs"]) == per_dataset


def test_the_script_refuses_to_start_without_cuda(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _script().main(["--out", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "no CUDA device" in error


def test_the_dry_run_trains_evaluates_and_writes_the_table_on_cpu(users_with_ten_items, tiny_qwen3_dir, tmp_path):
    out = tmp_path / "paper"
    load_col = "load_col={inter: [user_id, item_id, rating, timestamp], item: [item_id, title, genre]}"
    status = _script().main(["--dry-run", "--llm_path", tiny_qwen3_dir, "--dataset", "tiny", "--data-path", users_with_ten_items,
                             "--out", str(out), "--config", load_col])
    assert status == 0
    table = (out / "paper_table.md").read_text()
    assert "| row | HR@3 | HR@5 | HR@10 | NDCG@3 | NDCG@5 | NDCG@10 |" in table
    assert "| Pop |" in table and "MLLMRecR1 (paper recipe, grpo)" in table and "MLLMRecR1 (paper recipe, sft)" in table
