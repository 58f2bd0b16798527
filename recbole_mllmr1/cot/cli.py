"""``recbole-mllmr1 build-cot``: build the mixed-grained CoT training file ahead of training.

It loads the dataset and MLLMRecR1 through ``run_recbole``'s ``prepare_run`` (same config precedence),
so ``sft_data: mixed`` in a later run finds the file ready in ``cot_cache_dir``. It takes
``run_recbole``'s ``--config_files`` and ``--key=value``; its dash flags are shorthands for the keys below.
"""
import logging

# Flag -> config key: the flags a CoT build is most often tuned with.
_OVERRIDES = {
    "teacher": "cot_teacher",
    "teacher_model": "cot_teacher_model",
    "refine_teacher": "cot_refine_teacher",
    "refine_teacher_model": "cot_refine_teacher_model",
    "num_samples": "cot_num_samples",
    "ratio": "cot_ratio",
    "min_gain": "cot_min_gain",
    "min_prob": "cot_min_prob",
    "max_new_tokens": "cot_max_new_tokens",
    "cache_dir": "cot_cache_dir",
    "data_path": "data_path",
}


def add_arguments(parser):
    parser.add_argument("--dataset", "-d", required=True, help="RecBole dataset name, e.g. ml-100k.")
    parser.add_argument("--teacher", help="HF model id, local folder, 'smollm2-135m', http(s)://host:port (OpenAI-compatible) or vllm:<model>.")
    parser.add_argument("--teacher-model", dest="teacher_model", help="Model name to request from an http(s) teacher.")
    parser.add_argument("--refine-teacher", dest="refine_teacher", help="Teacher of the refinement step, in any --teacher form (cot_refine_teacher; default: --teacher).")
    parser.add_argument("--refine-teacher-model", dest="refine_teacher_model", help="Model name to request from an http(s) refinement teacher.")
    parser.add_argument("--data-path", dest="data_path", help="RecBole data_path holding <dataset>/ (default: RecBole's).")
    parser.add_argument("--num-samples", dest="num_samples", type=int, help="Training samples sent to the teacher (cot_num_samples).")
    parser.add_argument("--ratio", type=float, help="CoT rows per plain row in the training file (cot_ratio).")
    parser.add_argument("--min-gain", dest="min_gain", type=float, help="Keep a CoT sample only when its log-prob gain exceeds this (cot_min_gain).")
    parser.add_argument("--min-prob", dest="min_prob", type=float, help="...and the target's probability given the rationale is at least this (cot_min_prob).")
    parser.add_argument("--max-new-tokens", dest="max_new_tokens", type=int, help="Longest teacher reply per step (cot_max_new_tokens).")
    parser.add_argument("--cache-dir", dest="cache_dir", help="Folder of the caches and the output (cot_cache_dir).")
    parser.add_argument("--no-progress", dest="show_progress", action="store_false", help="No progress bars.")


def run(args):
    from recbole_mllmr1.cli import with_flags
    from recbole_mllmr1.config import Config
    from recbole_mllmr1.cot.build import build_mixed_grained_dataset, cot_statistics, provenance_path
    from recbole_mllmr1.cot.cache import read_jsonl
    from recbole_mllmr1.quick_start import prepare_run

    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    flags = {key: getattr(args, flag) for flag, key in _OVERRIDES.items()}
    overrides = with_flags(args.config_dict, flags, "build-cot")
    config = Config(
        model="MLLMRecR1",
        dataset=args.dataset,
        config_file_list=args.config_files.split() if args.config_files else None,
        config_dict=overrides,
    )
    model, train_data, _, _ = prepare_run(config)
    path = build_mixed_grained_dataset(config, model, train_data._dataset, show_progress=args.show_progress)
    stats = cot_statistics(read_jsonl(provenance_path(path)))
    print(
        f"{stats['samples']} CoT samples: {stats['unparseable'] + stats['empty']} not parsed, {stats['kept']} kept "
        f"({stats['kept_share']:.1%}), {stats['injected']} injected; mean gain {stats['mean_gain']:+.4f}\n"
        f"training file: {path}\nprovenance:    {provenance_path(path)}"
    )
    return 0
