"""One function per training stage: build its data, hand it to TRL, keep the best adapter.

Model selection is RecBole's: a callback validates through the RecBole trainer every
``eval_step`` optimizer steps, saves the best LoRA adapter (PEFT format) and stops after
``stopping_step`` validations without improvement.
"""
import os

from datasets import Dataset
from recbole.utils import early_stopping
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from recbole_mllmr1.training import settings
from recbole_mllmr1.training.rewards import get_rewards
from recbole_mllmr1.training_samples import answer_record, draw_training_samples, sample_messages

# What a researcher checks first in a GRPO run, in TRL 1.x's metric names (step_time: seconds
# per GRPO optimizer step, generation included).
_LOGGED = ("loss", "reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "kl", "step_time")


class RecBoleSelection(TrainerCallback):
    """Validates with RecBole during TRL training, keeps the best adapter, stops early."""

    def __init__(self, recbole_trainer, valid_data, stage, stage_dir):
        self.recbole_trainer = recbole_trainer
        self.valid_data = valid_data
        self.stage = stage
        self.stage_dir = stage_dir
        self.eval_step = recbole_trainer.config["eval_step"]
        self.stopping_step = recbole_trainer.config["stopping_step"]
        self.bigger = recbole_trainer.config["valid_metric_bigger"]
        self.best_score, self.stalled = recbole_trainer.stage_best.get(stage, (None, 0))

    def on_log(self, args, state, control, logs=None, **kwargs):
        record = {key: float(logs[key]) for key in _LOGGED if logs and key in logs}
        if record:
            self.recbole_trainer.record({"stage": self.stage, "step": state.global_step, "kind": "train", **record})

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.eval_step and state.global_step < state.max_steps:
            return control
        score, result = self.recbole_trainer.validate(self.stage, state.global_step, self.valid_data)
        best = self.best_score if self.best_score is not None else score - (1 if self.bigger else -1)
        self.best_score, self.stalled, stop, improved = early_stopping(
            score, best, self.stalled, max_step=self.stopping_step, bigger=self.bigger
        )
        if improved:
            self.recbole_trainer.save_adapter(os.path.join(self.stage_dir, "best_adapter"))
        self.recbole_trainer.stage_best[self.stage] = (self.best_score, self.stalled)
        control.should_training_stop = control.should_training_stop or stop
        return control

    def on_save(self, args, state, control, **kwargs):
        # The HF checkpoint resumes the optimizer; the selection state must resume with it.
        self.recbole_trainer.save_progress()


def _train(trl_trainer, stage_dir):
    trl_trainer.train(resume_from_checkpoint=get_last_checkpoint(stage_dir) if os.path.isdir(stage_dir) else None)


def run_sft(recbole_trainer, train_data, valid_data, stage_dir):
    from trl import SFTTrainer

    config, model = recbole_trainer.config, recbole_trainer.model
    records = sft_records(recbole_trainer, train_data)
    trainer = SFTTrainer(
        model=model.llm,
        args=settings.sft_config(config, stage_dir),
        train_dataset=Dataset.from_list(records),
        processing_class=model.tokenizer,
        callbacks=[RecBoleSelection(recbole_trainer, valid_data, "sft", stage_dir)],
    )
    _train(trainer, stage_dir)


def sft_records(recbole_trainer, train_data):
    """The SFT set: plain answer-only samples, or the mixed-grained CoT file when ``sft_data: mixed``."""
    config, model = recbole_trainer.config, recbole_trainer.model
    if config["sft_data"] == "mixed":
        from recbole_mllmr1.cot.build import build_mixed_grained_dataset
        from datasets import load_dataset

        # One process runs the teacher and fills the caches; under torchrun the others then read them.
        with recbole_trainer.distributed.main_process_first():
            path = build_mixed_grained_dataset(config, model, train_data._dataset, show_progress=config["show_progress"])
        return [{"prompt": r["prompt"], "completion": r["completion"]} for r in load_dataset("json", data_files=path, split="train")]
    if config["sft_data"] != "plain":
        raise ValueError(f"sft_data [{config['sft_data']}] must be 'plain' or 'mixed'.")
    samples = draw_training_samples(model, train_data._dataset, config["train_samples"], config["train_candidates"], config["seed"])
    return [answer_record(model, sample) for sample in samples]


def grpo_records(recbole_trainer, train_data):
    config, model = recbole_trainer.config, recbole_trainer.model
    samples = draw_training_samples(
        model, train_data._dataset, config["train_samples"], config["train_candidates"], config["seed"] + 1
    )
    return [
        {
            "prompt": sample_messages(model, s),
            "candidate_titles": [model.catalog.title(i) for i in s.candidates],
            "target_title": model.catalog.title(s.target),
        }
        for s in samples
    ]


def run_grpo(recbole_trainer, train_data, valid_data, stage_dir):
    from trl import GRPOTrainer

    config, model = recbole_trainer.config, recbole_trainer.model
    trainer = GRPOTrainer(
        model=model.llm,
        reward_funcs=get_rewards(config["grpo_rewards"]),
        args=settings.grpo_config(config, stage_dir, num_processes=recbole_trainer.distributed.num_processes),
        train_dataset=Dataset.from_list(grpo_records(recbole_trainer, train_data)),
        processing_class=model.tokenizer,
        callbacks=[RecBoleSelection(recbole_trainer, valid_data, "grpo", stage_dir)],
    )
    _train(trainer, stage_dir)


STAGES = {"sft": run_sft, "grpo": run_grpo}
