"""``recbole-mllmr1 compare``: MLLMRecR1 and RecBole baselines on one protocol, in one table.

Every (row, seed) runs through :func:`recbole_mllmr1.quick_start.run_recbole` with the same
dataset, leave-one-out split in time order, evaluation mode, metrics, evaluation batch size
(it fixes how RecBole batches the sampled negatives) and seed; rows differ only in their
model and its own hyperparameters (``baselines/<Model>.yaml``, the row's overrides,
``--config``). A run lives in ``<out>/runs/<model>-<config hash>/seed<seed>/``:

- ``result.json``: metrics, wall times, parameter counts and the inputs of the run;
- ``config.json``: RecBole's resolved configuration;
- ``per_user.npz``: each test user's metrics, for the paired significance tests, and
  ``per_user-<stage>.npz`` for each training stage MLLMRecR1's trainer tests;
- ``model.pth``: RecBole's best checkpoint (RecBole models);
- ``error.txt``: the traceback, when the run failed.

Rows with the same model and config share one run (e.g. "SFT" and "SFT+GRPO" are two
stages of one trained MLLMRecR1). A run whose ``result.json`` holds no error is reused
unless ``--force``. In ``--mode full`` MLLMRecR1 reranks the top ``--rerank-topk`` items of
the SASRec trained in the same comparison (same seed); its row is compared with SASRec's.
"""
import csv
import gc
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from importlib import resources

import numpy as np
import torch
import yaml

from recbole_mllmr1.config import properties_path
from recbole_mllmr1.per_user_metrics import METRICS, PerUserCollector, random_ranking_metrics
from recbole_mllmr1.plots import plot_metrics, plot_times
from recbole_mllmr1.quick_start import run_recbole
from recbole_mllmr1.significance import ALPHA, paired_bootstrap_p_value, significance_label
from recbole_mllmr1.trainer import ZERO_SHOT

LLM_MODEL = "MLLMRecR1"
RETRIEVER_MODEL = "SASRec"  # the full-ranking retriever whose top-K MLLMRecR1 reranks
DEFAULT_MODELS = ("Pop", "BPR", "GRU4Rec", "Caser", "NARM", "SASRec", "BERT4Rec", LLM_MODEL)
# One value for every row: RecBole draws sampled negatives batch by batch, so a different
# evaluation batch size would give the models different candidates. 200 rows = 20 users of
# uni9 per MLLMRecR1 progress step.
EVAL_BATCH_SIZE = 200
# The metric that picks the best baseline and that the paired test is run on.
SIGNIFICANCE_METRIC = "ndcg@10"
RANDOM_ROW = "random"
_METRIC_LABELS = {"hit": "HR", "ndcg": "NDCG", "mrr": "MRR"}


@dataclass(frozen=True)
class Row:
    """One line of the table.

    ``overrides``: the config keys that make this line differ from its model's defaults.
    ``stage``: report the test result of this training stage's best adapter (MLLMRecR1's
    trainer tests each stage) instead of the run's overall pick.
    """

    name: str
    model: str
    overrides: dict = field(default_factory=dict)
    stage: str = None

    @property
    def slug(self):
        """The row's name for ``--models`` (e.g. ``mllmrecr1-sft-grpo``)."""
        return _slug(self.name)


# MLLMRecR1 as the paper trains it: SFT on mixed-grained CoT + answer-only samples, then GRPO.
_TRAINED = {"stages": ["sft", "grpo"], "sft_data": "mixed"}

