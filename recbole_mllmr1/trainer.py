"""Trainers for the plugin's models, and :func:`get_trainer`, which picks a model's trainer."""
import hashlib
import json
import logging
import os
import random
from contextlib import contextmanager

import numpy as np

import torch
import yaml
from accelerate import PartialState
from recbole.trainer import Trainer
from recbole.utils import get_trainer as get_recbole_trainer
from recbole.utils import early_stopping, init_seed, set_color

from recbole_mllmr1.config import properties_path
from recbole_mllmr1.json_files import write_json_atomically
from recbole_mllmr1.sequential_model import cached_checkpoint_path, read_checkpoint, selection_eval_args, state_dict_digest

ZERO_SHOT = "zero-shot"
# The run folder's record of the command's settings, from which `recommend` rebuilds the model,
# and the fusion weight each stage's adapter was tested with (`recommend`, `export`).
RUN_CONFIG = "run_config.json"
FUSION_WEIGHTS = "fusion_weights.json"
# Keys that change how results are computed but not what is trained or selected: the fusion
# weight is chosen after training, on the trained adapters, and adapters are selected on the
# LLM's likelihood scores whatever eval_scoring tests with. One training serves every value.
_NOT_IN_RUN_KEY = {
    "show_progress", "llm_batch_size", "eval_batch_size", "state", "fusion_weight", "fusion_grid", "rerank_topk", "eval_scoring",
}
# Suffixes of a stage's test rows scored by the LLM alone and by the sequential model alone
# (fusion weights 0 and 1), next to its fused row: the same users and candidates.
LLM_ALONE = " (LLM alone)"
SEQUENTIAL_ALONE = " (sequential model alone)"


def run_key(config):
    """A short hash of everything that defines a training run, naming its folder so a rerun resumes it.

    ``eval_args`` counts without its test mode (:func:`~recbole_mllmr1.sequential_model.selection_eval_args`):
    adapters are selected in the validation mode, so one training is tested in every mode.
    """
    with open(properties_path("model", f"{config['model']}.yaml")) as model_yaml:
        keys = sorted(set(yaml.safe_load(model_yaml)) - _NOT_IN_RUN_KEY) + ["dataset", "seed"]
    described = {key: config[key] for key in keys}
    described["eval_args"] = selection_eval_args(config["eval_args"])
    if config["model"] == "MLLMRecR1":
        # The sequential model the adapters were trained against, in place of retriever_checkpoint's
        # path: a different model starts a new run, the same one saved elsewhere does not.
        del described["retriever_checkpoint"]
        described["sequential_model_identity"] = _sequential_model_identity(config)
    described = json.dumps(described, sort_keys=True, default=str)
    return hashlib.sha256(described.encode()).hexdigest()[:10]


def pick_fusion_weight(scores, bigger=True):
    """The weight with the best validation score in ``{weight: score}``; a tie goes to the smaller weight."""
    best = max(scores.values()) if bigger else min(scores.values())
    return min(weight for weight, score in scores.items() if score == best)


def _sequential_model_identity(config):
    """A given ``retriever_checkpoint`` by its weights, not its path: ``compare`` trains its SASRec
    row in each comparison's folder, and the same model trained again elsewhere keeps the run. The
    run's own sequential model by its cache name, which covers its config and data files."""
    if config["retriever_checkpoint"]:
        return state_dict_digest(read_checkpoint(config["retriever_checkpoint"])["state_dict"])
    return os.path.basename(cached_checkpoint_path(config)) if config["sequential_model"] else None


