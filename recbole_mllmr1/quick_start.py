"""``run_recbole``: RecBole's quick start, for plugin and RecBole models alike.

Differs from ``recbole.quick_start.run_recbole`` in three ways: models resolve through the
plugin first, the FLOPs count is skipped (it deep-copies the model, an LLM here), and
``eval_user_sample`` can evaluate a seeded sample of users. ``recbole.quick_start`` is never
imported: it imports ray, which is broken on numpy 2.
"""
import argparse
import os
import sys
import time
from logging import getLogger

import numpy as np
import torch
from recbole.data import create_dataset
from recbole.data.utils import create_samplers, get_dataloader
from recbole.data.utils import data_preparation as recbole_data_preparation
from recbole.utils import ModelType, get_environment, init_logger, init_seed, set_color

from recbole_mllmr1.config import Config
from recbole_mllmr1.hooks import attach_image_texts
from recbole_mllmr1.json_files import write_json_atomically
from recbole_mllmr1.sequential_model import cached_checkpoint_path, load_sequential_model, sequential_config_dict
from recbole_mllmr1.settings import check_settings
from recbole_mllmr1.trainer import get_trainer
from recbole_mllmr1.utils import get_model


def sample_eval_users(config, test_dataset):
    """A seeded sample of ``eval_user_sample`` users among those with a test interaction."""
    users = np.unique(test_dataset.inter_feat[test_dataset.uid_field].numpy())
    size = config["eval_user_sample"]
    if size >= len(users):
        return users
    return np.sort(np.random.default_rng(config["seed"]).choice(users, size=size, replace=False))


def _restrict_to_users(dataset, users):
    mask = torch.from_numpy(np.isin(dataset.inter_feat[dataset.uid_field].numpy(), users))
    return dataset.copy(dataset.inter_feat[mask])


def data_preparation(config, dataset):
    """RecBole's split and dataloaders; with ``eval_user_sample``, valid/test keep only sampled users.

    The training data and the negative samplers are RecBole's, built from all users.
    """
    if not config["eval_user_sample"]:
        return recbole_data_preparation(config, dataset)
    if config["MODEL_TYPE"] == ModelType.KNOWLEDGE:
        raise ValueError("eval_user_sample is not supported for knowledge-aware models; set it to ~.")
    built_datasets = dataset.build()
    train_dataset, valid_dataset, test_dataset = built_datasets
    train_sampler, valid_sampler, test_sampler = create_samplers(config, dataset, built_datasets)
    users = sample_eval_users(config, test_dataset)
    getLogger().info(
        set_color("Sampled evaluation", "red")
        + f": {len(users)} of {test_dataset.user_num - 1} users (eval_user_sample={config['eval_user_sample']}, seed={config['seed']})"
    )
    train_data = get_dataloader(config, "train")(config, train_dataset, train_sampler, shuffle=config["shuffle"])
    valid_data = get_dataloader(config, "valid")(
        config, _restrict_to_users(valid_dataset, users), valid_sampler, shuffle=False
    )
    test_data = get_dataloader(config, "test")(config, _restrict_to_users(test_dataset, users), test_sampler, shuffle=False)
    return train_data, valid_data, test_data


def prepare_run(config):
    """RecBole's dataset, split and dataloaders for ``config``, and the initialised model.

    The settings are checked first: a wrong value fails before any data or LLM loads. This is
    the one way the package builds a config's data and model (``run_recbole``, ``build-cot``
    and ``recommend`` all come here); for MLLMRecR1 the sequential model is trained (or read
    from its cache) and the textualize stage runs just before the model is built.
    """
    check_settings(config)
    sequential_checkpoint = ensure_sequential_model(config) if config["model"] == "MLLMRecR1" else None
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    getLogger().info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    if config["model"] == "MLLMRecR1":
        attach_image_texts(config, train_data._dataset)
        train_data._dataset.sequential_model = (
            load_sequential_model(sequential_checkpoint, config, train_data._dataset) if sequential_checkpoint else None
        )
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    return model, train_data, valid_data, test_data


def ensure_sequential_model(config):
    """The checkpoint of MLLMRecR1's sequential model: ``retriever_checkpoint``, or the run's own
    training of ``sequential_model`` (cached; trained here with RecBole's early stopping when
    missing). None when ``sequential_model`` is ~."""
    if config["retriever_checkpoint"]:
        return config["retriever_checkpoint"]
    if not config["sequential_model"]:
        return None
    logger = getLogger()
    target = cached_checkpoint_path(config)
    if os.path.isfile(target):
        logger.info(set_color("Sequential model", "green") + f": reusing {target}")
        return target
    name = config["sequential_model"]
    logger.info(set_color("Sequential model", "green") + f": training {name} on RecBole's split of [{config['dataset']}] -> {target}")
    scratch = os.path.join(os.path.dirname(target), "in-progress")
    sequential_config = Config(
        model=name, dataset=config["dataset"], config_dict={**sequential_config_dict(config), "checkpoint_dir": scratch}
    )
    result, trainer = train_and_test(sequential_config)
    os.replace(trainer.saved_model_file, target)  # atomic: a crash leaves no half-written checkpoint
    write_json_atomically(
        os.path.splitext(target)[0] + ".json",
        {key: result[key] for key in ("best_valid_result", "test_result", "train_time_s")},
        indent=1,
    )
    logger.info(set_color(f"Sequential model {name}", "green") + f": test {dict(result['test_result'])}")
    return target