# The table's rows, in order; ``--models`` picks rows by model or by row slug. A training
# stage or an ablation is one more line.
ROWS = (
    Row("Pop", "Pop"),
    Row("BPR", "BPR"),
    Row("GRU4Rec", "GRU4Rec"),
    Row("Caser", "Caser"),
    Row("NARM", "NARM"),
    Row("SASRec", "SASRec"),
    Row("BERT4Rec", "BERT4Rec"),
    Row("MLLMRecR1 (zero-shot)", LLM_MODEL, {"stages": []}),
    Row("MLLMRecR1 (zero-shot, no image text)", LLM_MODEL, {"stages": [], "use_image_text": False}),
    Row("MLLMRecR1 (SFT)", LLM_MODEL, _TRAINED, stage="sft"),
    Row("MLLMRecR1 (SFT+GRPO)", LLM_MODEL, _TRAINED, stage="grpo"),
    Row("MLLMRecR1 (SFT+GRPO, no image text)", LLM_MODEL, {**_TRAINED, "use_image_text": False}, stage="grpo"),
    Row("MLLMRecR1 (SFT+GRPO, no CoT samples)", LLM_MODEL, {**_TRAINED, "sft_data": "plain"}, stage="grpo"),
)


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def metric_label(metric):
    name, k = metric.split("@")
    return f"{_METRIC_LABELS[name]}@{k}"


# Trained stages against the untrained model of the same run.
GAIN_COLUMN = f"gain vs zero-shot ({metric_label(SIGNIFICANCE_METRIC)})"
GAIN_P_COLUMN = "p vs zero-shot"


# ---- what to run -----------------------------------------------------------------------
def parse_mode(mode):
    """Number of candidates per test user for ``uniN`` / ``popN`` (N + 1), or None for ``full``."""
    if mode == "full":
        return None
    match = re.fullmatch(r"(uni|pop)(\d+)", mode)
    if not match or int(match.group(2)) < 1:
        raise ValueError(f"--mode [{mode}] is not an evaluation mode: use full, uniN or popN (e.g. uni9, uni99).")
    return int(match.group(2)) + 1


def select_rows(models, mode):
    """The rows named in ``models``, in that order: a model name picks all its rows, a row slug
    (e.g. ``mllmrecr1-zero-shot``) one row, and any other name a row of that model on its defaults.

    In full mode MLLMRecR1 needs the retriever, so SASRec's row is added first when missing.
    """
    rows = []
    for name in models:
        matches = [row for row in ROWS if row.model == name] or [row for row in ROWS if row.slug == _slug(name)]
        rows.extend(row for row in matches or [Row(name, name)] if row not in rows)
    if mode == "full" and any(row.model == LLM_MODEL for row in rows) and not any(row.model == RETRIEVER_MODEL for row in rows):
        print(f"Full ranking: adding {RETRIEVER_MODEL}, the retriever whose top-K {LLM_MODEL} reranks.", flush=True)
        rows.insert(0, next(row for row in ROWS if row.model == RETRIEVER_MODEL))
    return rows


def parse_overrides(items):
    """``KEY=VALUE`` (every row) and ``MODEL.KEY=VALUE`` (that model's rows); VALUE is read as YAML.

    Returns ``(overrides for every row, {model: overrides})``.
    """
    common, per_model = {}, {}
    for item in items or []:
        key, separator, value = item.partition("=")
        if not separator or not key.strip():
            raise ValueError(f"--config [{item}] is not KEY=VALUE (or MODEL.KEY=VALUE), e.g. --config epochs=2.")
        model, _, key = key.strip().rpartition(".")
        (per_model.setdefault(model, {}) if model else common)[key] = yaml.safe_load(value)
    return common, per_model


def baseline_config_file(model):
    """``baselines/<model>.yaml`` shipped with the package, or None (the model then runs on RecBole's defaults)."""
    path = resources.files("recbole_mllmr1.baselines").joinpath(f"{model}.yaml")
    return str(path) if path.is_file() else None


def protocol_config(settings, seed):
    """The evaluation protocol, identical for every row of a comparison."""
    config = {
        "seed": seed,
        "reproducibility": True,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": settings.mode},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": [1, 5, 10],
        "valid_metric": "NDCG@10",
        "eval_batch_size": EVAL_BATCH_SIZE,
        "eval_user_sample": settings.eval_user_sample,
    }
    if settings.data_path:
        config["data_path"] = settings.data_path
    return config


@dataclass
class RunSpec:
    """One run (model, config, seed): everything run_recbole receives, and where its outputs go."""

    model: str
    seed: int
    config_files: list
    config_dict: dict
    config_hash: str
    run_dir: str
    retriever: "RunSpec" = None


