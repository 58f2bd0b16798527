"""The headline comparison: `recbole-mllmr1 compare` on ml-100k, modes uni9 and full, one machine.

    python benchmarks/bench_compare.py              # every row, 200 sampled test users
    python benchmarks/bench_compare.py --reduced    # zero-shot MLLMRecR1 rows, 2 epochs per sequential baseline
    python benchmarks/bench_compare.py --reduced --modes full --models Pop,BPR,SASRec,mllmrecr1-zero-shot
    python benchmarks/bench_compare.py --reduced --modes uni9 --models Pop,...,MLLMRecR1 \
        --mllmrecr1-config properties/quick_start_config/compare_cpu_training.yaml   # trained rows on 2 CPU cores

Each mode runs the CLI into runs/bench_compare/<mode>/ (run folders with checkpoints and per-user
vectors; resumable: rerunning skips finished rows) and copies the table, the charts and the
exact command with its wall time to benchmarks/results/compare_<mode>/.

MLLMRecR1's prompts carry image text from the offline textualizer over the real ml-100k posters
in ../shared (or $RECBOLE_MLLMR1_SHARED); without that folder they carry none, and the
"no image text" rows then equal the others.
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import yaml

from recbole_mllmr1.cli import main as cli_main
from recbole_mllmr1.textualize.sources import shared_posters_dir

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPOSITORY / "benchmarks" / "results"
RUNS_DIR = REPOSITORY / "runs" / "bench_compare"
SEQUENTIAL_BASELINES = ("GRU4Rec", "Caser", "NARM", "SASRec", "BERT4Rec")
BASELINES = ("Pop", "BPR") + SEQUENTIAL_BASELINES
ZERO_SHOT_ROWS = ("mllmrecr1-zero-shot", "mllmrecr1-zero-shot-no-image-text")
COPIED = ("results.csv", "results.md", "metrics.png", "time.png")


def _yaml_value(value):
    """``value`` as YAML that reads back the same (``5e-05`` would read back as a string)."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _folder(mode, args):
    return f"{mode}_{args.tag}" if args.tag else mode


def compare_arguments(mode, args):
    models = args.models.split(",") if args.models else BASELINES + (ZERO_SHOT_ROWS if args.reduced else ("MLLMRecR1",))
    arguments = ["compare", "--dataset", "ml-100k", "--mode", mode, "--models", ",".join(models), "--seeds", args.seeds]
    if args.valid_mode:
        arguments += ["--valid-mode", args.valid_mode]
    if args.trainings:
        arguments += ["--trainings", str(args.trainings)]
    if args.eval_user_sample:
        arguments += ["--eval-user-sample", str(args.eval_user_sample)]
    arguments += ["--out", str(RUNS_DIR / _folder(mode, args))]
    posters = shared_posters_dir()
    if posters:
        arguments += ["--config", "MLLMRecR1.textualizer=offline", "--config", f"MLLMRecR1.image_dir={posters}"]
    if args.reduced:
        arguments += [f"--config={model}.epochs=2" for model in SEQUENTIAL_BASELINES]
    arguments += [f"--config={item}" for item in args.config or []]
    settings = {}
    for path in args.mllmrecr1_config or []:
        with open(path, encoding="utf-8") as file:
            settings.update(yaml.safe_load(file))
    arguments += [f"--config=MLLMRecR1.{key}={_yaml_value(value)}" for key, value in settings.items()]
    return arguments + (["--force"] if args.force else [])


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="uni9,full", help="comma-separated evaluation modes (default: uni9,full)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument("--eval-user-sample", type=int, default=200, help="test users per seed, 0 = all (default: 200)")
    parser.add_argument("--reduced", action="store_true", help="zero-shot MLLMRecR1 rows only, 2 epochs per sequential baseline")
    parser.add_argument("--models", default=None, help="comma-separated models or row slugs instead of every row")
    parser.add_argument("--force", action="store_true", help="rerun finished rows")
    parser.add_argument("--mllmrecr1-config", nargs="+", default=None,
                        help="yaml files of MLLMRecR1 settings for all its rows, later files overriding earlier ones, passed as --config")
    parser.add_argument("--config", action="append", metavar="[MODEL.]KEY=VALUE", help="passed on to compare's --config (repeatable)")
    parser.add_argument("--tag", default=None, help="suffix of the run and results folders, e.g. 'gpu' -> compare_uni9_gpu")
    parser.add_argument("--valid-mode", default=None, help="passed on to compare's --valid-mode (default: each mode itself)")
    parser.add_argument("--trainings", default=None, help="passed on to compare's --trainings (default: <run folder>/trainings)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    for mode in args.modes.split(","):
        arguments = compare_arguments(mode, args)
        print(f"== recbole-mllmr1 {' '.join(arguments)}", flush=True)
        start = time.perf_counter()
        cli_main(arguments)
        wall_time = time.perf_counter() - start
        folder = _folder(mode, args)
        target = RESULTS_DIR / f"compare_{folder}"
        target.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            shutil.copy(RUNS_DIR / folder / name, target / name)
        with open(target / "command.json", "w", encoding="utf-8") as file:
            json.dump({"command": "recbole-mllmr1 " + " ".join(arguments), "wall_time_s": round(wall_time, 1),
                       "run_folder": os.path.relpath(RUNS_DIR / folder, REPOSITORY)}, file, indent=2)
        print(f"== {mode}: {wall_time / 60:.1f} min; results in {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