def train_and_test(config, saved=True, trainer_hook=None):
    """Build, train (with RecBole's early stopping) and test ``config``'s model; returns ``(result, trainer)``."""
    model, train_data, valid_data, test_data = prepare_run(config)
    getLogger().info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if trainer_hook is not None:
        trainer_hook(trainer)
    fit_start = time.perf_counter()
    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=saved, show_progress=config["show_progress"])
    train_time = time.perf_counter() - fit_start
    # RecBole draws sampled-evaluation negatives from numpy's global RNG while it iterates,
    # after training has used an amount of it that depends on the model: reseed so that
    # every model of a seed is tested on the same candidates.
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    test_start = time.perf_counter()
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    result = {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
        "eval_user_sample": config["eval_user_sample"],
        "train_time_s": train_time,
        "test_time_s": time.perf_counter() - test_start,
        "stage_results": getattr(trainer, "stage_results", None),
        "fusion_weights": getattr(trainer, "fusion_weights", None),
        # The share of GRPO steps that could teach the hit (MLLMRecR1 with a GRPO stage).
        "grpo_hit_spread": next((r for r in reversed(getattr(trainer, "history", [])) if r["kind"] == "hit_spread"), None),
    }
    return result, trainer


def run_recbole(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, trainer_hook=None, command_line=False
):
    """Train (if the model trains) and test ``model`` on ``dataset``; returns RecBole's result dict.

    ``trainer_hook(trainer)``, when given, is called once the trainer is built, before
    training: ``recbole-mllmr1 compare`` uses it to record per-user test metrics.
    ``command_line``: the process's command line holds this run's config keys (``run_recbole``).
    """
    config = Config(
        model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict, command_line=command_line
    )
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(sys.argv)
    logger.info(config)

    result, _ = train_and_test(config, saved=saved, trainer_hook=trainer_hook)
    if result["stage_results"]:
        logger.info(set_color("test result per stage", "yellow") + "\n" + stage_table(result["stage_results"], result["fusion_weights"]))
    if result["grpo_hit_spread"]:
        spread = result["grpo_hit_spread"]
        logger.info(f"GRPO: {spread['share']:.0%} of {spread['steps']} steps had a prompt whose rollouts differ in the hit reward")

    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    sampled = f" (sampled: {config['eval_user_sample']} users)" if config["eval_user_sample"] else ""
    logger.info(set_color("best valid ", "yellow") + f"{sampled}: {result['best_valid_result']}")
    logger.info(set_color("test result", "yellow") + f"{sampled}: {result['test_result']}")
    return result


def stage_table(stage_results, fusion_weights=None, metrics=("hit@1", "hit@5", "ndcg@5", "mrr@10")):
    """A markdown table: one row per training stage, one column per metric, and the fusion weight
    each stage was tested with (the sequential model's share of the score; 0 = the LLM alone)."""
    fusion_weights = fusion_weights or {}
    lines = ["| stage | " + " | ".join(metrics) + " | fusion weight |", "|---" * (len(metrics) + 2) + "|"]
    for stage, result in stage_results.items():
        weight = fusion_weights.get(stage)
        lines.append(
            f"| {stage} | " + " | ".join(f"{result[m]:.4f}" for m in metrics) + f" | {'-' if weight is None else f'{weight:g}'} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Console entry point: ``run_recbole --model=X --dataset=Y [--config_files="a.yaml b.yaml"] [--key=value ...]``.

    Every ``--key=value`` is read by RecBole's Config from the command line, as in RecBole.
    """
    parser = argparse.ArgumentParser(prog="run_recbole", description=main.__doc__.splitlines()[0])
    parser.add_argument("--model", "-m", type=str, default="MLLMRecR1", help="model name (plugin or RecBole)")
    parser.add_argument("--dataset", "-d", type=str, default="ml-100k", help="dataset name")
    parser.add_argument("--config_files", type=str, default=None, help="space-separated config files")
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    config_file_list = args.config_files.strip().split(" ") if args.config_files else None
    run_recbole(model=args.model, dataset=args.dataset, config_file_list=config_file_list, command_line=True)
    return 0
