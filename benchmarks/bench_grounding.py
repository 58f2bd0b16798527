"""The grounding benchmark: SASRec, and MLLMRecR1 text only / fusion / hybrid / hybrid+fusion, on ml-100k.

    python benchmarks/bench_grounding.py                          # uni9, 200 sampled test users
    python benchmarks/bench_grounding.py --modes uni9,uni19 --eval-user-sample 400
    python benchmarks/bench_grounding.py --modes uni9,uni19,full --valid-mode uni9   # train once, test in three modes

Every MLLMRecR1 row is trained with properties/quick_start_config/grounding_cpu.yaml (SFT then
GRPO) and reads the very SASRec of the SASRec row (``retriever_checkpoint``). The four MLLMRecR1
rows come from two trainings (text only, hybrid item tokens): each run tests every stage fused
(weight chosen on validation), by the LLM alone and by SASRec alone, on the same users and
candidates. The run goes through ``benchmarks/bench_compare.py`` (resumable: finished rows are
reused), then this script adds paired bootstrap p-values against SASRec and against the text-only
row, the fusion weights and GRPO's hit-spread share, in
``benchmarks/results/compare_<mode>_grounding/grounding.md``.

By default each mode validates in itself, so each mode trains its own MLLMRecR1 models. With
``--valid-mode``, every mode validates in that mode (early stopping, adapter selection) and the
comparisons share one trainings folder, ``runs/bench_compare/grounding_trainings_valid_<valid
mode>/``: each MLLMRecR1 configuration trains once, in the first mode, and the other modes only
test it (their SASRec, trained alike on one machine, has the same weights). Their folders and results are
``<mode>_grounding_valid_<valid mode>``, with ``_<N>_users`` appended for an ``--eval-user-sample``
other than 200 (the sample also validates, so it trains anew). ``--force`` then empties the shared trainings and the
modes' run folders once, before the first mode.
"""
import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_compare  # noqa: E402  (benchmarks/ is not a package)

from recbole_mllmr1.compare.cli import settings_from_args  # noqa: E402
from recbole_mllmr1.compare.execute import run_all  # noqa: E402
from recbole_mllmr1.compare.rows import select_rows  # noqa: E402
from recbole_mllmr1.compare.settings import parse_mode  # noqa: E402
from recbole_mllmr1.compare.statistics import paired_values  # noqa: E402
from recbole_mllmr1.significance import paired_bootstrap_p_value  # noqa: E402

TAG = "grounding"
SASREC, TEXT_ONLY = "SASRec", "MLLMRecR1 (text only, SFT+GRPO)"
ROW_SLUGS = (
    "Pop",
    "SASRec",
    "mllmrecr1-text-only-sft-grpo",
    "mllmrecr1-fusion-sft-grpo",
    "mllmrecr1-hybrid-sft-grpo",
    "mllmrecr1-hybrid-fusion-sft",
    "mllmrecr1-hybrid-fusion-sft-grpo",
)
CONFIG = bench_compare.REPOSITORY / "properties" / "quick_start_config" / "grounding_cpu.yaml"
# SASRec's own training on 2 cores: ~85 s per epoch with 20 items of history (~3.5 min with 50).
SASREC_CONFIG = ("SASRec.epochs=8", "SASRec.MAX_ITEM_LIST_LENGTH=20")
DEFAULT_USERS = 200  # other samples get folders of their own, named after their size
METRICS = ("hit@1", "hit@5", "ndcg@10", "mrr@10")
TESTED = "ndcg@10"


def _p_value(results, row, reference):
    if row == reference or reference not in results:
        return None
    values, reference_values = paired_values(results[row], results[reference], TESTED)
    return None if values is None else paired_bootstrap_p_value(values, reference_values)


def _stage_of(row_name):
    return next((row.stage for row in select_rows(ROW_SLUGS, "uni9") if row.name == row_name), None)


