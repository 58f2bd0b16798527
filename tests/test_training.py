"""Real SFT and GRPO steps on a tiny dataset, RecBole model selection and resume: on a tiny random-weight LLM
(plumbing), and on the default model in the tests marked slow."""
import glob
import json
import logging
import os

import pytest
import torch
from peft import PeftModel

from recbole_mllmr1.config import Config
from recbole_mllmr1.quick_start import run_recbole
from recbole_mllmr1.training import settings
from tests.conftest import TINY_CONFIG

TRAINING = {
    **TINY_CONFIG,
    "stages": ["sft", "grpo"],
    "sft_data": "plain",
    "eval_user_sample": 8,
    "sft_steps": 2,
    "grpo_steps": 2,
    "eval_step": 1,
    "stopping_step": 5,
    "sft_batch_size": 2,
    "sft_learning_rate": 0.001,
    "grpo_learning_rate": 0.001,
    "grpo_batch_size": 2,
    "grpo_num_generations": 2,
    "grpo_max_completion_length": 6,
    "train_samples": 8,
    "train_candidates": 5,
    "max_reasoning_tokens": 6,
    "eval_args": {"mode": "uni9"},
}


def adapter_weights(folder):
    from safetensors.torch import load_file

    return load_file(os.path.join(folder, "adapter_model.safetensors"))


@pytest.fixture(
    scope="module", params=["tiny_llm_dir", pytest.param("default_llm_dir", marks=pytest.mark.slow)], ids=["tiny-llm", "smollm2-135m"]
)
def trained_run(request, tiny_data_path, tmp_path_factory):
    """SFT then GRPO, 2 steps each, with ``llm_path`` the tiny LLM, or the default model (slow):
    (run_recbole's result, the run folder, the checkpoint folder, llm_path)."""
    llm_dir = request.getfixturevalue(request.param)
    saved = str(tmp_path_factory.mktemp("saved"))
    result = run_recbole("MLLMRecR1", "tiny", config_dict={**TRAINING, "data_path": tiny_data_path, "checkpoint_dir": saved, "llm_path": llm_dir})
    (run_dir,) = glob.glob(os.path.join(saved, "MLLMRecR1-tiny-*"))
    return result, run_dir, saved, llm_dir


def _last_checkpoint(run_dir, stage):
    return adapter_weights(max(glob.glob(os.path.join(run_dir, stage, "checkpoint-*")), key=os.path.getmtime))


def test_sft_changes_the_lora_weights_and_grpo_exactly_when_its_rewards_differ(trained_run):
    _, run_dir, _, _ = trained_run
    zero_shot = adapter_weights(os.path.join(run_dir, "zero-shot", "best_adapter"))
    assert all(torch.count_nonzero(w) == 0 for name, w in zero_shot.items() if "lora_B" in name)  # identity adapter
    sft = _last_checkpoint(run_dir, "sft")
    assert any(not torch.equal(sft[name], zero_shot[name]) for name in zero_shot if "lora_B" in name)
    # GRPO starts from SFT's best adapter. With beta 0 and no weight decay, a step whose groups all got
    # equal rewards has zero advantages and no gradient: the adapter moves iff some group's rewards differed.
    with open(os.path.join(run_dir, "history.jsonl")) as file:
        grpo_steps = [r for r in map(json.loads, file) if r["stage"] == "grpo" and r["kind"] == "train"]
    signal = any(r["frac_reward_zero_std"] < 1 for r in grpo_steps)
    sft_best, grpo = adapter_weights(os.path.join(run_dir, "sft", "best_adapter")), _last_checkpoint(run_dir, "grpo")
    assert any(not torch.equal(grpo[name], sft_best[name]) for name in sft_best) == signal


