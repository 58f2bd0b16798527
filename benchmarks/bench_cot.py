"""CoT data statistics on ml-100k with the default model: how many rationales parse, how many the confidence filter keeps.

    python benchmarks/bench_cot.py [--num-samples 16] [--max-new-tokens 160] [--teacher smollm2-135m] [--min-gain 0] [--threads 1]

Builds the mixed-grained file for RecBole's bundled ml-100k (MLLMRecR1's yaml: 10 history items,
10 candidates, text only) into a fresh temporary cache, so every teacher reply and score is
really computed, and reports: samples sent to the teacher, refinements that parse into the
four steps, samples kept by the measured-confidence filter, kept share, mean confidence gain
(log P(target | rationale) - log P(target)), mean target probability, and the drop reasons.
Writes benchmarks/results/cot.md and cot.csv.
"""
import argparse
import collections
import csv
import os
import platform
import re
import tempfile
import time
from pathlib import Path

import torch

from recbole_mllmr1.config import Config
from recbole_mllmr1.cot.build import build_mixed_grained_dataset, cot_statistics, provenance_path
from recbole_mllmr1.cot.cache import read_jsonl
from recbole_mllmr1.quick_start import prepare_run
from recbole_mllmr1.sequential_model import TEXT_ONLY

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, default=16, help="Training samples sent to the teacher (default: 16).")
    parser.add_argument("--plain-samples", type=int, default=64, help="Plain rows of the file (train_samples, default: 64).")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="Longest teacher reply per step (default: 160, the yaml default).")
    parser.add_argument("--teacher", default="smollm2-135m", help="cot_teacher (default: the bundled default model).")
    parser.add_argument("--min-gain", type=float, default=0.0, help="cot_min_gain (default: 0, the rationale must help).")
    parser.add_argument("--ratio", type=float, default=0.25, help="cot_ratio (default: 0.25).")
    parser.add_argument("--batch-size", type=int, default=8, help="cot_batch_size (default: 8).")
    parser.add_argument("--cache-dir", help="Keep the caches and files here (default: a fresh temporary folder, so everything is computed).")
    parser.add_argument("--config_files", help='Further space-separated config files, e.g. a textualizer setup: --config_files "a.yaml b.yaml".')
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is faster on a CPU other jobs share).")
    return parser.parse_args()


def reason_kind(reason):
    """A drop reason without its numbers, for counting: 'dropped: gain -0.12 <= ...' -> 'dropped: gain <= cot_min_gain'."""
    return re.sub(r"\s+", " ", re.sub(r"[+-]?\d+\.\d+", "", reason)).replace(" ,", ",").strip(" :")


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-cot-") as temporary_dir:
        cache_dir = args.cache_dir or temporary_dir
        config = Config(
            model="MLLMRecR1",
            dataset="ml-100k",
            config_file_list=args.config_files.split() if args.config_files else None,
            config_dict={
                **TEXT_ONLY,
                "state": "WARNING",
                "show_progress": True,
                "cot_teacher": args.teacher,
                "cot_num_samples": args.num_samples,
                "train_samples": args.plain_samples,
                "cot_max_new_tokens": args.max_new_tokens,
                "cot_min_gain": args.min_gain,
                "cot_ratio": args.ratio,
                "cot_batch_size": args.batch_size,
                "cot_cache_dir": cache_dir,
            },
        )
        model, train_data, _, _ = prepare_run(config)
        start = time.perf_counter()
        path = build_mixed_grained_dataset(config, model, train_data._dataset, show_progress=True)
        seconds = time.perf_counter() - start
        provenance = read_jsonl(provenance_path(path))
        training_rows = read_jsonl(path)
    stats = cot_statistics(provenance)
    reasons = collections.Counter(reason_kind(row["reason"]) for row in provenance)
    example = next((row for row in provenance if row["kept"]), next((row for row in provenance if row["rationale"]), None))

    rows = [
        ("samples sent to the teacher", stats["samples"]),
        ("refinements parsed into four steps", stats["scored"]),
        ("kept by the confidence filter", stats["kept"]),
        ("kept share", f"{stats['kept_share']:.1%}"),
        ("mean gain, all parsed (nats)", f"{stats['mean_gain']:+.4f}"),
        ("mean gain, kept (nats)", f"{stats['mean_gain_kept']:+.4f}"),
        ("mean P(target | rationale), parsed", f"{stats['mean_confidence']:.4f}"),
        ("CoT rows injected", stats["injected"]),
        ("plain rows", sum(row["kind"] == "plain" for row in training_rows)),
        ("build time (s)", f"{seconds:.0f}"),
    ]
    RESULTS_DIR.mkdir(exist_ok=True)
    with open(RESULTS_DIR / "cot.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["statistic", "value"])
        writer.writerows(rows)
        writer.writerows([(f"reason: {reason}", count) for reason, count in reasons.most_common()])
    lines = [
        "# CoT data construction on ml-100k",
        "",
        f"Command: `python benchmarks/bench_cot.py --num-samples {args.num_samples} --plain-samples {args.plain_samples} "
        f"--max-new-tokens {args.max_new_tokens} --teacher {args.teacher} --min-gain {args.min_gain} --ratio {args.ratio} "
        f"--batch-size {args.batch_size}" + (f" --threads {args.threads}" if args.threads else "") + "`",
        "",
        f"Teacher and scorer: `{args.teacher}` / `{config['llm_path']}` (fp32, {config['device']}); N = {args.num_samples} training "
        f"samples of RecBole's ml-100k training split, {config['train_candidates']} candidates, histories of up to "
        f"{config['max_history']} items, titles + year + genres (no image text). Greedy decoding, fresh cache. "
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads.",
        "",
        "| statistic | value |",
        "|---|---|",
        *[f"| {name} | {value} |" for name, value in rows],
        "",
        "Outcome of every sample:",
        "",
        "| reason | samples |",
        "|---|---|",
        *[f"| {reason} | {count} |" for reason, count in reasons.most_common()],
    ]
    if example:
        lines += ["", "A rationale the pipeline produced (kept if any was):", "", "```", example["rationale"], "```", f"({example['reason']})"]
    (RESULTS_DIR / "cot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
