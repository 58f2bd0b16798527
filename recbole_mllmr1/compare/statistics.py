"""The table's numbers: each row's means over seeds, the random row, and the paired significance
tests against the best baseline and against the zero-shot model of the same run."""
import os
from dataclasses import replace

import numpy as np

from recbole_mllmr1.per_user_metrics import random_ranking_metrics
from recbole_mllmr1.significance import paired_bootstrap_p_value, significance_label
from recbole_mllmr1.trainer import ZERO_SHOT

from .columns import GAIN_COLUMN, GAIN_P_COLUMN, RANDOM_ROW, SIGNIFICANCE_METRIC, metric_label, table_columns
from .plan import describe_config
from .records import per_user_file
from .rows import LLM_MODEL
from .settings import parse_mode


def summarize_row(row, seeds, settings):
    finished = [seed for seed in seeds if not seed.error]
    entry = {column: np.nan for column in table_columns(settings.metrics)}
    entry.update(row=row.name, model=row.model, seeds=len(finished))
    for metric in settings.metrics:
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
    entry = {column: np.nan for column in table_columns(settings.metrics)}
    entry.update(row=RANDOM_ROW, model="", seeds="", error="", **{"config hash": ""})
    n_candidates = parse_mode(settings.mode)
    if n_candidates is None:  # full ranking: every item (RecBole also masks the user's history, ignored here)
        n_candidates = next((seed.record["n_items"] for seeds in results.values() for seed in seeds
                             if not seed.record["error"] and seed.record.get("n_items")), None)
    if n_candidates is None:
        entry["error"] = "full ranking needs the number of items, which comes from a finished run: none finished."
        return entry
    for metric, value in random_ranking_metrics(n_candidates, settings.metrics).items():
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
    within one run, apart from how far the row is from the best baseline. A stage scored a
    particular way (``sft (LLM alone)``) is compared with the zero-shot model scored the same way.
    """
    for row, entry in zip(rows, entries):
        if not row.stage or row.stage.startswith(ZERO_SHOT):
            continue
        same_scoring = ZERO_SHOT + row.stage[row.stage.find(" ") :] if " " in row.stage else ZERO_SHOT
        seeds = [seed for seed in results[row.name] if not seed.error]
        zero_shot = [replace(seed, per_user_file=per_user_file(seed.spec.run_dir, same_scoring)) for seed in seeds]
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