def test_stage_results_history_and_plot(trained_run):
    result, run_dir, _, _ = trained_run
    stages = ["zero-shot", "sft", "grpo"]
    assert list(result["stage_results"]) == [f"{stage}{suffix}" for stage in stages for suffix in ("", " (LLM alone)", " (sequential model alone)")]
    assert set(stages) <= set(result["fusion_weights"]) and result["grpo_hit_spread"]["steps"] == 2
    assert all("ndcg@5" in metrics for metrics in result["stage_results"].values())
    with open(os.path.join(run_dir, "history.jsonl")) as file:
        history = [json.loads(line) for line in file]
    grpo_train = [r for r in history if r["stage"] == "grpo" and r["kind"] == "train"]
    assert grpo_train and {"reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "step_time"} <= set(grpo_train[0])
    assert all(r["step_time"] > 0 for r in grpo_train)
    assert [r["step"] for r in history if r["stage"] == "sft" and r["kind"] == "valid"] == [1, 2]
    assert os.path.getsize(os.path.join(run_dir, "reward_vs_valid.png")) > 5000


def test_best_adapter_loads_with_peft_and_scores_like_the_tested_model(trained_run):
    from transformers import AutoModelForCausalLM

    _, run_dir, _, llm_dir = trained_run
    base = AutoModelForCausalLM.from_pretrained(llm_dir)
    model = PeftModel.from_pretrained(base, os.path.join(run_dir, "best_adapter"))
    with open(os.path.join(run_dir, "progress.json")) as file:
        best_score, best_stage, _, _ = json.load(file)["best"]
    assert best_stage in ("zero-shot", "sft", "grpo") and model.peft_config["default"].r == 16


def test_rerunning_resumes_finished_stages_without_training(trained_run, tiny_data_path, monkeypatch):
    from recbole_mllmr1.training import stages

    result, run_dir, saved, llm_dir = trained_run
    calls = []
    monkeypatch.setattr(stages, "run_sft", lambda *args, **kwargs: calls.append("sft"))
    monkeypatch.setattr(stages, "run_grpo", lambda *args, **kwargs: calls.append("grpo"))
    again = run_recbole("MLLMRecR1", "tiny", config_dict={**TRAINING, "data_path": tiny_data_path, "checkpoint_dir": saved, "llm_path": llm_dir})
    assert calls == []
    assert again["best_valid_score"] == result["best_valid_score"]
    assert again["test_result"] == result["test_result"]


def test_testing_by_generated_lists_reuses_the_likelihood_training(trained_run, tiny_data_path, monkeypatch, caplog):
    # Adapters are selected on likelihood validation whatever eval_scoring says, so eval_scoring
    # is not part of the run key: the same command testing generatively trains nothing.
    from recbole_mllmr1.training import stages

    result, run_dir, saved, llm_dir = trained_run
    calls = []
    monkeypatch.setattr(stages, "run_sft", lambda *args, **kwargs: calls.append("sft"))
    monkeypatch.setattr(stages, "run_grpo", lambda *args, **kwargs: calls.append("grpo"))
    caplog.set_level(logging.INFO)
    generative = run_recbole(
        "MLLMRecR1", "tiny",
        config_dict={**TRAINING, "data_path": tiny_data_path, "checkpoint_dir": saved, "llm_path": llm_dir, "eval_scoring": "generative"},
    )
    assert calls == [] and glob.glob(os.path.join(saved, "MLLMRecR1-tiny-*")) == [run_dir]
    assert generative["best_valid_score"] == result["best_valid_score"]
    assert sum("generative ranking" in message for message in caplog.messages) == 3  # zero-shot, SFT and GRPO tested
    assert sum("Example ranking prompt" in message for message in caplog.messages) == 3  # each stage's adapter's reply


def test_testing_in_another_mode_reuses_the_training_validated_in_the_same_mode(trained_run, tiny_data_path, monkeypatch):
    # Adapters are selected in the validation mode; the test mode is not part of the run key (nor of
    # the cached sequential model's): validating in uni9 and testing in full ranking trains nothing.
    from recbole_mllmr1.model.sequential_recommender.mllmrecr1 import MLLMRecR1
    from recbole_mllmr1.training import stages

    result, run_dir, saved, llm_dir = trained_run
    calls = []
    monkeypatch.setattr(stages, "run_sft", lambda *args, **kwargs: calls.append("sft"))
    monkeypatch.setattr(stages, "run_grpo", lambda *args, **kwargs: calls.append("grpo"))
    full_sort_predict = MLLMRecR1.full_sort_predict

    def counted_full_sort_predict(self, interaction):
        calls.append("full")
        return full_sort_predict(self, interaction)

    monkeypatch.setattr(MLLMRecR1, "full_sort_predict", counted_full_sort_predict)
    tested_in_full = run_recbole(
        "MLLMRecR1", "tiny",
        config_dict={**TRAINING, "data_path": tiny_data_path, "checkpoint_dir": saved, "llm_path": llm_dir,
                     "eval_args": {"mode": {"valid": "uni9", "test": "full"}}},
    )
    assert glob.glob(os.path.join(saved, "MLLMRecR1-tiny-*")) == [run_dir]
    assert "sft" not in calls and "grpo" not in calls and "full" in calls  # tested by full ranking
    assert tested_in_full["best_valid_score"] == result["best_valid_score"]
    assert len(glob.glob(os.path.join(saved, "sequential_model", "*.pth"))) == 1


def test_grpo_batch_that_trl_would_reject_fails_before_training():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "grpo_batch_size": 6, "grpo_num_generations": 4})
    with pytest.raises(ValueError, match=r"6 completions per step is not divisible by grpo_num_generations \(4\)"):
        settings.grpo_config(config, "/tmp/unused")


