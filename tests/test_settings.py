"""MLLMRecR1's settings are checked when the run starts, before any data or model loads."""
import glob
import os

import pytest
import yaml

from recbole_mllmr1.config import Config, properties_path
from recbole_mllmr1.quick_start import prepare_run
from recbole_mllmr1.settings import RECBOLE_CHECKED, RULES, SettingsError, check_settings
from tests.conftest import TINY_CONFIG


def mllmrecr1_config(data_path, **overrides):
    return Config(model="MLLMRecR1", dataset="tiny", config_dict={**TINY_CONFIG, "data_path": data_path, **overrides})


def test_every_key_of_the_model_yaml_has_a_rule_and_every_rule_a_key():
    with open(properties_path("model", "MLLMRecR1.yaml")) as model_yaml:
        keys = set(yaml.safe_load(model_yaml))
    assert keys - set(RULES) - set(RECBOLE_CHECKED) == set()
    assert set(RULES) - keys == set()


@pytest.mark.parametrize(
    "config_files",
    [["MLLMRecR1.yaml"]] + [[os.path.basename(f)] for f in sorted(glob.glob(properties_path("quick_start_config", "*.yaml")))],
)
def test_defaults_and_every_shipped_config_pass(tiny_data_path, config_files):
    overrides = {}
    if config_files != ["MLLMRecR1.yaml"]:
        with open(properties_path("quick_start_config", config_files[0])) as file:
            overrides = yaml.safe_load(file) or {}
    check_settings(mllmrecr1_config(tiny_data_path, **{k: v for k, v in overrides.items() if k in RULES}))


@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("eval_user_sample", "abc", "an int >= 1, or ~ (None on the command line) for every user"),
        ("eval_user_sample", 0, "an int >= 1"),
        ("stages", ["grpo", "sft"], "in that order"),
        ("stages", ["sft", "rl"], "distinct names from ['sft', 'grpo']"),
        ("grpo_rewards", ["format", "hit"], "distinct names from ['format', 'accuracy', 'paper']"),
        ("reasoning_eval", "sometimes", "one of 'auto', True, False"),
        ("sft_data", "cot", "one of 'mixed', 'plain'"),
        ("textualizer", "clip", "one of 'offline', 'vlm', 'vllm', 'none'"),
        ("lora_dropout", 1.5, "a number >= 0 and <= 1"),
        ("sft_learning_rate", 0, "a number > 0"),
        ("use_image_text", "yes", "True or False"),
        ("grpo_num_generations", 1, "an int >= 2"),
        ("train_samples", True, "an int >= 1, or ~ (None on the command line) for the whole training split"),
        ("lora_target_modules", [], "a list of strings, at least one"),
        ("cot_min_prob", 2, "a number >= 0 and <= 1, or ~ (None on the command line) for no probability threshold"),
        ("reasoning_eval", 1, "one of 'auto', True, False"),
        ("grpo_loss_type", "cispo", "one of 'grpo', 'dapo', 'dr_grpo', 'bnpo'"),
        ("loss_type", "BPR", "one of 'CE'"),
    ],
)
def test_a_wrong_value_names_the_key_the_value_and_what_is_allowed(tiny_data_path, key, value, allowed):
    with pytest.raises(SettingsError) as error:
        check_settings(mllmrecr1_config(tiny_data_path, **{key: value}))
    assert f"[{key}] = {value!r}" in str(error.value) and allowed in str(error.value)


def test_max_history_is_at_most_the_history_recbole_keeps(tiny_data_path):
    with pytest.raises(SettingsError, match=r"\[max_history\] = 60 .* MAX_ITEM_LIST_LENGTH \(50\)"):
        check_settings(mllmrecr1_config(tiny_data_path, max_history=60))


def test_the_grpo_batch_rule_is_checked_before_any_training(tiny_data_path):
    with pytest.raises(ValueError, match="not divisible by grpo_num_generations"):
        check_settings(mllmrecr1_config(tiny_data_path, stages=["sft", "grpo"], grpo_batch_size=6, grpo_num_generations=4))
    check_settings(mllmrecr1_config(tiny_data_path, stages=["sft"], grpo_batch_size=6, grpo_num_generations=4))


def test_other_models_are_checked_on_the_plugin_keys_they_read_only(tiny_data_path):
    loaded = {"data_path": tiny_data_path, "state": "WARNING", "load_col": TINY_CONFIG["load_col"]}
    config = Config(model="SASRec", dataset="tiny", config_dict={**loaded, "stages": "anything"})
    check_settings(config)
    config = Config(model="SASRec", dataset="tiny", config_dict={**loaded, "eval_user_sample": "abc"})
    with pytest.raises(SettingsError, match=r"\[eval_user_sample\] = 'abc'"):
        check_settings(config)


def test_prepare_run_fails_on_a_wrong_value_before_it_reads_the_dataset(tmp_path):
    # The dataset folder is empty: reading it would fail differently.
    os.makedirs(tmp_path / "tiny")
    config = mllmrecr1_config(str(tmp_path), grpo_rewards=["hit"])
    with pytest.raises(SettingsError, match=r"\[grpo_rewards\] = \['hit'\]"):
        prepare_run(config)


@pytest.mark.parametrize("value", ["auto", True, False])
def test_every_documented_reasoning_eval_passes(tiny_data_path, value):
    check_settings(mllmrecr1_config(tiny_data_path, reasoning_eval=value))
