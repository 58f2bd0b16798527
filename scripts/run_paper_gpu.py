"""The official MLLMRec-R1 recipe end to end on one CUDA machine: SFT, GRPO (vLLM rollouts when vllm is
installed) and evaluation with a paper preset (properties/quick_start_config/paper_<preset>.yaml), then
the RecBole baselines on the same protocol (`recbole-mllmr1 compare`), and one table of both in
<out>/paper_table.md.

    python scripts/run_paper_gpu.py --dataset ml-1m --out runs/paper-ml-1m
    python scripts/run_paper_gpu.py --dry-run --llm_path <tiny model folder> --dataset tiny --data-path <folder> --out <folder>

The preset's sft_epochs and grpo_epochs are the official epochs over one sample per user. --dry-run
runs the same sequence on CPU with a tiny model and a few steps, users and tokens, without images.
"""
import argparse
import csv
import importlib.util
import json
import os
import sys

from recbole_mllmr1.compare.columns import metric_label
from recbole_mllmr1.compare.settings import parse_overrides
from recbole_mllmr1.config import Config, properties_path

PRESETS = ("movielens", "microlens")
BASELINES = "Pop,BPR,GRU4Rec,Caser,NARM,SASRec,BERT4Rec"
# CPU-sized: a few steps, users, samples and tokens; no images (a tiny dataset has none).
DRY_RUN = {
    "textualizer": "none", "use_image_text": False, "eval_user_sample": 8, "cot_num_samples": 4,
    "cot_max_new_tokens": 16, "cot_refine_max_new_tokens": 16, "sft_batch_size": 2, "sft_gradient_accumulation_steps": 1, "sft_max_length": 512,
    "grpo_batch_size": 4, "grpo_gradient_accumulation_steps": 1, "grpo_num_generations": 2,
    "grpo_max_completion_length": 16, "eval_step": 1, "stopping_step": 2, "llm_batch_size": 4, "cot_batch_size": 4,
    "show_progress": False, "sft_epochs": None, "grpo_epochs": None,
}
DRY_RUN_STEPS = 2
DRY_RUN_BASELINES = "Pop"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=PRESETS, default="movielens", help="the official recipe of this dataset (default: movielens)")
    parser.add_argument("--dataset", default="ml-1m", help="RecBole dataset name (default: ml-1m)")
    parser.add_argument("--data-path", default=None, help="folder holding <dataset>/<dataset>.inter (RecBole's data_path)")
    parser.add_argument("--out", required=True, help="output folder: checkpoints, the baselines' runs and paper_table.md")
    parser.add_argument("--llm_path", default="Qwen/Qwen3-4B", help="the recommender (default: Qwen/Qwen3-4B)")
    parser.add_argument("--vlm", default="Qwen/Qwen3-VL-8B-Instruct", help="captions and CoT teacher (default: Qwen/Qwen3-VL-8B-Instruct)")
    parser.add_argument("--refine_teacher", default=None,
                        help="the reasoning model that refines the CoT (the official: DeepSeek-R1), any cot_teacher form, e.g. http://localhost:8000 (default: --vlm)")
    parser.add_argument("--refine_teacher_model", default=None, help="the model name to request from an http(s) --refine_teacher, e.g. deepseek-r1-0528")
    parser.add_argument("--baselines", default=None, help=f"comma-separated RecBole models for the table (default: {BASELINES}; dry run: {DRY_RUN_BASELINES})")
    parser.add_argument("--config", action="append", metavar="KEY=VALUE", help="a further config key for every run (repeatable; VALUE is YAML)")
    parser.add_argument("--dry-run", action="store_true", help="the whole sequence on CPU with --llm_path a tiny model")
    return parser.parse_args(argv)