def test_use_vllm_without_vllm_installed_gets_an_install_hint():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "use_vllm": True})
    with pytest.raises(ImportError, match=r"pip install 'recbole-mllmr1\[vllm\]'"):
        settings.grpo_config(config, "/tmp/unused")


def test_trl_configs_carry_every_setting_explicitly():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "grpo_beta": 0.04})
    grpo = settings.grpo_config(config, "/tmp/unused")
    assert (grpo.beta, grpo.loss_type, grpo.scale_rewards, grpo.num_generations) == (0.04, "dapo", "group", 4)
    assert grpo.max_completion_length == config["grpo_max_completion_length"] and not grpo.bf16 and grpo.use_cpu
    sft = settings.sft_config(config, "/tmp/unused")
    assert sft.learning_rate == config["sft_learning_rate"] and sft.completion_only_loss and not sft.bf16


def test_lora_last_layers_puts_adapters_in_the_top_layers_only(tiny_llm_dir):
    from peft import get_peft_model

    from recbole_mllmr1.llm import load_causal_lm

    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "lora_last_layers": 2, "llm_path": tiny_llm_dir})
    llm = load_causal_lm(config["llm_path"], "cpu")
    layers = llm.config.num_hidden_layers
    adapted = get_peft_model(llm, settings.lora_config(config, layers))
    adapted_layers = {int(name.split(".layers.")[1].split(".")[0]) for name, _ in adapted.named_parameters() if "lora_A" in name}
    assert adapted_layers == {layers - 2, layers - 1}
    assert settings.lora_config(Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING"}), layers).layers_to_transform is None
    config["lora_last_layers"] = layers + 1
    with pytest.raises(ValueError, match=rf"lora_last_layers \[{layers + 1}\] must be between 1 and the LLM's {layers} layers"):
        settings.lora_config(config, layers)


def test_recommend_shows_history_candidates_reasoning_and_ranking(trained_run, tiny_data_path, capsys):
    from recbole_mllmr1.cli import main as cli_main
    from recbole_mllmr1.recommend import recommend

    _, run_dir, _, _ = trained_run
    result = recommend(run_dir, "u3", data_path=tiny_data_path)
    assert 0 < len(result["history"]) <= 10 and len(result["candidates"]) == 20
    history_tokens = {token for token, _ in result["history"]}
    assert not history_tokens & {token for token, _ in result["candidates"]}  # seen items are not recommended
    assert abs(sum(p for _, _, p in result["ranking"]) - 1.0) < 1e-3
    assert isinstance(result["reasoning"], str)
    assert cli_main(["recommend", "--checkpoint", run_dir, "--user", "u3", "--data-path", tiny_data_path, "--no-reasoning"]) == 0
    # --evaluate: the history stops before the held-out item, and the output says where the model ranks it.
    evaluated = recommend(run_dir, "u3", data_path=tiny_data_path, reasoning=False, evaluate=True)
    assert evaluated["history"][-1] == result["history"][-2]
    held_out = tuple(evaluated["held_out"])
    if held_out in {tuple(entry) for entry in evaluated["candidates"]}:
        rank = [tuple(entry[:2]) for entry in evaluated["ranking"]].index(held_out) + 1
        assert evaluated["evaluation"] == f"rank {rank} of 20"
    else:
        assert evaluated["evaluation"].startswith("not retrieved (retriever rank ")
    assert cli_main(["recommend", "--checkpoint", run_dir, "--user", "u3", f"--data_path={tiny_data_path}", "--no-reasoning", "--evaluate"]) == 0
    assert f"Held-out test item: [{held_out[0]}] {held_out[1]}: {evaluated['evaluation']}" in capsys.readouterr().out


@pytest.mark.slow
def test_grpo_trains_on_two_cpu_processes(tiny_data_path, default_llm_dir, tmp_path):
    """A real 2-process gloo run. torchrun is the launcher `accelerate launch` uses for DDP; on CPU,
    `accelerate launch --cpu --num_processes 2` starts one process unless MPI is installed."""
    import subprocess
    import sys

    from tests.test_quick_start import TINY_ARGS

    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    command = [
        torchrun, "--nproc_per_node", "2", "-m", "recbole_mllmr1", "--model=MLLMRecR1", *[a for a in TINY_ARGS if "stages" not in a],
        f"--data_path={tiny_data_path}", f"--checkpoint_dir={tmp_path}", "--stages=['grpo']", "--grpo_steps=2",
        "--eval_step=2", "--grpo_batch_size=2", "--grpo_num_generations=2", "--grpo_max_completion_length=6",
        "--train_samples=8", "--train_candidates=5", "--eval_user_sample=6", "--max_reasoning_tokens=4", "--state=INFO",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    output = result.stdout + result.stderr
    first_traceback = output[output.find("Traceback") :][:4000] if "Traceback" in output else ""
    assert result.returncode == 0, first_traceback + "\n...\n" + output[-2000:]
    assert output.count("training on 2 process(es)") == 2 and "test result" in output
    (run_dir,) = glob.glob(os.path.join(tmp_path, "MLLMRecR1-tiny-*"))
    assert os.path.isfile(os.path.join(run_dir, "grpo", "done.json"))
    assert os.path.isfile(os.path.join(run_dir, "best_adapter", "adapter_model.safetensors"))


@pytest.mark.slow
def test_mixed_sft_data_holds_every_plain_sample_and_reliable_cot_samples(tiny_data_path, default_llm_dir, tmp_path):
    from recbole_mllmr1.cot.build import build_mixed_grained_dataset
    from recbole_mllmr1.prompts import parse_answer
    from recbole_mllmr1.quick_start import prepare_run
    from recbole_mllmr1.training import stages

    config = Config(model="MLLMRecR1", dataset="tiny", config_dict={
        **TRAINING, "data_path": tiny_data_path, "checkpoint_dir": str(tmp_path), "sft_data": "mixed",
        "cot_num_samples": 2, "cot_max_new_tokens": 24, "cot_cache_dir": str(tmp_path / "cot"), "cot_min_gain": None,
    })
    model, train_data, _, _ = prepare_run(config)
    cot_file = build_mixed_grained_dataset(config, model, train_data._dataset, show_progress=False)
    records = stages.sft_records(config, model, train_data._dataset, cot_file)
    plain = [r for r in records if "<think>" not in r["completion"][0]["content"]]
    assert len(plain) == config["train_samples"]
    titles = [model.item_title(item) for item in range(1, model.n_items)]
    for record in records:
        named = parse_answer(record["completion"][0]["content"], titles)
        listed = record["prompt"][-1]["content"].split("Candidates:\n")[1]
        assert named is not None and f"] {titles[named]}" in listed