class AdapterSelection:
    """RecBole model selection inside a training stage: the trainer owns it, the stage functions call it.

    Each validation scores the current adapter through RecBole's evaluation, saves the stage's
    best adapter in ``<stage dir>/best_adapter`` (and the run's best in ``best_adapter``) and
    says when the stage has gone ``stopping_step`` validations without improvement.
    """

    def __init__(self, trainer, valid_data):
        self._trainer = trainer
        self._valid_data = valid_data
        self.eval_step = trainer.config["eval_step"]
        self.stopping_step = trainer.config["stopping_step"]
        self.bigger = trainer.config["valid_metric_bigger"]

    def record(self, entry):
        """Add a training-log entry to the run's history."""
        self._trainer.record(entry)

    def validate(self, stage, step, stage_dir):
        """Validate the current adapter at ``step`` of ``stage``; returns whether the stage should stop."""
        score, _ = self._trainer.validate(stage, step, self._valid_data)
        best_score, stalled = self._trainer.stage_best.get(stage, (None, 0))
        best = best_score if best_score is not None else score - (1 if self.bigger else -1)
        best_score, stalled, stop, improved = early_stopping(score, best, stalled, max_step=self.stopping_step, bigger=self.bigger)
        if improved:
            self._trainer.save_adapter(os.path.join(stage_dir, "best_adapter"))
            self._trainer.best_validation_scores[stage] = self._trainer.last_validation_scores
        self._trainer.stage_best[stage] = (best_score, stalled)
        return stop

    def save_progress(self):
        """Write the selection state, so that a resumed stage continues it."""
        self._trainer.save_progress()