def run_config(args):
    """The config dict of the paper run (the preset's values stay the preset's unless the dry run shrinks them)."""
    overrides, _ = parse_overrides(args.config)
    config_dict = {"llm_path": args.llm_path, "cot_teacher": args.vlm, "cot_refine_teacher": args.refine_teacher,
                   "cot_refine_teacher_model": args.refine_teacher_model, "checkpoint_dir": os.path.join(args.out, "saved"), **overrides}
    if args.data_path:
        config_dict["data_path"] = args.data_path
    if args.dry_run:
        caches = os.path.join(args.out, "cache")
        return {**config_dict, "cot_teacher": args.llm_path, **DRY_RUN, "sft_steps": DRY_RUN_STEPS, "grpo_steps": DRY_RUN_STEPS,
                "cot_cache_dir": os.path.join(caches, "cot"), "textualize_cache_dir": os.path.join(caches, "textualize")}
    return {**config_dict, "textualizer": "vlm", "textualizer_model": args.vlm,
            "use_vllm": importlib.util.find_spec("vllm") is not None}


def compare_baselines(args, protocol, baselines):
    """`recbole-mllmr1 compare` of the baselines on the paper run's protocol; returns its results.csv rows."""
    from recbole_mllmr1.cli import main as cli_main

    out = os.path.join(args.out, "compare")
    argv = ["compare", "--dataset", args.dataset, "--models", baselines, "--out", out,
            "--mode", protocol["eval_args"]["mode"]["test"], "--seeds", str(protocol["seed"]),
            "--topk", ",".join(map(str, protocol["topk"])),
            "--config", f"user_inter_num_interval={json.dumps(protocol['user_inter_num_interval'])}"]  # a YAML string
    argv += ["--data-path", args.data_path] if args.data_path else []
    argv += [f"--config={item}" for item in args.config or []]
    if cli_main(argv) != 0:
        raise SystemExit(f"recbole-mllmr1 compare failed; its log is under {out}")
    with open(os.path.join(out, "results.csv"), encoding="utf-8") as file:
        return list(csv.DictReader(file))


def paper_table(result, baseline_rows, config):
    """The baselines' rows and one row per stage of the paper run, in the same HR@K / NDCG@K columns."""
    metrics = [f"{name.lower()}@{k}" for name in config["metrics"] for k in config["topk"]]
    labels = [metric_label(metric) for metric in metrics]
    lines = ["| row | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for row in baseline_rows:
        lines.append(f"| {row['row']} | " + " | ".join(row[label] for label in labels) + " |")
    for stage, stage_result in (result["stage_results"] or {"test": result["test_result"]}).items():
        lines.append(f"| MLLMRecR1 (paper recipe, {stage}) | " + " | ".join(f"{stage_result[m]:.4f}" for m in metrics) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("run_paper_gpu.py: no CUDA device; the paper recipe needs a GPU (use --dry-run with a tiny --llm_path to check the sequence on CPU)", file=sys.stderr)
        return 2
    from recbole_mllmr1.quick_start import run_recbole

    preset_file = properties_path("quick_start_config", f"paper_{args.preset}.yaml")
    os.makedirs(args.out, exist_ok=True)
    config_dict = run_config(args)
    config = Config(model="MLLMRecR1", dataset=args.dataset, config_file_list=[preset_file], config_dict=config_dict)
    result = run_recbole(model="MLLMRecR1", dataset=args.dataset, config_file_list=[preset_file], config_dict=config_dict)
    baseline_rows = compare_baselines(args, config, args.baselines or (DRY_RUN_BASELINES if args.dry_run else BASELINES))
    with open(os.path.join(args.out, "paper_table.md"), "w", encoding="utf-8") as file:
        file.write(paper_table(result, baseline_rows, config))
    with open(os.path.join(args.out, "paper_result.json"), "w", encoding="utf-8") as file:
        json.dump({"config": {k: config_dict[k] for k in sorted(config_dict)}, "test_result": dict(result["test_result"]),
                   "stage_results": result["stage_results"]}, file, indent=1, default=str)
    print(f"Wrote paper_table.md and paper_result.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
