"""The outputs of a comparison: results.csv, results.md (with the command and the machine) and the charts."""
import csv
import os
import platform

import numpy as np
import torch

from recbole_mllmr1.plots import plot_metrics, plot_times
from recbole_mllmr1.significance import ALPHA

from .columns import GAIN_COLUMN, GAIN_P_COLUMN, RANDOM_ROW, SIGNIFICANCE_METRIC, metric_label, table_columns
from .settings import default_trainings, parse_mode


def command_line(settings):
    parts = ["recbole-mllmr1 compare", f"--dataset {settings.dataset}", f"--mode {settings.mode}",
             f"--models {','.join(settings.models)}", f"--seeds {','.join(map(str, settings.seeds))}"]
    if settings.valid_mode != settings.mode:
        parts.append(f"--valid-mode {settings.valid_mode}")
    if settings.trainings != default_trainings(settings.out):
        parts.append(f"--trainings {settings.trainings}")
    if settings.eval_user_sample:
        parts.append(f"--eval-user-sample {settings.eval_user_sample}")
    if settings.data_path:
        parts.append(f"--data-path {settings.data_path}")
    if settings.mode == "full":
        parts.append(f"--rerank-topk {settings.rerank_topk}")
    if tuple(settings.topk) != (1, 5, 10):
        parts.append(f"--topk {','.join(map(str, settings.topk))}")
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
    candidates = "all items (general models such as Pop without the user's training items, sequential models with them)" if n_candidates is None else (
        f"the positive and {n_candidates - 1} {'uniformly' if settings.mode.startswith('uni') else 'popularity'}-sampled negatives"
    )
    p_label = f"p ({metric_label(SIGNIFICANCE_METRIC)})"
    lines = [
        f"Dataset **{settings.dataset}**, leave-one-out split in time order, each test user ranks {candidates} "
        f"(mode `{settings.mode}`"
        + (f"; models are selected on validation in mode `{settings.valid_mode}`" if settings.valid_mode != settings.mode else "")
        + f"); seeds {', '.join(map(str, settings.seeds))}"
        + (f"; a seeded sample of {settings.eval_user_sample} test users per seed" if settings.eval_user_sample else "")
        + f". Metrics are means over seeds (± std over seeds when there are several); MRR is MRR@{max(settings.topk)}.",
        f"{p_label}: paired bootstrap over (seed, user) pairs against the best baseline"
        f"{f' ({best})' if best else ''}; n.s. = not significant at alpha {ALPHA:g}. "
        f"{GAIN_COLUMN} and {GAIN_P_COLUMN} (trained stages): the same test against the zero-shot model of the same run.",
        "",
        f"Command: `{command_line(settings)}`  ",
        f"Machine: {machine()}",
        "",
    ]
    columns = ["row"] + [metric_label(metric) for metric in settings.metrics] + ["train s", "eval s", "params (trainable / total)",
                                                                        p_label, "vs best baseline", GAIN_COLUMN, GAIN_P_COLUMN,
                                                                        "config", "error"]
    lines.append("| " + " | ".join(columns) + " |")
    lines.append("|" + "---|" * len(columns))
    for entry in entries:
        params = "" if not np.isfinite(entry["params total"]) else f"{int(entry['params trainable']):,} / {int(entry['params total']):,}"
        cells = (
            [entry["row"]]
            + [_format(entry[metric_label(m)], entry[f"{metric_label(m)} std"]) for m in settings.metrics]
            + [_format(entry["train s"], digits=1), _format(entry["eval s"], digits=1), params,
               _format(entry[p_label]), entry["vs best baseline"] if isinstance(entry["vs best baseline"], str) else "",
               _format(entry[GAIN_COLUMN]), _format(entry[GAIN_P_COLUMN]), entry["config"], entry["error"][:200]]
        )
        lines.append("| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(entries, best, settings):
    """results.csv, results.md, metrics.png and time.png in the output folder; returns the markdown."""
    with open(os.path.join(settings.out, "results.csv"), "w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=table_columns(settings.metrics))
        writer.writeheader()
        for entry in entries:
            writer.writerow({key: "" if isinstance(value, float) and not np.isfinite(value) else value for key, value in entry.items()})
    markdown = markdown_table(entries, best, settings)
    with open(os.path.join(settings.out, "results.md"), "w", encoding="utf-8") as file:
        file.write(markdown)
    title = f"{settings.dataset}, {settings.mode}"
    plotted = [entry for entry in entries if entry["row"] == RANDOM_ROW or entry["seeds"]]
    plot_metrics(plotted, [metric_label(metric) for metric in settings.metrics], os.path.join(settings.out, "metrics.png"), title)
    plot_times(plotted, os.path.join(settings.out, "time.png"), title)
    return markdown
