"""``recbole-mllmr1 compare``: MLLMRecR1 and RecBole baselines on one protocol, in one table.

Every (row, seed) runs through :func:`recbole_mllmr1.quick_start.run_recbole` with the same
dataset, leave-one-out split in time order, evaluation mode, metrics, evaluation batch size
(it fixes how RecBole batches the sampled negatives) and seed; rows differ only in their
model and its own hyperparameters (``baselines/<Model>.yaml``, the row's overrides,
``--config``). A run lives in ``<out>/runs/<row>/seed<seed>-<config hash>/``:

- ``result.json``: metrics, wall times, parameter counts and the inputs of the run;
- ``config.json``: RecBole's resolved configuration;
- ``per_user.npz``: each test user's metrics, for the paired significance tests;
- ``model.pth``: RecBole's best checkpoint (models that train);
- ``error.txt``: the traceback, when the run failed.

A run whose ``result.json`` holds no error is reused unless ``--force``. In ``--mode full``
MLLMRecR1 reranks the top ``--rerank-topk`` items of the SASRec trained in the same
comparison (same seed); its row is compared with SASRec's.
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
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources

import numpy as np
import torch
import yaml

from recbole_mllmr1.per_user_metrics import METRICS, PerUserCollector, random_ranking_metrics
from recbole_mllmr1.plots import plot_metrics, plot_times
from recbole_mllmr1.quick_start import run_recbole
from recbole_mllmr1.significance import ALPHA, paired_bootstrap_p_value, significance_label

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
    """One line of the table: a model and the config keys that make this line differ from its model's defaults."""

    name: str
    model: str
    overrides: dict = field(default_factory=dict)


# The table's rows, in order; ``--models`` picks rows by model. MLLMRecR1's training stages
# and ablations are one line each, e.g. Row("MLLMRecR1 (SFT+GRPO)", LLM_MODEL, {"stages": [...]}).
ROWS = (
    Row("Pop", "Pop"),
    Row("BPR", "BPR"),
    Row("GRU4Rec", "GRU4Rec"),
    Row("Caser", "Caser"),
    Row("NARM", "NARM"),
    Row("SASRec", "SASRec"),
    Row("BERT4Rec", "BERT4Rec"),
    Row("MLLMRecR1 (zero-shot)", LLM_MODEL),
    Row("MLLMRecR1 (zero-shot, no image text)", LLM_MODEL, {"use_image_text": False}),
)


def metric_label(metric):
    name, k = metric.split("@")
    return f"{_METRIC_LABELS[name]}@{k}"


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
    """The rows of ``models`` in the order given; a model without a row in ROWS gets a plain row.

    In full mode MLLMRecR1 needs the retriever, so SASRec's row is added first when missing.
    """
    rows = []
    for model in models:
        rows.extend([row for row in ROWS if row.model == model] or [Row(model, model)])
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
    """One (row, seed): everything run_recbole receives, and where its outputs go."""

    row: Row
    seed: int
    config_files: list
    config_dict: dict
    config_hash: str
    run_dir: str
    retriever: "RunSpec" = None


