"""The training path of issue 21 trains what the path before it trained: the same seed gives the same
losses and the same LoRA adapter, for SFT and GRPO, on the tiny random-weight LLM (grounded: item
tokens and their projector train too).

The old path is ``bench_training.before_issue_21`` (the benchmark's "before" rows): autograd anomaly
detection on, TRL's LM head over every position, and GRPO rollouts that each run their prompt.
Anomaly detection only checks, so it changes nothing; the LM head does the same arithmetic on the
rows it keeps; a shared prompt cache holds the keys and values each rollout would compute. GRPO runs
with ``lora_dropout: 0`` here: TRL generates in training mode, and with dropout the shared prompt
takes one dropout draw where each rollout took its own (recbole_mllmr1/training/rollouts.py).
Measured here: bitwise equal (every difference 0.0, and the default model's SFT losses and gradient
norms too). Tolerance: 1e-6 on losses, gradient norms and weights, room for a BLAS that rounds a
row's last bit differently when a matmul has fewer rows (~1e-7 relative), not for a different
computation.
"""
import pytest

from recbole_mllmr1.config import Config
from recbole_mllmr1.quick_start import prepare_run
from recbole_mllmr1.training import stages
from tests.conftest import load_benchmark
from tests.test_training import TRAINING

TOLERANCE = 1e-6


def _length_reward(completions, **kwargs):
    """Rewards that differ within a group, so that GRPO's loss and gradients are not zero on a random model."""
    return [float(len(completion[0]["content"])) for completion in completions]


def _train(stage, tiny_data_path, tiny_llm_dir, folder):
    """One stage of 2 steps from a fresh model: (per-step losses and gradient norms, the trainable parameters after it)."""
    from transformers import TrainerCallback

    dropout = {"lora_dropout": 0.0} if stage == "grpo" else {}
    config = Config(model="MLLMRecR1", dataset="tiny", config_dict={
        **TRAINING, **dropout, "stages": [stage], "data_path": tiny_data_path, "checkpoint_dir": str(folder / "saved"), "llm_path": tiny_llm_dir})
    model, train_data, _, _ = prepare_run(config)
    stages.attach_lora(config, model)
    losses = []

    class RecordLosses(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                losses.append((logs["loss"], logs["grad_norm"]))

    if stage == "sft":
        stages.run_sft(config, model, stages.sft_records(config, model, train_data._dataset), str(folder / stage), callbacks=[RecordLosses()])
    else:
        stages.run_grpo(config, model, stages.grpo_records(config, model, train_data._dataset), str(folder / stage), callbacks=[RecordLosses()])
    return losses, {name: p.detach().clone() for name, p in model.language_model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("stage", ["sft", "grpo"])
def test_the_new_training_path_trains_the_same_adapter_as_the_old_one(stage, tiny_data_path, tiny_llm_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(stages, "get_rewards", lambda names: [_length_reward])
    with load_benchmark("bench_training").before_issue_21():
        old_losses, old_weights = _train(stage, tiny_data_path, tiny_llm_dir, tmp_path / "old")
    new_losses, new_weights = _train(stage, tiny_data_path, tiny_llm_dir, tmp_path / "new")
    # A real signal to compare (GRPO's loss is 0 at its first iteration when the group's completions are
    # equally long, its gradient is not).
    assert len(new_losses) == 2 and all(grad_norm > 0 for _, grad_norm in new_losses)
    assert [value for step in new_losses for value in step] == pytest.approx([value for step in old_losses for value in step], abs=TOLERANCE)
    assert new_weights.keys() == old_weights.keys()
    assert max(float((new_weights[name] - old_weights[name]).abs().max()) for name in new_weights) <= TOLERANCE

