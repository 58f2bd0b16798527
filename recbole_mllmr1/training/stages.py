"""The training stages as functions: build a stage's records, hand them to TRL, return what it trained.

Each function takes explicit inputs (the config, the model, the records, the stage folder) and
can run alone, as ``benchmarks/bench_training.py`` runs them. Model selection is not theirs:
the trainer passes a ``selection`` object (:class:`recbole_mllmr1.trainer.AdapterSelection`),
which a callback asks to validate every ``eval_step`` optimizer steps; it keeps the best LoRA
adapter (PEFT format) and says when to stop early.
"""
import logging
import os

from datasets import Dataset
from transformers import TrainerCallback
from transformers.trainer_utils import get_last_checkpoint

from recbole_mllmr1 import compat
from recbole_mllmr1.item_tokens import CurriculumCallback, ItemTokenCurriculum, projector_of
from recbole_mllmr1.prompts import CHAT_TEMPLATE_KWARGS
from recbole_mllmr1.training import settings
from recbole_mllmr1.training.rewards import HitSpread, get_rewards
from recbole_mllmr1.training_samples import answer_record, draw_training_samples, reference_messages, sample_messages

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


def training_samples(config, model, train_dataset, seed):
    """The stage's training samples as ``train_samples``, ``train_candidates`` and ``train_sample_per_user`` say."""
    return draw_training_samples(
        model, train_dataset, config["train_samples"], config["train_candidates"], seed, one_per_user=config["train_sample_per_user"]
    )


def sft_records(config, model, train_dataset, cot_file=None):
    """The SFT set: plain answer-only samples, or the rows of ``cot_file`` (the CoT stage's output) when ``sft_data: mixed``."""
    if config["sft_data"] == "mixed":
        from datasets import load_dataset

        return [{"prompt": r["prompt"], "completion": r["completion"]} for r in load_dataset("json", data_files=cot_file, split="train")]
    return [answer_record(model, sample) for sample in training_samples(config, model, train_dataset, config["seed"])]


def grpo_shows_rationales(config):
    """Whether GRPO prompts show CoT rationales (``cot_placement: input`` with a share for GRPO): the CoT teacher runs for GRPO."""
    return config["cot_placement"] == "input" and bool(config["cot_input_share_grpo"])


def grpo_references(config, model, train_dataset, samples):
    """``{sample index: rationale}``: the GRPO prompts that show a rationale (``cot_placement: input``).

    A share ``cot_input_share_grpo`` (seeded) of the samples for which the CoT build made a reliable
    rationale; the build runs here when no SFT stage ran it (its files are cached). Both stages draw
    the same interactions only with ``train_sample_per_user`` (and ``train_samples: ~``), as the
    official code does; otherwise few GRPO samples have a rationale.
    """
    if not grpo_shows_rationales(config):
        return {}
    from accelerate import PartialState

    from recbole_mllmr1.cot.build import build_mixed_grained_dataset, rationales_of
    from recbole_mllmr1.cot.mixing import GRPO_REFERENCE_STREAM, choose_share

    # One process runs the teacher and fills the caches; under torchrun the others then read them.
    with PartialState().main_process_first():
        cot_file = build_mixed_grained_dataset(config, model, train_dataset, show_progress=config["show_progress"])
    covered = [(i, rationale) for i, rationale in enumerate(rationales_of(cot_file, model, train_dataset, samples)) if rationale]
    shown = choose_share(len(covered), config["cot_input_share_grpo"], config["seed"], GRPO_REFERENCE_STREAM)
    return dict(covered[j] for j in shown)