def config_hash(model, dataset, config_files, hashed_config):
    """Short hash of what defines a row's results, seed excluded (seeds of one row share it)."""
    payload = {
        "model": model,
        "dataset": dataset,
        "config_files": {os.path.basename(path): open(path, encoding="utf-8").read() for path in config_files},
        "config": {key: value for key, value in hashed_config.items() if key != "seed"},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _slug(name):
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def plan_run(row, seed, settings, retriever=None):
    config_files = [path for path in [baseline_config_file(row.model)] if path]
    config_dict = {**protocol_config(settings, seed), **row.overrides}
    hashed = dict(config_dict)
    if retriever is not None:
        config_dict["rerank_topk"] = hashed["rerank_topk"] = settings.rerank_topk
        config_dict["retriever_checkpoint"] = os.path.join(retriever.run_dir, "model.pth")
        # The retriever's own hash, not its path: the path holds the seed and the output folder.
        hashed["retriever"] = f"{retriever.row.model} {retriever.config_hash}"
    cli_overrides = {**settings.overrides, **settings.model_overrides.get(row.model, {})}
    config_dict.update(cli_overrides)
    hashed.update(cli_overrides)
    digest = config_hash(row.model, settings.dataset, config_files, hashed)
    run_dir = os.path.join(settings.out, "runs", _slug(row.name), f"seed{seed}-{digest}")
    return RunSpec(row, seed, config_files, config_dict, digest, run_dir, retriever)


def describe_config(spec, settings):
    """The config column: the yaml file and every key that differs from the shared protocol."""
    base = os.path.basename(spec.config_files[0]) if spec.config_files else f"{spec.row.model} defaults"
    protocol = protocol_config(settings, spec.seed)
    keys = [
        f"{key}={value}"
        for key, value in spec.config_dict.items()
        if key != "retriever_checkpoint" and (key not in protocol or protocol[key] != value)
    ]
    if spec.retriever is not None:
        keys.append(f"reranks {spec.retriever.row.name} [{spec.retriever.config_hash}]")
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


def execute_run(spec, settings):
    """Run one (row, seed) through run_recbole and write its folder; a failure becomes the record's error."""
    shutil.rmtree(spec.run_dir, ignore_errors=True)
    os.makedirs(spec.run_dir)
    record = {
        "row": spec.row.name,
        "model": spec.row.model,
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
                raise RuntimeError(f"the retriever {spec.retriever.row.name} failed for seed {spec.seed}: see its row.")
            record["retriever_finished_at"] = retriever_record["finished_at"]
        with _recbole_reads_no_command_line():
            result = run_recbole(
                model=spec.row.model,
                dataset=settings.dataset,
                config_file_list=spec.config_files,
                config_dict={**spec.config_dict, "checkpoint_dir": spec.run_dir},
                saved=True,
                trainer_hook=keep_per_user_metrics,
            )
        trainer = trainers[0]
        user_ids, per_user = trainer.eval_collector.per_user()
        np.savez(os.path.join(spec.run_dir, "per_user.npz"), user_ids=user_ids, **per_user)
        # A fixed name, so that MLLMRecR1 can find the retriever of its seed.
        if os.path.isfile(trainer.saved_model_file):
            os.replace(trainer.saved_model_file, os.path.join(spec.run_dir, "model.pth"))
        trainable, total = _count_parameters(trainer.model)
        n_items = getattr(trainer.model, "n_items", None)
        record.update(
            metrics={metric: float(values.mean()) for metric, values in per_user.items()},
            recbole_test_result=dict(result["test_result"]),
            best_valid_result=dict(result["best_valid_result"] or {}),
            train_time_s=result["train_time_s"],
            test_time_s=result["test_time_s"],
            params_trainable=trainable,
            params_total=total,
            n_users=len(user_ids),
            n_items=None if n_items is None else n_items - 1,  # id 0 is RecBole's padding item
        )
        _write_json(os.path.join(spec.run_dir, "config.json"), trainer.config.final_config_dict)
    except Exception as error:  # one model's crash must not stop the comparison
        record["error"] = f"{type(error).__name__}: {error}"
        with open(os.path.join(spec.run_dir, "error.txt"), "w", encoding="utf-8") as file:
            file.write(traceback.format_exc())
    finally:
        trainers.clear()
        gc.collect()  # MLLMRecR1 rows each hold an LLM: free it before the next row
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


def run_all(rows, settings):
    """``{row name: [(spec, record) per seed]}``; the retriever runs before the rows that rerank it."""
    retriever_row = next((row for row in rows if row.model == RETRIEVER_MODEL), None) if settings.mode == "full" else None
    order = ([retriever_row] if retriever_row else []) + [row for row in rows if row is not retriever_row]
    retrievers = {}
    runs = {row.name: [] for row in rows}
    total, done = len(order) * len(settings.seeds), 0
    for row in order:
        for seed in settings.seeds:
            done += 1
            retriever = retrievers.get(seed) if row.model == LLM_MODEL else None
            spec = plan_run(row, seed, settings, retriever)
            if row is retriever_row:
                retrievers[seed] = spec
            label = f"[{done}/{total}] {row.name}, seed {seed} [{spec.config_hash}]"
            record = load_record(spec.run_dir)
            if not settings.force and is_reusable(record, spec):
                print(f"{label}: finished earlier, reused ({spec.run_dir})", flush=True)
            else:
                print(f"{label}: running...", flush=True)
                record = execute_run(spec, settings)
                outcome = record["error"] or (
                    f"{metric_label(SIGNIFICANCE_METRIC)} {record['metrics'][SIGNIFICANCE_METRIC]:.4f}, "
                    f"train {record['train_time_s']:.0f} s, test {record['test_time_s']:.0f} s"
                )
                print(f"{label}: {'FAILED: ' if record['error'] else ''}{outcome}", flush=True)
            runs[row.name].append((spec, record))
    return runs


# ---- the table -------------------------------------------------------------------------
def table_columns():
    metric_columns = [column for metric in METRICS for column in (metric_label(metric), f"{metric_label(metric)} std")]
    return (
        ["row", "model", "seeds", "users"]
        + metric_columns
        + ["train s", "eval s", "params trainable", "params total", f"p ({metric_label(SIGNIFICANCE_METRIC)})",
           "vs best baseline", "config", "config hash", "error"]
    )


def summarize_row(row, runs, settings):
    finished = [record for _, record in runs if not record["error"]]
    entry = {column: np.nan for column in table_columns()}
    entry.update(row=row.name, model=row.model, seeds=len(finished), error="")
    for metric in METRICS:
        values = np.array([record["metrics"][metric] for record in finished])
        entry[metric_label(metric)] = values.mean() if len(values) else np.nan
        entry[f"{metric_label(metric)} std"] = values.std(ddof=1) if len(values) > 1 else np.nan
    if finished:
        entry.update(
            {
                "users": finished[0]["n_users"],
                "train s": np.mean([record["train_time_s"] for record in finished]),
                "eval s": np.mean([record["test_time_s"] for record in finished]),
                "params trainable": finished[0]["params_trainable"],
                "params total": finished[0]["params_total"],
            }
        )
    spec = runs[0][0]
    entry["config"] = describe_config(spec, settings)
    entry["config hash"] = spec.config_hash
    entry["error"] = "; ".join(f"seed {record['seed']}: {record['error']}" for _, record in runs if record["error"])
    return entry


def random_entry(settings, runs):
    """Expected metrics of a uniformly random ranking of each user's candidates."""
    entry = {column: np.nan for column in table_columns()}
    entry.update(row=RANDOM_ROW, model="", seeds="", error="", **{"config hash": ""})
    n_candidates = parse_mode(settings.mode)
    if n_candidates is None:  # full ranking: every item (RecBole also masks the user's history, ignored here)
        n_candidates = next((record["n_items"] for row_runs in runs.values() for _, record in row_runs
                             if not record["error"] and record.get("n_items")), None)
    if n_candidates is None:
        entry["error"] = "full ranking needs the number of items, which comes from a finished run: none finished."
        return entry
    for metric, value in random_ranking_metrics(n_candidates).items():
        entry[metric_label(metric)] = value
    entry["config"] = f"analytic: positive at a uniformly random rank among {n_candidates} candidates"
    return entry


def paired_values(runs, reference_runs, metric):
    """Per-user ``metric`` of two rows over their common seeds and users, aligned by (seed, user)."""
    values, reference = [], []
    reference_dirs = {spec.seed: spec.run_dir for spec, record in reference_runs if not record["error"]}
    for spec, record in runs:
        if record["error"] or spec.seed not in reference_dirs:
            continue
        ours = np.load(os.path.join(spec.run_dir, "per_user.npz"))
        theirs = np.load(os.path.join(reference_dirs[spec.seed], "per_user.npz"))
        _, our_index, their_index = np.intersect1d(ours["user_ids"], theirs["user_ids"], return_indices=True)
        values.append(ours[metric][our_index])
        reference.append(theirs[metric][their_index])
    return (np.concatenate(values), np.concatenate(reference)) if values else (None, None)


def add_significance(entries, runs):
    """p-value of each row against the best baseline (best non-MLLMRecR1 row by NDCG@10), paired over users."""
    label = metric_label(SIGNIFICANCE_METRIC)
    baselines = [e for e in entries if e["model"] not in ("", LLM_MODEL) and e["seeds"]]
    if not baselines:
        return None
    best = max(baselines, key=lambda e: e[label])
    for entry in entries:
        if entry is best:
            entry["vs best baseline"] = "best baseline"
            continue
        if entry["row"] not in runs:
            continue
        values, reference = paired_values(runs[entry["row"]], runs[best["row"]], SIGNIFICANCE_METRIC)
        if values is None or len(values) == 0:
            continue
        p_value = paired_bootstrap_p_value(values, reference)
        direction = "higher" if values.mean() > reference.mean() else "lower"
        verdict = significance_label(p_value)
        entry[f"p ({label})"] = p_value
        entry["vs best baseline"] = verdict if verdict == "n.s." else f"{direction}, {verdict}"
    return best["row"]


def build_table(rows, runs, settings):
    entries = [random_entry(settings, runs)] + [summarize_row(row, runs[row.name], settings) for row in rows]
    best = add_significance(entries, runs)
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
    return f"{platform.platform()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}"


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
        f"{f' ({best})' if best else ''}; n.s. = not significant at alpha {ALPHA:g}.",
        "",
        f"Command: `{command_line(settings)}`  ",
        f"Machine: {machine()}",
        "",
    ]
    columns = ["row"] + [metric_label(metric) for metric in METRICS] + ["train s", "eval s", "params (trainable / total)",
                                                                        p_label, "vs best baseline", "config", "error"]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for entry in entries:
        params = "" if not np.isfinite(entry["params total"]) else f"{int(entry['params trainable']):,} / {int(entry['params total']):,}"
        cells = (
            [entry["row"]]
            + [_format(entry[metric_label(m)], entry[f"{metric_label(m)} std"]) for m in METRICS]
            + [_format(entry["train s"], digits=1), _format(entry["eval s"], digits=1), params,
               _format(entry[p_label]), entry["vs best baseline"] if isinstance(entry["vs best baseline"], str) else "",
               entry["config"], entry["error"][:200]]
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
                        help=f"comma-separated models; {LLM_MODEL} stands for all its rows (default: %(default)s)")
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
    runs = run_all(rows, settings)
    entries, best = build_table(rows, runs, settings)
    print(write_outputs(entries, best, settings), flush=True)
    print(f"Wrote results.csv, results.md, metrics.png and time.png to {settings.out}", flush=True)
    return 0
