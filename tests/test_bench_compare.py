"""The headline benchmark's command line: what it hands to `recbole-mllmr1 compare`."""
import argparse
from pathlib import Path

import pytest
import yaml

from recbole_mllmr1.compare.settings import parse_overrides
from tests.conftest import load_benchmark

REPOSITORY = Path(__file__).resolve().parents[1]


def test_mllmrecr1_config_reaches_every_mllmrecr1_row_with_its_yaml_types(tmp_path):
    settings = {"grpo_learning_rate": 0.00005, "sft_steps": 24, "stages": ["sft", "grpo"], "use_image_text": False}
    config_file = tmp_path / "cpu.yaml"
    config_file.write_text(yaml.safe_dump(settings))
    args = argparse.Namespace(models="SASRec,MLLMRecR1", seeds="0", eval_user_sample=10, reduced=True, force=False,
                              mllmrecr1_config=[str(config_file)], tag=None, config=None, valid_mode=None, trainings=None)
    arguments = load_benchmark("bench_compare").compare_arguments("uni9", args)
    items = [a.removeprefix("--config=") for a in arguments if a.startswith("--config=")]
    common, per_model = parse_overrides(items)
    assert not common and per_model["SASRec"] == {"epochs": 2}
    # 5e-05 written plainly would read back as the string '5e-05'.
    assert {key: per_model["MLLMRecR1"][key] for key in settings} == settings


def test_later_mllmrecr1_configs_override_earlier_ones(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"sft_steps": 24, "max_history": 5}))
    (tmp_path / "longer.yaml").write_text(yaml.safe_dump({"sft_steps": 120}))
    args = argparse.Namespace(models="MLLMRecR1", seeds="0", eval_user_sample=10, reduced=False, force=False,
                              mllmrecr1_config=[str(tmp_path / "base.yaml"), str(tmp_path / "longer.yaml")], tag=None, config=None,
                              valid_mode=None, trainings=None)
    arguments = load_benchmark("bench_compare").compare_arguments("uni9", args)
    _, per_model = parse_overrides([a.removeprefix("--config=") for a in arguments if a.startswith("--config=")])
    assert per_model["MLLMRecR1"] == {"sft_steps": 120, "max_history": 5}


def test_every_user_and_a_tag_give_their_own_folder_and_no_user_sample():
    args = argparse.Namespace(models="SASRec", seeds="0", eval_user_sample=0, reduced=False, force=False,
                              mllmrecr1_config=None, tag="gpu", config=None, valid_mode=None, trainings=None)
    arguments = load_benchmark("bench_compare").compare_arguments("uni9", args)
    assert "--eval-user-sample" not in arguments
    assert arguments[arguments.index("--out") + 1].endswith("bench_compare/uni9_gpu")


def _shipped_configs(*names):
    """The settings of shipped config files layered in order, as --mllmrecr1-config layers them."""
    settings = {}
    for name in names:
        settings.update(yaml.safe_load((REPOSITORY / "properties" / "quick_start_config" / name).read_text()))
    return settings


@pytest.mark.parametrize("names, not_numbers", [
    (["compare_cpu_training.yaml"], set()),
    (["compare_cpu_training.yaml", "compare_cpu_long.yaml"], {"lora_target_modules"}),
    (["gpu_default_model.yaml"], {"llm_dtype", "sft_data", "lora_target_modules"}),
])
def test_the_shipped_training_configs_read_their_numbers_as_numbers(names, not_numbers):
    settings = _shipped_configs(*names)
    assert {key for key, value in settings.items() if not isinstance(value, (int, float))} == not_numbers
    assert settings["stopping_step"] >= 1
    assert settings["grpo_batch_size"] % settings["grpo_num_generations"] == 0
