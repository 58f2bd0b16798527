"""The switch benchmark's plan: what each MLLMRecR1 run of `bench_paper_switches.py` is given."""
import argparse

import yaml

from recbole_mllmr1.compare.plan import plan_run
from tests.conftest import load_benchmark

bench = load_benchmark("bench_paper_switches")


def _settings():
    args = argparse.Namespace(seeds="0", eval_user_sample=200, force=False, tag=bench.TAG)
    settings, _ = bench.compare_settings(args)
    return settings


def _planned_configs():
    settings = _settings()
    return {key: plan_run(row.model, row.overrides, 0, settings) for key, row in bench.switch_rows().items()}


def test_every_run_gets_the_shared_settings_over_the_cpu_sizes():
    # grounding_cpu.yaml trains answer-only SFT on 480 samples with 2 prompts a GRPO step; the
    # benchmark needs the CoT samples, its own 96 samples and 1 prompt of 8 rollouts: the shared
    # settings must win over the sizes they come with.
    sizes = yaml.safe_load(bench.CONFIG.read_text())
    assert sizes["sft_data"] == "plain" and sizes["train_samples"] != 96 and sizes["grpo_batch_size"] != 8
    for spec in _planned_configs().values():
        config = spec.config_dict
        assert {key: config[key] for key in bench.SHARED} == bench.SHARED
        assert config["max_history"] == sizes["max_history"] and config["lora_last_layers"] == sizes["lora_last_layers"]


def test_each_training_differs_from_the_defaults_only_in_its_switch():
    specs = _planned_configs()
    defaults = specs[(bench.DEFAULTS, "SFT")].config_dict
    for (training, _), spec in specs.items():
        differing = {key for key in set(defaults) | set(spec.config_dict) if defaults.get(key) != spec.config_dict.get(key)}
        assert differing == set(bench.TRAININGS[training])


def test_the_stages_of_one_training_share_its_run_and_trainings_do_not():
    specs = _planned_configs()
    for training in bench.TRAININGS:
        assert len({specs[(training, label)].run_dir for label in bench.STAGES}) == 1
    assert len({spec.run_dir for spec in specs.values()}) == len(bench.TRAININGS)