def grounding_table(mode, args):
    """The rows with their metrics, standard error, p-values, fusion weight and GRPO hit-spread share (markdown)."""
    compare_args = bench_compare.compare_arguments(mode, args)
    parser = argparse.ArgumentParser()
    from recbole_mllmr1.compare.cli import add_arguments

    add_arguments(parser)
    settings = settings_from_args(parser.parse_args(compare_args[1:]))
    results = run_all(select_rows(settings.models, settings.mode), settings)  # every run finished: reused
    header = ["row", *METRICS, f"SE {TESTED}", f"p vs {SASREC}", f"p vs text only", "fusion weight", "GRPO hit-spread steps", "users"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for name, seeds in results.items():
        seed = seeds[0]
        if seed.error:
            lines.append(f"| {name} | failed: {seed.error} |")
            continue
        per_user = np.load(seed.per_user_file)
        values = per_user[TESTED]
        stage = _stage_of(name)
        weight = (seed.record.get("fusion_weights") or {}).get(stage) if stage else None
        spread = seed.record.get("grpo_hit_spread") if stage and stage.startswith("grpo") else None
        cells = [name, *(f"{seed.metrics[m]:.4f}" for m in METRICS), f"{values.std(ddof=1) / np.sqrt(len(values)):.4f}"]
        for reference in (SASREC, TEXT_ONLY):
            p_value = _p_value(results, name, reference)
            cells.append("-" if p_value is None else f"{p_value:.4f}")
        cells += ["-" if weight is None else f"{weight:g}", "-" if not spread else f"{spread['share']:.0%} of {spread['steps']}", str(len(values))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="uni9", help="comma-separated evaluation modes (default: uni9)")
    parser.add_argument("--eval-user-sample", type=int, default=DEFAULT_USERS, help=f"test users (default: {DEFAULT_USERS})")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument("--force", action="store_true", help="rerun finished rows")
    parser.add_argument("--valid-mode", default=None,
                        help="validation mode of every mode, whose MLLMRecR1 trainings are then shared (default: each mode itself)")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    tag, shared, force = TAG, [], ["--force"] if args.force else []
    if args.valid_mode:
        parse_mode(args.valid_mode, "--valid-mode")  # before --force deletes folders named after it
        tag = f"{TAG}_valid_{args.valid_mode}"
    if args.eval_user_sample != DEFAULT_USERS:
        tag += f"_{args.eval_user_sample}_users"
    if args.valid_mode:
        trainings = bench_compare.RUNS_DIR / f"{TAG}_trainings_valid_{args.valid_mode}"
        shared = ["--valid-mode", args.valid_mode, "--trainings", str(trainings)]
        if args.force:
            # compare's --force empties the trainings folder: given to every mode, it would train each mode again.
            for folder in [trainings] + [bench_compare.RUNS_DIR / f"{mode}_{tag}" for mode in modes]:
                shutil.rmtree(folder, ignore_errors=True)
            force = []
    for mode in modes:
        compare_argv = [
            "--modes", mode, "--seeds", args.seeds, "--eval-user-sample", str(args.eval_user_sample),
            "--models", ",".join(ROW_SLUGS), "--mllmrecr1-config", str(CONFIG), "--tag", tag, *shared,
            *[f"--config={item}" for item in SASREC_CONFIG],
        ] + force
        bench_compare.main(compare_argv)
        table = grounding_table(mode, bench_compare.build_parser().parse_args(compare_argv))
        target = bench_compare.RESULTS_DIR / f"compare_{mode}_{tag}"
        command = json.loads((target / "command.json").read_text())
        title = f"Grounding on ml-100k, {mode}" + (f", validation {args.valid_mode}" if args.valid_mode else "")
        (target / "grounding.md").write_text(
            f"# {title}\n\nCommand: `python benchmarks/bench_grounding.py {' '.join(argv or sys.argv[1:])}` "
            f"(wall time {command['wall_time_s'] / 60:.0f} min)\n\n{table}\n"
        )
        print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