class MLLMRecR1Trainer(Trainer):
    """Runs MLLMRecR1's ``stages`` (SFT, then GRPO; LoRA through TRL) with RecBole model selection.

    With ``stages: []`` the model is evaluated zero-shot. Otherwise zero-shot is validated
    first (a fresh LoRA adapter is the identity, so it is the zero-shot model), each stage
    validates every ``eval_step`` steps, and the best adapter over all of them is tested.
    Everything lives in ``<checkpoint_dir>/MLLMRecR1-<dataset>-<run key>/``: rerunning the
    same command resumes an interrupted run from its last checkpoint.
    """

    def __init__(self, config, model):
        super().__init__(config, model)
        self.logger = logging.getLogger()
        # Under torchrun / `accelerate launch` (DDP / DeepSpeed) TRL trains on every process. On CPU the
        # process group (gloo) only forms when the state is created with cpu=True, as TRL's use_cpu does.
        self.distributed = PartialState(cpu=torch.device(config["device"]).type == "cpu")
        self.stages = list(config["stages"] or [])
        self.run_dir = os.path.join(config["checkpoint_dir"], f"MLLMRecR1-{config['dataset']}-{run_key(config)}")
        self.history, self.stage_best, self.best, self.stage_results = [], {}, None, None
        # The fusion weight each stage's best adapter is tested with (chosen on validation when 'auto'),
        # and the LLM's validation scores of each stage's best adapter, from which it is chosen.
        self.fusion_weights, self.best_validation_scores, self.last_validation_scores = {}, {}, None
        if self.stages:
            self._attach_lora()
            self._load_progress()
            # What `recbole-mllmr1 recommend --checkpoint <run dir>` needs to rebuild this model.
            if self.distributed.is_main_process:
                write_json_atomically(
                    os.path.join(self.run_dir, RUN_CONFIG), {"dataset": config["dataset"], **config.external_config_dict}, indent=1
                )

    # ---- state on disk --------------------------------------------------------------
    def _attach_lora(self):
        from recbole_mllmr1.training.stages import attach_lora

        trainable, total = attach_lora(self.config, self.model)
        self.logger.info(
            f"LoRA adapter: {trainable:,} trainable of {total:,} parameters ({100 * trainable / total:.2f}%); "
            f"training on {self.distributed.num_processes} process(es)"
        )

    def _load_progress(self):
        history_file = os.path.join(self.run_dir, "history.jsonl")
        if os.path.isfile(history_file):
            with open(history_file) as file:
                self.history = [json.loads(line) for line in file if line.strip()]
        progress_file = os.path.join(self.run_dir, "progress.json")
        if os.path.isfile(progress_file):
            with open(progress_file) as file:
                progress = json.load(file)
            self.best = progress["best"]
            self.stage_best = {stage: tuple(value) for stage, value in progress["stage_best"].items()}
            self.logger.info(set_color("Resuming", "green") + f" the run in {self.run_dir}")

    def record(self, entry):
        """Append to the run's history (the plot's data); zero-shot-only runs keep none."""
        if not self.stages:
            return
        self.history.append(entry)
        if not self.distributed.is_main_process:
            return
        os.makedirs(self.run_dir, exist_ok=True)
        with open(os.path.join(self.run_dir, "history.jsonl"), "a") as file:
            file.write(json.dumps(entry, default=str) + "\n")

    def save_progress(self):
        if self.distributed.is_main_process:
            write_json_atomically(os.path.join(self.run_dir, "progress.json"), {"best": self.best, "stage_best": self.stage_best}, indent=1)

    def save_adapter(self, folder):
        """The LoRA adapter in PEFT format (``PeftModel.from_pretrained`` loads it).

        Every process validates identically (so all agree on early stopping); one writes.
        """
        if self.distributed.is_main_process:
            self.model.language_model.save_pretrained(folder)
        self.distributed.wait_for_everyone()

    def load_adapter(self, folder):
        """A stage's saved adapter, active from now on (with ``grpo_lora: fresh``, GRPO's stacked on SFT's)."""
        from recbole_mllmr1.training.adapters import load_adapters

        load_adapters(self.model.language_model, folder)

    # ---- RecBole's interface ----------------------------------------------------------
    @contextmanager
    def same_candidates(self):
        """Inside, RecBole's sampled evaluation draws the same negatives every time (it draws them
        from numpy's global RNG): every validation compares adapters and fusion weights on the same
        candidates. The random states outside are restored, so training's randomness is untouched."""
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        init_seed(self.config["seed"] + self.config["local_rank"], self.config["reproducibility"])
        try:
            yield
        finally:
            random.setstate(states[0])
            np.random.set_state(states[1])
            torch.set_rng_state(states[2])

    def validate(self, stage, step, valid_data):
        """RecBole validation of the current adapter; the best one so far is kept in ``best_adapter``.

        Adapters are selected on the LLM's own likelihood scores, with ``eval_scoring: generative``
        too: a generated list ranks only the candidates it names (the official code selects
        nothing: it trains fixed epochs), and one training then serves both ways of testing.
        """
        self.model.set_reasoning(self._reasons_after(stage))
        self.model.set_fusion_weight(0.0)
        self.model.set_generative_eval(False)
        was_training = self.model.language_model.training
        with self.same_candidates(), self.model.remembering_llm_scores() as llm_scores:
            score, result = self._valid_epoch(valid_data, show_progress=self.config["show_progress"])
        self.model.set_generative_eval(self.config["eval_scoring"] == "generative")
        self.last_validation_scores = llm_scores
        # RecBole's evaluate leaves the model in eval mode; TRL reads the mode to file its step metrics.
        self.model.language_model.train(was_training)
        self.record({"stage": stage, "step": step, "kind": "valid", "score": score, "result": dict(result)})
        self.logger.info(set_color(f"{stage} step {step} valid", "blue") + f": {self.valid_metric}={score:.4f} {dict(result)}")
        # >= as in RecBole's early_stopping, so the overall best is always some stage's best adapter.
        improved = self.best is None or (score >= self.best[0] if self.valid_metric_bigger else score <= self.best[0])
        if self.stages and improved:
            self.best = [score, stage, step, dict(result)]
            self.save_adapter(os.path.join(self.run_dir, "best_adapter"))
            self.save_progress()
        return score, result

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        if not self.stages:
            self.logger.info(set_color("MLLMRecR1: zero-shot evaluation (no training stages)", "green"))
            if valid_data is None:
                return -1, None
            self.best_valid_score, self.best_valid_result = self.validate(ZERO_SHOT, 0, valid_data)
            self.best_validation_scores[ZERO_SHOT] = self.last_validation_scores
            self.fusion_weights[ZERO_SHOT] = self.choose_fusion_weight(ZERO_SHOT, valid_data)
            return self.best_valid_score, self.best_valid_result

        if not any(r["stage"] == ZERO_SHOT and r["kind"] == "valid" for r in self.history):
            self.validate(ZERO_SHOT, 0, valid_data)
            self.best_validation_scores[ZERO_SHOT] = self.last_validation_scores
            self.save_adapter(os.path.join(self.run_dir, ZERO_SHOT, "best_adapter"))
        selection = AdapterSelection(self, valid_data)
        for stage in self.stages:
            stage_dir = os.path.join(self.run_dir, stage)
            if os.path.isfile(os.path.join(stage_dir, "done.json")):
                self.logger.info(f"Stage {stage} already finished in {stage_dir}: reusing its best adapter")
            else:
                self.logger.info(set_color(f"Stage {stage}", "green") + f" -> {stage_dir}")
                self._run_stage(stage, train_data._dataset, stage_dir, selection)
                if self.distributed.is_main_process:
                    write_json_atomically(os.path.join(stage_dir, "done.json"), {"best": self.stage_best.get(stage)}, indent=1)
                self.distributed.wait_for_everyone()
            # The next stage continues from this stage's best adapter, as model selection chose it.
            self.load_adapter(os.path.join(stage_dir, "best_adapter"))

        for stage in [ZERO_SHOT] + self.stages:
            self.load_adapter(os.path.join(self.run_dir, stage, "best_adapter"))
            self.model.set_reasoning(self._reasons_after(stage))
            self.fusion_weights[stage] = self.choose_fusion_weight(stage, valid_data)
        if self.distributed.is_main_process:
            write_json_atomically(os.path.join(self.run_dir, FUSION_WEIGHTS), {**self.fusion_weights, "best": self.best[1]}, indent=1)
            self._plot_curves()
        self.best_valid_score, _, _, self.best_valid_result = self.best
        return self.best_valid_score, self.best_valid_result

    def choose_fusion_weight(self, stage, valid_data):
        """The fusion weight ``stage``'s adapter is tested with: ``fusion_weight``, or with 'auto' the
        weight of ``fusion_grid`` that scores best on RecBole's validation set.

        Every weight is validated on the candidates of every validation, with the LLM's scores of
        the stage's best adapter from its own validation (computed again only after a resume). A
        tie goes to the smaller weight: the LLM keeps its say unless the sequential model does
        better. The grid's scores go to the run's history. With ``eval_scoring: generative`` the
        weight is 0: a generated ranking has no log-probabilities to mix (check_settings refuses
        an explicit non-zero weight with it).
        """
        setting = 0.0 if self.model.generative_eval else self.config["fusion_weight"]
        if setting != "auto":
            self.model.set_fusion_weight(setting)
            return float(setting)
        scores = {}
        with self.model.remembering_llm_scores(self.best_validation_scores.get(stage)):
            for weight in sorted(self.config["fusion_grid"]):
                self.model.set_fusion_weight(weight)
                with self.same_candidates():
                    scores[weight], _ = self._valid_epoch(valid_data, show_progress=False)
        chosen = pick_fusion_weight(scores, self.valid_metric_bigger)
        self.model.set_fusion_weight(chosen)
        self.record({"stage": stage, "kind": "fusion", "scores": {str(w): s for w, s in scores.items()}, "chosen": chosen})
        grid = ", ".join(f"{w:g}: {s:.4f}" for w, s in scores.items())
        self.logger.info(set_color(f"{stage} fusion weight", "blue") + f": {chosen:g} (validation {self.valid_metric} by weight: {grid})")
        return chosen

    def _run_stage(self, stage, train_dataset, stage_dir, selection):
        """Build the stage's records (running the CoT stage first for ``sft_data: mixed``) and train it."""
        from recbole_mllmr1.training import stages

        config, model = self.config, self.model
        if stage == "grpo":
            records = stages.grpo_records(config, model, train_dataset)
            output = stages.run_grpo(config, model, records, stage_dir, selection, num_processes=self.distributed.num_processes)
            share, steps = output.metrics["hit_spread_share"], output.metrics["hit_spread_steps"]
            self.record({"stage": stage, "kind": "hit_spread", "share": share, "steps": steps})
            self.logger.info(
                set_color("GRPO", "blue") + f": {share:.0%} of {steps} steps had a prompt whose rollouts differ in the hit "
                "reward (the steps that can teach which item to name)"
            )
            return
        cot_file = None
        if config["sft_data"] == "mixed":
            from recbole_mllmr1.cot.build import build_mixed_grained_dataset

            # One process runs the teacher and fills the caches; under torchrun the others then read them.
            with self.distributed.main_process_first():
                cot_file = build_mixed_grained_dataset(config, model, train_dataset, show_progress=config["show_progress"])
        output = stages.run_sft(config, model, stages.sft_records(config, model, train_dataset, cot_file), stage_dir, selection)
        if "hybrid_sample_share" in output.metrics:
            self.record({"stage": stage, "kind": "curriculum", "hybrid_sample_share": output.metrics["hybrid_sample_share"]})

    def _plot_curves(self):
        """The reward-vs-validation PNG, in the run folder and next to the RecBole log."""
        from recbole_mllmr1.training.curves import plot_training_curves

        paths = [os.path.join(self.run_dir, "reward_vs_valid.png")]
        paths += [
            os.path.splitext(h.baseFilename)[0] + "-reward_vs_valid.png"
            for h in logging.getLogger().handlers
            if isinstance(h, logging.FileHandler)
        ]
        for path in paths:
            plot_training_curves(self.history, self.valid_metric, path)
        self.logger.info(f"Train reward vs. validation plot: {', '.join(paths)}")

    def _reasons_after(self, stage):
        """Whether evaluation first lets the model reason (greedy) and scores after its reasoning."""
        setting = self.config["reasoning_eval"]
        if setting == "auto":
            return stage == "grpo"
        return bool(setting)

    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """With training stages and ``load_best_model``: test every stage's best adapter (kept in
        ``stage_results``) and return the result of the overall best, which is one of them."""
        if self.stages and load_best_model:
            if self.best is None:
                raise RuntimeError(f"No validated adapter in {self.run_dir}: call fit() before evaluate(load_best_model=True).")
            self.stage_results = self.test_each_stage(eval_data)
            self.logger.info(f"Best adapter: {self.best[1]} step {self.best[2]}")
            return self.stage_results[self.best[1]]
        return self._evaluate_as_is(eval_data, show_progress)

    def _evaluate_as_is(self, eval_data, show_progress):
        """RecBole's evaluation of the model as it is now; with generative scoring, also logs how
        many of its replies ranked fewer candidates than asked (an unparseable one ranks none)."""
        result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        tally = self.model.pop_generation_tally()
        if tally:
            self.logger.info(
                set_color("generative ranking", "blue") + f": {tally['replies']} replies; {tally['listed none']} ranked no "
                f"candidate (unparseable), {tally['listed fewer than asked']} fewer than the {self.model.generative_topk} asked"
            )
        return result

    def _spilt_predict(self, interaction, batch_size):
        """All of a batch's rows in one ``predict``, never RecBole's chunks of ``eval_batch_size`` rows.

        RecBole's sampled evaluation cuts a batch longer than ``eval_batch_size`` into chunks,
        splitting a user's candidates (uni99 at ``eval_batch_size`` 64). ``predict`` ranks a
        user's candidates against each other, so the chunk holding row 0, the positive, would
        outrank the others' rows and inflate every metric. The model batches its prompts itself
        (``llm_batch_size``), so the rows need no chunking for memory.
        """
        return self.model.predict(interaction.to(self.device))

    def test_each_stage(self, test_data):
        """Test results of each stage's best adapter, zero-shot first, with the stage's fusion weight;
        with a sequential model, also the LLM alone (``<stage> (LLM alone)``, weight 0) and the
        sequential model alone (``<stage> (sequential model alone)``, weight 1) on the same candidates."""
        results = {}
        for stage in [ZERO_SHOT] + self.stages:
            self.load_adapter(os.path.join(self.run_dir, stage, "best_adapter"))
            self.model.set_reasoning(self._reasons_after(stage))
            weight = self.fusion_weights.get(stage, self.model.fusion_weight)
            variants = [(stage, weight)]
            if self.model.sequential_model is not None:
                variants += [(stage + LLM_ALONE, 0.0), (stage + SEQUENTIAL_ALONE, 1.0)]
            with self.model.remembering_llm_scores():
                for name, tested_weight in variants:
                    self.model.set_fusion_weight(tested_weight)
                    # Sampled-evaluation negatives come from numpy's global RNG: the same seed, the same candidates.
                    init_seed(self.config["seed"] + self.config["local_rank"], self.config["reproducibility"])
                    results[name] = self._evaluate_as_is(test_data, self.config["show_progress"])
                    self.fusion_weights[name] = tested_weight
            self.model.set_fusion_weight(weight)
        return results


_PLUGIN_TRAINERS = {"MLLMRecR1": MLLMRecR1Trainer}


def get_trainer(model_type, model_name):
    """Return the plugin's trainer for ``model_name`` when it has one, else RecBole's choice (as RecBole-GNN does)."""
    return _PLUGIN_TRAINERS.get(model_name) or get_recbole_trainer(model_type, model_name)
