"""What each run is: its config files and keys on the shared protocol, its identity hash and its folder."""
import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources

from recbole_mllmr1.config import properties_path

from .rows import LLM_MODEL, slugify

# One value for every row: RecBole draws sampled negatives batch by batch, so a different
# evaluation batch size would give the models different candidates. 200 rows = 20 users of
# uni9 per MLLMRecR1 progress step.
EVAL_BATCH_SIZE = 200


def baseline_config_file(model):
    """``baselines/<model>.yaml`` shipped with the package, or None (the model then runs on RecBole's defaults)."""
    path = resources.files("recbole_mllmr1.baselines").joinpath(f"{model}.yaml")
    return str(path) if path.is_file() else None


def protocol_config(settings, seed):
    """The evaluation protocol, identical for every row of a comparison."""
    # One mode stays a string, as RecBole reads it for both sets (and as the config hash has it).
    mode = settings.mode if settings.valid_mode == settings.mode else {"valid": settings.valid_mode, "test": settings.mode}
    config = {
        "seed": seed,
        "reproducibility": True,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": mode},
        "metrics": ["Hit", "NDCG", "MRR"],
        "topk": list(settings.topk),
        "valid_metric": "NDCG@10",
        "eval_batch_size": EVAL_BATCH_SIZE,
        "eval_user_sample": settings.eval_user_sample,
    }
    if settings.data_path:
        config["data_path"] = settings.data_path
    return config


@dataclass
class RunSpec:
    """One run (model, config, seed): everything run_recbole receives, and where its outputs go.

    ``checkpoint_dir``: RecBole's ``checkpoint_dir`` for the run; MLLMRecR1's trainer keeps its
    training there, so MLLMRecR1 runs share the trainings folder (``--trainings``).
    """

    model: str
    seed: int
    config_files: list
    config_dict: dict
    config_hash: str
    run_dir: str
    checkpoint_dir: str
    retriever: "RunSpec" = None


def config_hash(model, dataset, config_files, hashed_config):
    """Short hash of what defines a row's results, seed excluded (seeds of one row share it).

    It covers the plugin's own model yaml too (``properties/model/<Model>.yaml``), so a changed
    MLLMRecR1 default reruns its rows; RecBole's built-in defaults are taken as fixed.
    """
    plugin_defaults = properties_path("model", f"{model}.yaml")
    files = config_files + ([plugin_defaults] if os.path.isfile(plugin_defaults) else [])
    payload = {
        "model": model,
        "dataset": dataset,
        "config_files": {os.path.basename(path): open(path, encoding="utf-8").read() for path in files},
        "config": {key: value for key, value in hashed_config.items() if key != "seed"},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:10]


def plan_run(model, overrides, seed, settings, retriever=None):
    config_files = [path for path in [baseline_config_file(model)] if path] + list(settings.config_files)
    config_dict = {**protocol_config(settings, seed), **overrides}
    hashed = dict(config_dict)
    if retriever is not None:
        config_dict["rerank_topk"] = hashed["rerank_topk"] = settings.rerank_topk
        config_dict["retriever_checkpoint"] = os.path.join(retriever.run_dir, "model.pth")
        # The retriever's own hash, not its path: the path holds the seed and the output folder.
        hashed["retriever"] = f"{retriever.model} {retriever.config_hash}"
    cli_overrides = {**settings.overrides, **settings.model_overrides.get(model, {})}
    config_dict.update(cli_overrides)
    hashed.update(cli_overrides)
    digest = config_hash(model, settings.dataset, config_files, hashed)
    run_dir = os.path.join(settings.out, "runs", f"{slugify(model)}-{digest}", f"seed{seed}")
    checkpoint_dir = settings.trainings if model == LLM_MODEL else run_dir
    return RunSpec(model, seed, config_files, config_dict, digest, run_dir, checkpoint_dir, retriever)


def describe_config(row, spec, settings):
    """The config column: the yaml file, every key that differs from the shared protocol, the reported stage."""
    base = " + ".join(os.path.basename(path) for path in spec.config_files) if spec.config_files else f"{spec.model} defaults"
    protocol = protocol_config(settings, spec.seed)
    keys = [
        f"{key}={value}"
        for key, value in spec.config_dict.items()
        if key != "retriever_checkpoint" and (key not in protocol or protocol[key] != value)
    ]
    if spec.retriever is not None:
        keys.append(f"reranks {spec.retriever.model} [{spec.retriever.config_hash}]")
    if row.stage:
        keys.append(f"reports stage {row.stage}")
    return " + ".join([base] + keys)