def config_hash(model, dataset, config_files, hashed_config):
    """Short hash of what defines a row's results, seed excluded (seeds of one row share it).

    It covers the plugin's own model yaml too (``properties/model/<Model>.yaml``), so a changed
    MLLMRecR1 default reruns its rows; RecBole's built-in defaults are taken as fixed.
    """
    plugin_defaults = properties_path("model", f"{model}.yaml")
    files = config_files + ([plugin_defaults] if os.path.isfile(plugin_defaults) else [])
    payload = {
        "model": model,
        "dataset": dataset,
        "config_files": {os.path.basename(path): open(path, encoding="utf-8").read() for path in files},
        "config": {key: value for key, value in hashed_config.items() if key != "seed"},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def plan_run(model, overrides, seed, settings, retriever=None):
    config_files = [path for path in [baseline_config_file(model)] if path]
    config_dict = {**protocol_config(settings, seed), **overrides}
    hashed = dict(config_dict)
    if retriever is not None:
        config_dict["rerank_topk"] = hashed["rerank_topk"] = settings.rerank_topk
        config_dict["retriever_checkpoint"] = os.path.join(retriever.run_dir, "model.pth")
        # The retriever's own hash, not its path: the path holds the seed and the output folder.
        hashed["retriever"] = f"{retriever.model} {retriever.config_hash}"
    cli_overrides = {**settings.overrides, **settings.model_overrides.get(model, {})}
    config_dict.update(cli_overrides)
    hashed.update(cli_overrides)
    digest = config_hash(model, settings.dataset, config_files, hashed)
    run_dir = os.path.join(settings.out, "runs", f"{_slug(model)}-{digest}", f"seed{seed}")
    return RunSpec(model, seed, config_files, config_dict, digest, run_dir, retriever)


def describe_config(row, spec, settings):
    """The config column: the yaml file, every key that differs from the shared protocol, the reported stage."""
    base = os.path.basename(spec.config_files[0]) if spec.config_files else f"{spec.model} defaults"
    protocol = protocol_config(settings, spec.seed)
    keys = [
        f"{key}={value}"
        for key, value in spec.config_dict.items()
        if key != "retriever_checkpoint" and (key not in protocol or protocol[key] != value)
    ]
    if spec.retriever is not None:
        keys.append(f"reranks {spec.retriever.model} [{spec.retriever.config_hash}]")
    if row.stage:
        keys.append(f"reports stage {row.stage}")
    return " + ".join([base] + keys)


# ---- running ---------------------------------------------------------------------------
def load_record(run_dir):
    path = os.path.join(run_dir, "result.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def _write_json(path, data):
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2, default=str)
    os.replace(staging, path)


def _count_parameters(model):
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


@contextmanager
def _recbole_reads_no_command_line():
    """RecBole's Config also reads ``--key=value`` from sys.argv, which here holds compare's own options."""
    argv = sys.argv
    sys.argv = argv[:1]
    try:
        yield
    finally:
        sys.argv = argv


def _checked(evaluation, recbole_result, what):
    """``evaluation`` after checking that its per-user means are RecBole's (rounded) numbers."""
    _, per_user = evaluation
    for metric, values in per_user.items():
        if metric in recbole_result and abs(values.mean() - recbole_result[metric]) > 1e-4:
            raise RuntimeError(
                f"per-user {metric} of the {what} evaluation averages {values.mean():.4f} but RecBole reports "
                f"{recbole_result[metric]}: the evaluations were not collected in the expected order."
            )
    return evaluation


def test_evaluations(trainer, test_result):
    """Per-user test metrics: ``{"final": ...}``, plus ``{stage: ...}`` when the trainer tests each training stage.

    MLLMRecR1's trainer tests every stage's best adapter (zero-shot first) and returns the
    best one's result; those are the last evaluations, in ``trainer.stage_results`` order.
    """
    collector = trainer.eval_collector
    stage_results = getattr(trainer, "stage_results", None) or {}
    first = len(collector.evaluations) - len(stage_results)
    evaluations = {
        stage: _checked(collector.per_user(first + index), result, f"stage {stage}")
        for index, (stage, result) in enumerate(stage_results.items())
    }
    if stage_results:
        final = next((evaluations[stage] for stage, result in stage_results.items() if dict(result) == dict(test_result)), None)
        if final is None:
            raise RuntimeError(f"the test result matches none of the stage results {list(stage_results)}.")
    else:
        final = collector.per_user()
    evaluations["final"] = _checked(final, test_result, "test")
    return evaluations


def per_user_file(run_dir, evaluation="final"):
    return os.path.join(run_dir, "per_user.npz" if evaluation == "final" else f"per_user-{evaluation}.npz")


def execute_run(spec, settings):
    """Run ``spec`` through run_recbole and write its folder; a failure becomes the record's error.

    The folder is kept between attempts (MLLMRecR1's trainer resumes an interrupted training
    from it) unless ``--force``.
    """
    if settings.force:
        shutil.rmtree(spec.run_dir, ignore_errors=True)
    os.makedirs(spec.run_dir, exist_ok=True)
    for stale in ("result.json", "error.txt"):
        if os.path.exists(os.path.join(spec.run_dir, stale)):
            os.remove(os.path.join(spec.run_dir, stale))
    record = {
        "model": spec.model,
        "seed": spec.seed,
        "dataset": settings.dataset,
        "config_hash": spec.config_hash,
        "config_files": spec.config_files,
        "config_dict": spec.config_dict,
        "error": None,
    }
    trainers = []

    def keep_per_user_metrics(trainer):
        trainer.eval_collector = PerUserCollector(trainer.config)
        trainers.append(trainer)

    try:
        if spec.retriever is not None:
            retriever_record = load_record(spec.retriever.run_dir)
            if retriever_record is None or retriever_record["error"]:
                raise RuntimeError(f"the retriever {spec.retriever.model} failed for seed {spec.seed}: see its row.")
            record["retriever_finished_at"] = retriever_record["finished_at"]
        with _recbole_reads_no_command_line():
            result = run_recbole(
                model=spec.model,
                dataset=settings.dataset,
                config_file_list=spec.config_files,
                config_dict={**spec.config_dict, "checkpoint_dir": spec.run_dir},
                saved=True,
                trainer_hook=keep_per_user_metrics,
            )
        trainer = trainers[0]
        evaluations = test_evaluations(trainer, result["test_result"])
        for name, (user_ids, per_user) in evaluations.items():
            np.savez(per_user_file(spec.run_dir, name), user_ids=user_ids, **per_user)
        means = {name: {metric: float(values.mean()) for metric, values in per_user.items()} for name, (_, per_user) in evaluations.items()}
        # A fixed name, so that MLLMRecR1 can find the retriever of its seed.
        if os.path.isfile(trainer.saved_model_file):
            os.replace(trainer.saved_model_file, os.path.join(spec.run_dir, "model.pth"))
        trainable, total = _count_parameters(trainer.model)
        n_items = getattr(trainer.model, "n_items", None)
        record.update(
            metrics=means.pop("final"),
            stage_metrics=means,
            recbole_test_result=dict(result["test_result"]),
            best_valid_result=dict(result["best_valid_result"] or {}),
            train_time_s=result["train_time_s"],
            test_time_s=result["test_time_s"],
            params_trainable=trainable,
            params_total=total,
            n_users=len(evaluations["final"][0]),
            n_items=None if n_items is None else n_items - 1,  # id 0 is RecBole's padding item
        )
        _write_json(os.path.join(spec.run_dir, "config.json"), trainer.config.final_config_dict)
    except Exception as error:  # one model's crash must not stop the comparison
        record["error"] = f"{type(error).__name__}: {error}"
        with open(os.path.join(spec.run_dir, "error.txt"), "w", encoding="utf-8") as file:
            file.write(traceback.format_exc())
    finally:
        trainers.clear()
        gc.collect()  # MLLMRecR1 runs each hold an LLM: free it before the next run
    record["finished_at"] = datetime.now(timezone.utc).isoformat()
    _write_json(os.path.join(spec.run_dir, "result.json"), record)
    return record


def is_reusable(record, spec):
    """A finished, error-free run; for a reranker, one made with the retriever as it is now."""
    if record is None or record["error"]:
        return False
    if spec.retriever is None:
        return True
    retriever_record = load_record(spec.retriever.run_dir)
    return retriever_record is not None and record.get("retriever_finished_at") == retriever_record["finished_at"]


@dataclass
class RowSeed:
    """What one row reports for one seed: its run's final test evaluation, or one training stage's."""

    seed: int
    spec: RunSpec
    record: dict
    metrics: dict = None
    per_user_file: str = None
    error: str = ""


def row_seed(row, spec, record):
    if record["error"]:
        return RowSeed(spec.seed, spec, record, error=record["error"])
    if row.stage is None:
        return RowSeed(spec.seed, spec, record, record["metrics"], per_user_file(spec.run_dir))
    if row.stage not in record["stage_metrics"]:
        tested = ", ".join(record["stage_metrics"]) or "none"
        return RowSeed(spec.seed, spec, record, error=f"the run tested no stage [{row.stage}] (tested: {tested}): add it to `stages`.")
    return RowSeed(spec.seed, spec, record, record["stage_metrics"][row.stage], per_user_file(spec.run_dir, row.stage))


def run_all(rows, settings):
    """``{row name: [RowSeed per seed]}``; the retriever runs before the rows that rerank it, and
    rows with the same model and config share one run."""
    retriever_row = next((row for row in rows if row.model == RETRIEVER_MODEL), None) if settings.mode == "full" else None
    order = ([retriever_row] if retriever_row else []) + [row for row in rows if row is not retriever_row]
    retrievers, records = {}, {}
    results = {row.name: [] for row in rows}
    total, done = len(order) * len(settings.seeds), 0
    for row in order:
        for seed in settings.seeds:
            done += 1
            retriever = retrievers.get(seed) if row.model == LLM_MODEL else None
            spec = plan_run(row.model, row.overrides, seed, settings, retriever)
            if row is retriever_row:
                retrievers[seed] = spec
            label = f"[{done}/{total}] {row.name}, seed {seed} [{spec.config_hash}]"
            if spec.run_dir in records:
                print(f"{label}: same run as an earlier row", flush=True)
            elif not settings.force and is_reusable(load_record(spec.run_dir), spec):
                records[spec.run_dir] = load_record(spec.run_dir)
                print(f"{label}: finished earlier, reused ({spec.run_dir})", flush=True)
            else:
                print(f"{label}: running...", flush=True)
                record = records[spec.run_dir] = execute_run(spec, settings)
                outcome = record["error"] or (
                    f"{metric_label(SIGNIFICANCE_METRIC)} {record['metrics'][SIGNIFICANCE_METRIC]:.4f}, "
                    f"train {record['train_time_s']:.0f} s, test {record['test_time_s']:.0f} s"
                )
                print(f"{label}: {'FAILED: ' if record['error'] else ''}{outcome}", flush=True)
            results[row.name].append(row_seed(row, spec, records[spec.run_dir]))
    return results


# ---- the table -------------------------------------------------------------------------
def table_columns():
    metric_columns = [column for metric in METRICS for column in (metric_label(metric), f"{metric_label(metric)} std")]
    return (
        ["row", "model", "seeds", "users"]
        + metric_columns
        + ["train s", "eval s", "params trainable", "params total", f"p ({metric_label(SIGNIFICANCE_METRIC)})",
           "vs best baseline", GAIN_COLUMN, GAIN_P_COLUMN, "config", "config hash", "error"]
    )


def summarize_row(row, seeds, settings):
    finished = [seed for seed in seeds if not seed.error]
    entry = {column: np.nan for column in table_columns()}
    entry.update(row=row.name, model=row.model, seeds=len(finished))
    for metric in METRICS:
        values = np.array([seed.metrics[metric] for seed in finished])
        entry[metric_label(metric)] = values.mean() if len(values) else np.nan
        entry[f"{metric_label(metric)} std"] = values.std(ddof=1) if len(values) > 1 else np.nan
    if finished:
        records = [seed.record for seed in finished]
        entry.update(
            {
                "users": records[0]["n_users"],
                "train s": np.mean([record["train_time_s"] for record in records]),
                "eval s": np.mean([record["test_time_s"] for record in records]),
                "params trainable": records[0]["params_trainable"],
                "params total": records[0]["params_total"],
            }
        )
    entry["config"] = describe_config(row, seeds[0].spec, settings)
    entry["config hash"] = seeds[0].spec.config_hash
    entry["error"] = "; ".join(f"seed {seed.seed}: {seed.error}" for seed in seeds if seed.error)
    return entry


def random_entry(settings, results):
    """Expected metrics of a uniformly random ranking of each user's candidates."""
    entry = {column: np.nan for column in table_columns()}
    entry.update(row=RANDOM_ROW, model="", seeds="", error="", **{"config hash": ""})
    n_candidates = parse_mode(settings.mode)
    if n_candidates is None:  # full ranking: every item (RecBole also masks the user's history, ignored here)
        n_candidates = next((seed.record["n_items"] for seeds in results.values() for seed in seeds
                             if not seed.record["error"] and seed.record.get("n_items")), None)
    if n_candidates is None:
        entry["error"] = "full ranking needs the number of items, which comes from a finished run: none finished."
        return entry
    for metric, value in random_ranking_metrics(n_candidates).items():
        entry[metric_label(metric)] = value
    entry["config"] = f"analytic: positive at a uniformly random rank among {n_candidates} candidates"
    return entry


def paired_values(seeds, reference_seeds, metric):
    """Per-user ``metric`` of two rows over their common seeds and users, aligned by (seed, user)."""
    values, reference = [], []
    reference_files = {seed.seed: seed.per_user_file for seed in reference_seeds if not seed.error}
    for seed in seeds:
        if seed.error or seed.seed not in reference_files:
            continue
        ours, theirs = np.load(seed.per_user_file), np.load(reference_files[seed.seed])
        _, our_index, their_index = np.intersect1d(ours["user_ids"], theirs["user_ids"], return_indices=True)
        values.append(ours[metric][our_index])
        reference.append(theirs[metric][their_index])
    return (np.concatenate(values), np.concatenate(reference)) if values else (None, None)


def add_significance(entries, results):
    """p-value of each row against the best baseline (best non-MLLMRecR1 row by NDCG@10), paired over users."""
    label = metric_label(SIGNIFICANCE_METRIC)
    baselines = [entry for entry in entries if entry["model"] not in ("", LLM_MODEL) and entry["seeds"]]
    if not baselines:
        return None
    best = max(baselines, key=lambda entry: entry[label])
    for entry in entries:
        if entry is best:
            entry["vs best baseline"] = "best baseline"
            continue
        if entry["row"] not in results:
            continue
        values, reference = paired_values(results[entry["row"]], results[best["row"]], SIGNIFICANCE_METRIC)
        if values is None or len(values) == 0:
            continue
        p_value = paired_bootstrap_p_value(values, reference)
        direction = "higher" if values.mean() > reference.mean() else "lower"
        verdict = significance_label(p_value)
        entry[f"p ({label})"] = p_value
        entry["vs best baseline"] = verdict if verdict == "n.s." else f"{direction}, {verdict}"
    return best["row"]


def add_gain_over_zero_shot(rows, entries, results):
    """A trained stage's row against the zero-shot test of the same run (same users, same candidates).

    The trainer tests the untrained model first, so "does training help" is a paired question
    within one run, apart from how far the row is from the best baseline.
    """
    for row, entry in zip(rows, entries):
        if not row.stage or row.stage == ZERO_SHOT:
            continue
        seeds = [seed for seed in results[row.name] if not seed.error]
        zero_shot = [replace(seed, per_user_file=per_user_file(seed.spec.run_dir, ZERO_SHOT)) for seed in seeds]
        if not seeds or not all(os.path.isfile(seed.per_user_file) for seed in zero_shot):
            continue
        values, reference = paired_values(seeds, zero_shot, SIGNIFICANCE_METRIC)
        entry[GAIN_COLUMN] = values.mean() - reference.mean()
        entry[GAIN_P_COLUMN] = paired_bootstrap_p_value(values, reference)


def build_table(rows, results, settings):
    row_entries = [summarize_row(row, results[row.name], settings) for row in rows]
    add_gain_over_zero_shot(rows, row_entries, results)
    entries = [random_entry(settings, results)] + row_entries
    best = add_significance(entries, results)
    return entries, best


# ---- outputs ---------------------------------------------------------------------------
def command_line(settings):
    parts = ["recbole-mllmr1 compare", f"--dataset {settings.dataset}", f"--mode {settings.mode}",
             f"--models {','.join(settings.models)}", f"--seeds {','.join(map(str, settings.seeds))}"]
    if settings.eval_user_sample:
        parts.append(f"--eval-user-sample {settings.eval_user_sample}")
    if settings.data_path:
        parts.append(f"--data-path {settings.data_path}")
    if settings.mode == "full":
        parts.append(f"--rerank-topk {settings.rerank_topk}")
    parts += [f"--config '{item}'" for item in settings.config_items]
    return " ".join(parts)


def machine():
    """One line naming the machine the table was made on (timings depend on it)."""
    cpu = platform.processor() or platform.machine()
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), {gpu}; "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, torch {torch.__version__}")


