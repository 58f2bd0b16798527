"""The training stages as functions: build a stage's records, hand them to TRL, return what it trained.

Each function takes explicit inputs (the config, the model, the records, the stage folder) and
can run alone, as ``benchmarks/bench_training.py`` runs them. Model selection is not theirs:
the trainer passes a ``selection`` object (:class:`recbole_mllmr1.trainer.AdapterSelection`),
which a callback asks to validate every ``eval_step`` optimizer steps; it keeps the best LoRA
adapter (PEFT format) and says when to stop early.
"""
import os

from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from recbole_mllmr1.training import settings
from recbole_mllmr1.training.rewards import get_rewards
from recbole_mllmr1.training_samples import answer_record, draw_training_samples, sample_messages

# The training stages, in the order a run may list them.
STAGES = ("sft", "grpo")

# What a researcher checks first in a GRPO run, in TRL 1.x's metric names (step_time: seconds
# per GRPO optimizer step, generation included).
_LOGGED = ("loss", "reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "kl", "step_time")


class SelectionCallback(TrainerCallback):
    """Hands TRL's step metrics and validation points to the trainer's model selection."""

    def __init__(self, selection, stage, stage_dir):
        self.selection = selection
        self.stage = stage
        self.stage_dir = stage_dir

    def on_log(self, args, state, control, logs=None, **kwargs):
        record = {key: float(logs[key]) for key in _LOGGED if logs and key in logs}
        if record:
            self.selection.record({"stage": self.stage, "step": state.global_step, "kind": "train", **record})

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.selection.eval_step and state.global_step < state.max_steps:
            return control
        stop = self.selection.validate(self.stage, state.global_step, self.stage_dir)
        control.should_training_stop = control.should_training_stop or stop
        return control

    def on_save(self, args, state, control, **kwargs):
        # The HF checkpoint resumes the optimizer; the selection state must resume with it.
        self.selection.save_progress()


def attach_lora(config, model):
    """Wrap the model's LLM in a fresh LoRA adapter (the identity until trained); returns ``(trainable, total)`` parameters."""
    from peft import get_peft_model

    llm = model.language_model
    model.use_language_model(get_peft_model(llm, settings.lora_config(config, llm.config.num_hidden_layers)))
    return model.language_model.get_nb_trainable_parameters()


def sft_records(config, model, train_dataset, cot_file=None):
    """The SFT set: plain answer-only samples, or the rows of ``cot_file`` (the CoT stage's output) when ``sft_data: mixed``."""
    if config["sft_data"] == "mixed":
        from datasets import load_dataset

        return [{"prompt": r["prompt"], "completion": r["completion"]} for r in load_dataset("json", data_files=cot_file, split="train")]
    samples = draw_training_samples(model, train_dataset, config["train_samples"], config["train_candidates"], config["seed"])
    return [answer_record(model, sample) for sample in samples]


def grpo_records(config, model, train_dataset):
    """The GRPO prompts, with the candidate and target titles the rewards read."""
    samples = draw_training_samples(model, train_dataset, config["train_samples"], config["train_candidates"], config["seed"] + 1)
    return [
        {
            "prompt": sample_messages(model, s),
            "candidate_titles": [model.item_title(i) for i in s.candidates],
            "target_title": model.item_title(s.target),
        }
        for s in samples
    ]


def _callbacks(selection, stage, stage_dir, callbacks):
    return ([] if selection is None else [SelectionCallback(selection, stage, stage_dir)]) + list(callbacks)


def _train(trl_trainer, stage_dir):
    """Train, resuming from the stage folder's last checkpoint when there is one; returns TRL's ``TrainOutput``."""
    return trl_trainer.train(resume_from_checkpoint=get_last_checkpoint(stage_dir) if os.path.isdir(stage_dir) else None)


def run_sft(config, model, records, stage_dir, selection=None, callbacks=()):
    """SFT of the model's LoRA adapter on ``records`` (:func:`sft_records`), checkpoints in ``stage_dir``.

    Args:
        selection: the trainer's model selection, or None to train without validation.
        callbacks: further TRL callbacks.

    Returns:
        TRL's ``TrainOutput``; with a ``selection``, the stage's best adapter is in ``<stage_dir>/best_adapter``.
    """
    from trl import SFTTrainer

    trainer = SFTTrainer(
        model=model.language_model,
        args=settings.sft_config(config, stage_dir),
        train_dataset=Dataset.from_list(records),
        processing_class=model.tokenizer,
        callbacks=_callbacks(selection, "sft", stage_dir, callbacks),
    )
    return _train(trainer, stage_dir)


def run_grpo(config, model, records, stage_dir, selection=None, callbacks=(), num_processes=1):
    """GRPO of the model's LoRA adapter on ``records`` (:func:`grpo_records`), as :func:`run_sft`.

    ``num_processes``: the processes training together (torchrun / ``accelerate launch``), for TRL's batch rule.
    """
    from trl import GRPOTrainer

    trainer = GRPOTrainer(
        model=model.language_model,
        reward_funcs=get_rewards(config["grpo_rewards"]),
        args=settings.grpo_config(config, stage_dir, num_processes=num_processes),
        train_dataset=Dataset.from_list(records),
        processing_class=model.tokenizer,
        callbacks=_callbacks(selection, "grpo", stage_dir, callbacks),
    )
    return _train(trainer, stage_dir)
