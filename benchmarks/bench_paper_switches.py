"""The official code's choices against this project's defaults, measured: one stage table on ml-100k uni9.

    python benchmarks/bench_paper_switches.py                       # uni9, 200 sampled test users
    python benchmarks/bench_paper_switches.py --eval-user-sample 400

Four configurations of MLLMRecR1 (three trainings) with the default 135M model, on the settings of
properties/quick_start_config/grounding_cpu.yaml at 96 training samples, text only and scored by
the LLM alone (no item tokens, fusion weight 0, as in the paper), with mixed-grained SFT (the 135M
teacher's CoT on ``cot_num_samples`` training samples) and GRPO steps of one prompt x 8 rollouts:

- current defaults: the rationale is an SFT target (``cot_placement: output``), GRPO rewards
  ``format`` + ``accuracy``, likelihood scoring;
- each official choice alone: ``cot_placement: input``, ``grpo_rewards: [paper]``,
  ``eval_scoring: generative``.

Every row is tested on the same users and candidates (same seed); p: paired bootstrap on per-user
NDCG@10 against the current defaults at the same stage. A default changes only at p < 0.05.
Adapters are selected on likelihood validation in every training, so ``eval_scoring`` is not part
of a training's run key: the generative row tests the current defaults' training again.
Runs go through ``recbole-mllmr1 compare``'s machinery into runs/bench_compare/uni9_paper_switches/
(resumable: finished trainings are reused); the table, the charts and the command go to
benchmarks/results/compare_uni9_paper_switches/.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_compare  # noqa: E402  (benchmarks/ is not a package)

from recbole_mllmr1.compare.cli import add_arguments, settings_from_args  # noqa: E402
from recbole_mllmr1.compare.execute import run_all  # noqa: E402
from recbole_mllmr1.compare.report import machine, write_outputs  # noqa: E402
from recbole_mllmr1.compare.rows import LLM_MODEL, ROWS, RETRIEVER_MODEL, Row, slugify  # noqa: E402
from recbole_mllmr1.compare.statistics import build_table, paired_values  # noqa: E402
from recbole_mllmr1.significance import paired_bootstrap_p_value  # noqa: E402

TAG = "paper_switches"
MODE = "uni9"
CONFIG = bench_compare.REPOSITORY / "properties" / "quick_start_config" / "grounding_cpu.yaml"
# The SASRec every row reads (it only fills the "sequential model alone" rows here): the grounding
# benchmark's, so a run folder of that benchmark is reused when it exists.
SASREC_CONFIG = ("SASRec.epochs=8", "SASRec.MAX_ITEM_LIST_LENGTH=20")
# What every training shares on top of grounding_cpu.yaml.
SHARED = {
    "train_samples": 96,  # the measured table's size: one pass of 24 SFT steps x 4 samples
    "sft_steps": 24,
    "eval_step": 24,  # each stage validated once, at its end
    "item_tokens": False,  # text only: the paper has no collaborative grounding
    "fusion_weight": 0,  # the LLM's own ranking
    "sft_data": "mixed",  # the rationales exist, so their placement matters
    "cot_num_samples": 48,  # the 135M teacher's CoT costs ~10 s a sample on 2 cores
    "grpo_batch_size": 8,  # one prompt of 8 rollouts per GRPO step
    "grpo_num_generations": 8,
}
DEFAULTS = "current defaults"
TRAININGS = {
    DEFAULTS: {},
    "rationale in the input": {"cot_placement": "input"},
    "official reward": {"grpo_rewards": ["paper"]},
    "generative evaluation": {"eval_scoring": "generative"},
}
STAGES = {"zero-shot": "zero-shot (LLM alone)", "SFT": "sft (LLM alone)", "SFT+GRPO": "grpo (LLM alone)"}
METRICS = ("hit@1", "hit@5", "ndcg@10", "mrr@10")
TESTED = "ndcg@10"


def switch_rows(trainings=tuple(TRAININGS)):
    """``{(training, stage label): Row}``: each training's zero-shot, SFT and SFT+GRPO test, LLM alone.

    The sizes of grounding_cpu.yaml are row overrides, so that SHARED and each training override them.
    """
    sizes = yaml.safe_load(CONFIG.read_text())
    return {
        (training, label): Row(f"MLLMRecR1 ({training}, {label})", LLM_MODEL, {**sizes, **SHARED, **TRAININGS[training]}, stage=stage)
        for training in trainings
        for label, stage in STAGES.items()
    }


def chosen_trainings(text):
    """The trainings named by slug in ``text``, in TRAININGS' order; the current defaults always
    (every p-value is against them)."""
    by_slug = {slugify(name): name for name in TRAININGS}
    unknown = [slug for slug in text.split(",") if slug not in by_slug]
    if unknown:
        raise SystemExit(f"--trainings: unknown [{', '.join(unknown)}]; choose among {', '.join(by_slug)}")
    chosen = {by_slug[slug] for slug in text.split(",")} | {DEFAULTS}
    return tuple(name for name in TRAININGS if name in chosen)


def compare_settings(args):
    compare_argv = bench_compare.compare_arguments(
        MODE,
        argparse.Namespace(
            models=RETRIEVER_MODEL, reduced=False, seeds=args.seeds, eval_user_sample=args.eval_user_sample,
            config=list(SASREC_CONFIG), mllmrecr1_config=None, force=args.force, tag=args.tag, valid_mode=None, trainings=None,
        ),
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return settings_from_args(parser.parse_args(compare_argv[1:])), compare_argv


def switch_table(rows, results):
    """Markdown: each row's metrics and its paired p-value against the current defaults at the same stage."""
    header = ["training", "stage", *METRICS, f"SE {TESTED}", f"p vs {DEFAULTS}", "GRPO hit-spread steps", "users"]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for (training, label), row in rows.items():
        seeds = results[row.name]
        if seeds[0].error:
            lines.append(f"| {training} | {label} | failed: {seeds[0].error} |")
            continue
        values = np.concatenate([np.load(seed.per_user_file)[TESTED] for seed in seeds])
        reference = rows[(DEFAULTS, label)]
        p_value = None
        if training != DEFAULTS and not results[reference.name][0].error:
            ours, theirs = paired_values(seeds, results[reference.name], TESTED)
            p_value = paired_bootstrap_p_value(ours, theirs)
        spread = seeds[0].record.get("grpo_hit_spread") if label == "SFT+GRPO" else None
        cells = [training, label, *(f"{np.mean([seed.metrics[m] for seed in seeds]):.4f}" for m in METRICS)]
        cells += [f"{values.std(ddof=1) / np.sqrt(len(values)):.4f}", "-" if p_value is None else f"{p_value:.4f}"]
        cells += ["-" if not spread else f"{spread['share']:.0%} of {spread['steps']}", str(len(values))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval-user-sample", type=int, default=200, help="test users (default: 200)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument("--force", action="store_true", help="rerun finished trainings")
    parser.add_argument("--trainings", default=",".join(slugify(name) for name in TRAININGS),
                        help="comma-separated trainings to run and table, by slug (default: all: %(default)s)")
    parser.add_argument("--tag", default=TAG, help="names the run and results folders, <mode>_<tag> (default: %(default)s)")
    args = parser.parse_args(argv)
    settings, compare_argv = compare_settings(args)
    rows = switch_rows(chosen_trainings(args.trainings))
    retriever = next(row for row in ROWS if row.model == RETRIEVER_MODEL)
    table_rows = [retriever, *rows.values()]
    settings.models = [row.slug for row in table_rows]
    start = time.perf_counter()
    results = run_all(table_rows, settings)
    wall_time = time.perf_counter() - start
    entries, best = build_table(table_rows, results, settings)
    write_outputs(entries, best, settings)
    target = bench_compare.RESULTS_DIR / f"compare_{MODE}_{args.tag}"
    target.mkdir(parents=True, exist_ok=True)
    for name in bench_compare.COPIED:
        shutil.copy(Path(settings.out) / name, target / name)
    command = f"python benchmarks/bench_paper_switches.py {' '.join(argv if argv is not None else sys.argv[1:])}".strip()
    (target / "command.json").write_text(json.dumps({
        "command": command, "compare_arguments": compare_argv, "shared_overrides": SHARED,
        "trainings": {name: TRAININGS[name] for name in dict.fromkeys(training for training, _ in rows)},
        "wall_time_s": round(wall_time, 1), "run_folder": str(Path(settings.out).relative_to(bench_compare.REPOSITORY)),
    }, indent=2))
    table = switch_table(rows, results)
    # Each training's own time, from its record: a rerun that reuses finished trainings takes seconds.
    times = ", ".join(
        f"{training} {(seed.record['train_time_s'] + seed.record['test_time_s']) / 60:.0f} min"
        for training, seed in ((training, results[row.name][0]) for (training, label), row in rows.items() if label == "SFT")
        if not seed.error
    )
    (target / "switches.md").write_text(
        f"# The official code's choices against the current defaults (ml-100k, {MODE})\n\n"
        f"Command: `{command}` (this invocation: {wall_time / 60:.0f} min; train + test per training: {times})  \n"
        f"Machine: {machine()}\n\n{table}\n"
    )
    print(table, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