def _format(value, std=np.nan, digits=4):
    if isinstance(value, str):
        return value
    if value is None or not np.isfinite(value):
        return ""
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if np.isfinite(std) else "")


def markdown_table(entries, best, settings):
    n_candidates = parse_mode(settings.mode)
    candidates = "all items (the user's history masked)" if n_candidates is None else (
        f"the positive and {n_candidates - 1} {'uniformly' if settings.mode.startswith('uni') else 'popularity'}-sampled negatives"
    )
    p_label = f"p ({metric_label(SIGNIFICANCE_METRIC)})"
    lines = [
        f"Dataset **{settings.dataset}**, leave-one-out split in time order, each test user ranks {candidates} "
        f"(mode `{settings.mode}`); seeds {', '.join(map(str, settings.seeds))}"
        + (f"; a seeded sample of {settings.eval_user_sample} test users per seed" if settings.eval_user_sample else "")
        + ". Metrics are means over seeds (± std over seeds when there are several); MRR is MRR@10.",
        f"{p_label}: paired bootstrap over (seed, user) pairs against the best baseline"
        f"{f' ({best})' if best else ''}; n.s. = not significant at alpha {ALPHA:g}. "
        f"{GAIN_COLUMN} and {GAIN_P_COLUMN} (trained stages): the same test against the zero-shot model of the same run.",
        "",
        f"Command: `{command_line(settings)}`  ",
        f"Machine: {machine()}",
        "",
    ]
    columns = ["row"] + [metric_label(metric) for metric in METRICS] + ["train s", "eval s", "params (trainable / total)",
                                                                        p_label, "vs best baseline", GAIN_COLUMN, GAIN_P_COLUMN,
                                                                        "config", "error"]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for entry in entries:
        params = "" if not np.isfinite(entry["params total"]) else f"{int(entry['params trainable']):,} / {int(entry['params total']):,}"
        cells = (
            [entry["row"]]
            + [_format(entry[metric_label(m)], entry[f"{metric_label(m)} std"]) for m in METRICS]
            + [_format(entry["train s"], digits=1), _format(entry["eval s"], digits=1), params,
               _format(entry[p_label]), entry["vs best baseline"] if isinstance(entry["vs best baseline"], str) else "",
               _format(entry[GAIN_COLUMN]), _format(entry[GAIN_P_COLUMN]), entry["config"], entry["error"][:200]]
        )
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(entries, best, settings):
    """results.csv, results.md, metrics.png and time.png in the output folder; returns the markdown."""
    with open(os.path.join(settings.out, "results.csv"), "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=table_columns())
        writer.writeheader()
        for entry in entries:
            writer.writerow({key: "" if isinstance(value, float) and not np.isfinite(value) else value for key, value in entry.items()})
    markdown = markdown_table(entries, best, settings)
    with open(os.path.join(settings.out, "results.md"), "w", encoding="utf-8") as file:
        file.write(markdown)
    title = f"{settings.dataset}, {settings.mode}"
    plotted = [entry for entry in entries if entry["row"] == RANDOM_ROW or entry["seeds"]]
    plot_metrics(plotted, [metric_label(metric) for metric in METRICS], os.path.join(settings.out, "metrics.png"), title)
    plot_times(plotted, os.path.join(settings.out, "time.png"), title)
    return markdown


# ---- command line ----------------------------------------------------------------------
@dataclass
class Settings:
    dataset: str
    mode: str
    models: list
    seeds: list
    out: str
    force: bool
    eval_user_sample: int
    data_path: str
    rerank_topk: int
    config_items: list
    overrides: dict
    model_overrides: dict


def _comma_list(text, convert, what):
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ValueError(f"{what} [{text}] is not a comma-separated list, e.g. {what} 0,1,2.") from None


def settings_from_args(args):
    parse_mode(args.mode)
    if args.eval_user_sample is not None and args.eval_user_sample < 1:
        raise ValueError(f"--eval-user-sample [{args.eval_user_sample}] must be a positive number of users.")
    if args.rerank_topk < 2:
        raise ValueError(f"--rerank-topk [{args.rerank_topk}] must be at least 2.")
    seeds = _comma_list(args.seeds, int, "--seeds")
    models = _comma_list(args.models, str, "--models")
    if not seeds or not models:
        raise ValueError("--seeds and --models need at least one value each.")
    overrides, model_overrides = parse_overrides(args.config)
    return Settings(
        dataset=args.dataset,
        mode=args.mode,
        models=models,
        seeds=seeds,
        out=os.path.abspath(args.out or os.path.join("runs", "compare", f"{args.dataset}-{args.mode}")),
        force=args.force,
        eval_user_sample=args.eval_user_sample,
        data_path=os.path.abspath(args.data_path) if args.data_path else None,
        rerank_topk=args.rerank_topk,
        config_items=list(args.config or []),
        overrides=overrides,
        model_overrides=model_overrides,
    )


def add_arguments(parser):
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--mode", default="uni9", help="evaluation mode: full, uniN or popN (default: uni9)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated models (all their rows) or row slugs, e.g. Pop,SASRec,mllmrecr1-zero-shot; "
                             f"rows: {', '.join(row.slug for row in ROWS)} (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/compare/<dataset>-<mode>)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    parser.add_argument("--force", action="store_true", help="rerun rows whose results already exist")
    parser.add_argument("--eval-user-sample", type=int, default=None,
                        help="evaluate a seeded sample of this many test users, the same for every model (default: all)")
    parser.add_argument("--data-path", default=None, help="folder holding <dataset>/<dataset>.inter (RecBole's data_path)")
    parser.add_argument("--rerank-topk", type=int, default=20,
                        help=f"full mode: {LLM_MODEL} reranks this many top items of {RETRIEVER_MODEL} (default: 20)")
    parser.add_argument("--config", action="append", metavar="[MODEL.]KEY=VALUE",
                        help="a RecBole config key for every row, or for one model's rows (repeatable; VALUE is YAML)")


def run(args):
    settings = settings_from_args(args)
    os.makedirs(settings.out, exist_ok=True)
    rows = select_rows(settings.models, settings.mode)
    print(f"Comparing {len(rows)} rows x {len(settings.seeds)} seeds on {settings.dataset} ({settings.mode}) into {settings.out}", flush=True)
    results = run_all(rows, settings)
    entries, best = build_table(rows, results, settings)
    print(write_outputs(entries, best, settings), flush=True)
    print(f"Wrote results.csv, results.md, metrics.png and time.png to {settings.out}", flush=True)
    return 0