def grpo_records(config, model, train_dataset):
    """The GRPO prompts, with the candidate and target titles the rewards read."""
    samples = training_samples(config, model, train_dataset, config["seed"] + 1)
    references = grpo_references(config, model, train_dataset, samples)
    return [
        {
            "prompt": reference_messages(model, s, references[index]) if index in references else sample_messages(model, s),
            "candidate_titles": [model.item_title(i) for i in s.candidates],
            "target_title": model.item_title(s.target),
        }
        for index, s in enumerate(samples)
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
        With hybrid item tokens, the projector trains with the adapter, and LLaRA's curriculum
        (``item_token_curriculum``) strips the item tokens from a share of the samples that falls
        from 1 to 0; ``metrics["hybrid_sample_share"]`` says how many samples kept them.
    """
    from trl import SFTTrainer

    compat.fuse_lm_head_on_labelled_positions_only()
    trainer = SFTTrainer(
        model=model.language_model,
        args=settings.sft_config(config, stage_dir),
        train_dataset=Dataset.from_list(records),
        processing_class=model.tokenizer,
        callbacks=_callbacks(selection, "sft", stage_dir, callbacks),
    )
    item_tokens = projector_of(model.language_model)
    if item_tokens is None:
        return _train(trainer, stage_dir)
    # SFTTrainer tokenizes its dataset once: the curriculum works on the tokenized samples, per step.
    curriculum = ItemTokenCurriculum(trainer.data_collator, item_tokens.first_item_id, config["item_token_curriculum"], config["seed"])
    trainer.data_collator = curriculum
    trainer.add_callback(CurriculumCallback(curriculum))
    output = _train(trainer, stage_dir)
    output.metrics["hybrid_sample_share"] = 1 - curriculum.stripped / curriculum.seen if curriculum.seen else None
    return output


def run_grpo(config, model, records, stage_dir, selection=None, callbacks=(), num_processes=1):
    """GRPO of the model's LoRA adapter on ``records`` (:func:`grpo_records`), as :func:`run_sft`.

    With ``grpo_lora: fresh``, GRPO trains an adapter of its own stacked on the model's adapter,
    which stays frozen (:mod:`recbole_mllmr1.training.adapters`).
    ``num_processes``: the processes training together (torchrun / ``accelerate launch``), for TRL's batch rule.
    ``metrics["hit_spread_share"]`` of the returned ``TrainOutput``: the share of steps with at least
    one prompt whose rollouts differ in the hit reward (:class:`~recbole_mllmr1.training.rewards.HitSpread`),
    the steps from which GRPO can learn which item to name.
    """
    trainer_class = _prepare_grpo_adapter(config, model)
    compat.fuse_lm_head_on_labelled_positions_only()
    rewards = get_rewards(config["grpo_rewards"])
    hit_spread = HitSpread(config["grpo_num_generations"])
    args = settings.grpo_config(config, stage_dir, num_processes=num_processes)
    args.reward_weights = [1.0] * len(rewards) + [0.0]  # the hit monitor only watches
    # Rollouts start where evaluation's reasoning starts: the paper's inference does not think.
    args.chat_template_kwargs = CHAT_TEMPLATE_KWARGS
    trainer = trainer_class(
        model=model.language_model,
        reward_funcs=rewards + [hit_spread],
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=model.tokenizer,
        callbacks=_callbacks(selection, "grpo", stage_dir, callbacks),
    )
    output = _train(trainer, stage_dir)
    output.metrics.update(hit_spread_share=hit_spread.share, hit_spread_steps=hit_spread.steps)
    return output


def _prepare_grpo_adapter(config, model):
    """Ready the adapter GRPO trains and return the trainer class for it: TRL's GRPOTrainer with
    shared-prompt rollouts (:mod:`~recbole_mllmr1.training.rollouts`) on the model's adapter
    (``grpo_lora: continue``), or a fresh adapter added on top of it and the
    :class:`~recbole_mllmr1.training.stacked_grpo.StackedGRPOTrainer` that trains it (``fresh``)."""
    if config["grpo_lora"] == "continue":
        from recbole_mllmr1.training.rollouts import SharedPromptGRPOTrainer

        return SharedPromptGRPOTrainer
    from recbole_mllmr1.training.adapters import add_fresh_grpo_adapter
    from recbole_mllmr1.training.stacked_grpo import StackedGRPOTrainer

    trainable, total = add_fresh_grpo_adapter(config, model.language_model)
    logging.getLogger().info(
        f"GRPO trains a fresh LoRA adapter on the frozen SFT adapter: {trainable:,} trainable of {total:,} parameters"
    )
    return StackedGRPOTrainer
