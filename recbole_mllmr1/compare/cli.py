"""``recbole-mllmr1 compare``: its options, their checks, and the comparison from rows to table.

Only the light modules are imported here, so that ``--help`` does not load torch and RecBole;
the ones that run the models are imported when the command runs.
"""
import os

from .rows import DEFAULT_MODELS, LLM_MODEL, RETRIEVER_MODEL, ROWS, select_rows
from .settings import Settings, default_trainings, parse_mode, parse_overrides, parse_topk


def _comma_list(text, convert, what):
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [convert(item) for item in items]
    except ValueError:
        raise ValueError(f"{what} [{text}] is not a comma-separated list, e.g. {what} 0,1,2.") from None


def settings_from_args(args):
    parse_mode(args.mode)
    valid_mode = args.valid_mode or args.mode
    parse_mode(valid_mode, "--valid-mode")
    if args.eval_user_sample is not None and args.eval_user_sample < 1:
        raise ValueError(f"--eval-user-sample [{args.eval_user_sample}] must be a positive number of users.")
    if args.rerank_topk < 2:
        raise ValueError(f"--rerank-topk [{args.rerank_topk}] must be at least 2.")
    seeds = _comma_list(args.seeds, int, "--seeds")
    models = _comma_list(args.models, str, "--models")
    if not seeds or not models:
        raise ValueError("--seeds and --models need at least one value each.")
    # run_recbole's form, --key=value, is a --config KEY=VALUE for every row.
    config_items = list(args.config or []) + [f"{key}={value}" for key, value in getattr(args, "config_dict", {}).items()]
    overrides, model_overrides = parse_overrides(config_items)
    if "topk" in overrides and args.topk is not None:
        raise ValueError("topk is given twice, by --topk and as a config key: keep one.")
    # RecBole's topk is the table's: every row is evaluated and reported at the same cut-offs.
    topk = parse_topk(overrides.pop("topk", None) or args.topk or "1,5,10")
    out = os.path.abspath(args.out or os.path.join("runs", "compare", f"{args.dataset}-{args.mode}"))
    return Settings(
        dataset=args.dataset,
        mode=args.mode,
        valid_mode=valid_mode,
        models=models,
        seeds=seeds,
        out=out,
        trainings=os.path.abspath(args.trainings) if args.trainings else default_trainings(out),
        force=args.force,
        eval_user_sample=args.eval_user_sample,
        data_path=os.path.abspath(args.data_path) if args.data_path else None,
        rerank_topk=args.rerank_topk,
        config_items=config_items,
        overrides=overrides,
        model_overrides=model_overrides,
        topk=topk,
        config_files=[os.path.abspath(path) for path in args.config_files.split()] if getattr(args, "config_files", None) else [],
    )


def add_arguments(parser):
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--mode", default="uni9", help="evaluation mode: full, uniN or popN (default: uni9)")
    parser.add_argument("--valid-mode", default=None,
                        help="evaluation mode of the validation set (early stopping, adapter selection; default: --mode)")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS),
                        help=f"comma-separated models (all their rows) or row slugs, e.g. Pop,SASRec,mllmrecr1-zero-shot; "
                             f"rows: {', '.join(row.slug for row in ROWS)} (default: %(default)s)")
    parser.add_argument("--out", default=None, help="output folder (default: runs/compare/<dataset>-<mode>)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (default: 0)")
    parser.add_argument("--trainings", default=None,
                        help=f"folder of {LLM_MODEL}'s trainings, which comparisons sharing it train once (default: <out>/trainings)")
    parser.add_argument("--force", action="store_true",
                        help=f"rerun rows whose results already exist and empty the --trainings folder ({LLM_MODEL} trains again)")
    parser.add_argument("--eval-user-sample", type=int, default=None,
                        help="evaluate a seeded sample of this many test users, the same for every model (default: all)")
    parser.add_argument("--data-path", default=None, help="folder holding <dataset>/<dataset>.inter (RecBole's data_path)")
    parser.add_argument("--rerank-topk", type=int, default=20,
                        help=f"full mode: {LLM_MODEL} reranks this many top items of {RETRIEVER_MODEL} (default: 20)")
    parser.add_argument("--topk", default=None,
                        help="comma-separated cut-offs of every metric, including 10 (default: 1,5,10)")
    parser.add_argument("--config", action="append", metavar="[MODEL.]KEY=VALUE",
                        help="a RecBole config key for every row, or for one model's rows (repeatable; VALUE is YAML)")


def run(args):
    from .execute import run_all
    from .report import write_outputs
    from .statistics import build_table

    settings = settings_from_args(args)
    os.makedirs(settings.out, exist_ok=True)
    rows = select_rows(settings.models, settings.mode)
    modes = settings.mode if settings.valid_mode == settings.mode else f"{settings.mode}, validation {settings.valid_mode}"
    print(f"Comparing {len(rows)} rows x {len(settings.seeds)} seeds on {settings.dataset} ({modes}) into {settings.out}", flush=True)
    results = run_all(rows, settings)
    entries, best = build_table(rows, results, settings)
    print(write_outputs(entries, best, settings), flush=True)
    print(f"Wrote results.csv, results.md, metrics.png and time.png to {settings.out}", flush=True)
    return 0
