"""``run_recbole``: RecBole's quick start, for plugin and RecBole models alike.

Differs from ``recbole.quick_start.run_recbole`` in three ways: models resolve through the
plugin first, the FLOPs count is skipped (it deep-copies the model, an LLM here), and
``eval_user_sample`` can evaluate a seeded sample of users. ``recbole.quick_start`` is never
imported: it imports ray, which is broken on numpy 2.
"""
import os
import sys
import time
from logging import getLogger

import numpy as np
import torch
from accelerate import PartialState
from recbole.data import create_dataset
from recbole.data.utils import create_samplers, get_dataloader
from recbole.data.utils import data_preparation as recbole_data_preparation
from recbole.utils import ModelType, get_environment, init_logger, init_seed, set_color

from recbole_mllmr1.config import Config
from recbole_mllmr1.hooks import attach_image_texts
from recbole_mllmr1.json_files import write_json_atomically
from recbole_mllmr1.sequential_model import cached_checkpoint_path, load_sequential_model, sequential_config_dict
from recbole_mllmr1.settings import check_settings, warn_if_long_on_cpu
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


def prepare_run(config, log_config=False):
    """RecBole's dataset, split and dataloaders for ``config``, and the initialised model.

    The settings are checked first, then the dataset loads: a wrong value or a data error fails
    before any training or LLM loads, and (``log_config``: ``run_recbole``) before the config is
    logged. This is the one way the package builds a config's data and model (``run_recbole``,
    ``build-cot`` and ``recommend`` all come here); for MLLMRecR1 the sequential model is trained
    (or read from its cache) and the textualize stage runs just before the model is built.
    """
    check_settings(config)
    warn_if_long_on_cpu(config, getLogger())
    init_seed(config["seed"], config["reproducibility"])
    try:
        dataset = create_dataset(config)
    except (ValueError, KeyError) as error:  # RecBole's messages name the column, not the dataset
        from recbole_mllmr1.cli import error_message

        raise ValueError(f"dataset [{config['dataset']}] in {config['data_path']}: {error_message(error)}") from error
    if log_config:
        getLogger().info(sys.argv)
        getLogger().info(config)
    sequential_checkpoint = None
    if config["model"] == "MLLMRecR1":
        # Under torchrun every process builds the model: one trains the sequential model, the others
        # then read its cached checkpoint (the state the trainer uses, see MLLMRecR1Trainer).
        with PartialState(cpu=torch.device(config["device"]).type == "cpu").main_process_first():
            sequential_checkpoint = ensure_sequential_model(config)
        init_seed(config["seed"], config["reproducibility"])  # the split and sampling as without it
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
    # The cache is shared by every test mode: the test result says which one it was tested in.
    write_json_atomically(
        os.path.splitext(target)[0] + ".json",
        {"test_mode": sequential_config["eval_args"]["mode"]["test"],
         **{key: result[key] for key in ("best_valid_result", "test_result", "train_time_s")}},
        indent=1,
    )
    logger.info(set_color(f"Sequential model {name}", "green") + f": test {dict(result['test_result'])}")
    return target


def train_and_test(config, saved=True, trainer_hook=None, log_config=False):
    """Build, train (with RecBole's early stopping) and test ``config``'s model; returns ``(result, trainer)``.
    ``log_config``: log the command line and the config once the dataset has loaded (:func:`prepare_run`)."""
    model, train_data, valid_data, test_data = prepare_run(config, log_config=log_config)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    getLogger().info(model)  # after the trainer: MLLMRecR1's trainable count is its LoRA adapter's
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
    check_settings(config)  # a wrong value is one line, before the logger prints the whole config
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    # The config is logged once the dataset has loaded: a data error is one line, not after the dump.
    result, _ = train_and_test(config, saved=saved, trainer_hook=trainer_hook, log_config=True)
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


def stage_metrics(result):
    """The stage table's columns for a result's keys: HR at the smallest and the middle cut-off,
    NDCG at the middle one, MRR at the largest (topk 1, 5, 10: hit@1, hit@5, ndcg@5, mrr@10;
    3, 5, 10: hit@3, hit@5, ndcg@5, mrr@10); every key when the result lacks those metrics."""
    cut_offs = sorted({int(key.split("@")[1]) for key in result if "@" in key})
    if not cut_offs:
        return list(result)
    low, middle, high = cut_offs[0], cut_offs[len(cut_offs) // 2], cut_offs[-1]
    chosen = list(dict.fromkeys([f"hit@{low}", f"hit@{middle}", f"ndcg@{middle}", f"mrr@{high}"]))
    return chosen if all(metric in result for metric in chosen) else list(result)


def stage_table(stage_results, fusion_weights=None, metrics=None):
    """A markdown table: one row per training stage, one column per metric (default:
    :func:`stage_metrics` of the first stage), and the fusion weight each stage was tested with
    (the sequential model's share of the score; 0 = the LLM alone)."""
    fusion_weights = fusion_weights or {}
    metrics = metrics or stage_metrics(next(iter(stage_results.values()), {}))
    lines = ["| stage | " + " | ".join(metrics) + " | fusion weight |", "|---" * (len(metrics) + 2) + "|"]
    for stage, result in stage_results.items():
        weight = fusion_weights.get(stage)
        lines.append(
            f"| {stage} | " + " | ".join(f"{result[m]:.4f}" for m in metrics) + f" | {'-' if weight is None else f'{weight:g}'} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Console entry point: ``run_recbole --model=X --dataset=Y [--config_files="a.yaml b.yaml"] [--key=value ...]``.

    Every ``--key=value`` is read by RecBole's Config from the command line, as in RecBole;
    ``main(argv)`` makes ``argv`` that command line. Returns the exit status.

    Before the run starts (and before RecBole logs its config), the command line, the config
    files, the Config, the settings and the dataset folder are checked (:func:`check_before_run`).

    Errors follow one rule (:func:`recbole_mllmr1.cli.is_user_error`): a user error prints
    ``error: <message>`` and ``traceback: <file>`` on stderr (the traceback is in
    ``log/errors/``) and returns 2. User errors are the plugin's ``SettingsError``,
    ``UnknownKeyError`` and ``MissingModelPackage``, yaml errors and the checks here, wherever
    they are raised, and ``ValueError`` / ``KeyError`` / ``OSError`` (``FileNotFoundError``,
    missing weights, no network) raised while the run is set up (Config, dataset, model). The
    same types raised inside training or testing (a trainer's ``fit`` or ``evaluate``) and every
    other exception are bugs: Python's traceback, exit status 1. ``--debug`` re-raises user errors too.

    A finished run prints its metrics as plain numbers (:func:`result_summary`), the log file
    and, last, the run folder (or the saved model file) when there is one.
    """
    from recbole_mllmr1.cli import (
        EXIT_USER_ERROR, check_config_files, config_arguments, is_config_argument, report_user_error, run_recbole_parser,
    )

    argv = list(sys.argv[1:] if argv is None else argv)
    args, rest = run_recbole_parser().parse_known_args(argv)
    trainers = []
    try:
        config_arguments(rest, "run_recbole")
        config_file_list = check_config_files(args.config_files)
        with config_command_line([arg for arg in argv if is_config_argument(arg)]):
            check_before_run(args.model, args.dataset, config_file_list)
            result = run_recbole(
                model=args.model, dataset=args.dataset, config_file_list=config_file_list, command_line=True,
                trainer_hook=trainers.append,
            )
    except Exception as error:
        if report_user_error(error, args.debug, ["run_recbole", *argv]):
            return EXIT_USER_ERROR
        raise
    print(result_summary(result, trainers[0] if trainers else None), flush=True)
    return 0


class config_command_line:  # noqa: N801 - used as a context manager: ``with config_command_line(args):``
    """RecBole's Config reads ``sys.argv``: inside, it holds only the run's ``--key=value`` arguments
    (not ``--debug``, nor ``-m X``, whose values are passed on explicitly)."""

    def __init__(self, config_args):
        self.config_args = list(config_args)

    def __enter__(self):
        self.saved = sys.argv
        sys.argv = [self.saved[0] if self.saved else "run_recbole", *self.config_args]

    def __exit__(self, *exc_info):
        sys.argv = self.saved


def check_before_run(model, dataset, config_file_list):
    """What ``run_recbole`` would find out only after logging its config: the Config, the settings
    (:func:`check_settings`) and the dataset folder. Raises the error the run would raise."""
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list, command_line=True)
    check_settings(config)
    check_dataset_folder(config)


def check_dataset_folder(config):
    """Raise :class:`recbole_mllmr1.cli.UserError` when RecBole will find no interaction file.

    A missing folder is left to RecBole when the name is one RecBole can download."""
    import importlib.util

    import yaml

    from recbole_mllmr1.cli import UserError

    name, folder = config["dataset"], config["data_path"]
    convert_hint = "convert raw data with `recbole-mllmr1 convert`, or write the atomic files (README, 'Your own data')"
    if not os.path.isdir(folder):
        with open(os.path.join(os.path.dirname(importlib.util.find_spec("recbole").origin), "properties", "dataset", "url.yaml")) as file:
            if name in (yaml.safe_load(file) or {}):
                return
        raise UserError(
            f"dataset [{name}] not found: no folder {folder} (data_path={os.path.dirname(os.path.normpath(folder)) or '.'}), "
            f"and RecBole cannot download a dataset of that name; pass --data_path=<folder holding {name}/>, or {convert_hint}"
        )
    parts = config["benchmark_filename"]
    files = [f"{name}.{part}.inter" for part in parts] if parts else [f"{name}.inter"]
    missing = [file for file in files if not os.path.isfile(os.path.join(folder, file))]
    if missing:
        raise UserError(f"dataset folder {folder} has no {', '.join(missing)}; {convert_hint}")


def plain_metrics(result):
    """``hit@1 0.1333  hit@5 0.6000``: RecBole's result dict as plain numbers."""
    return "  ".join(f"{metric} {float(value):.4f}" for metric, value in result.items())


def result_summary(result, trainer=None):
    """The lines ``run_recbole`` prints when a run ends: the best validation and the test metrics as
    plain numbers, the log file, and, last, the run folder (MLLMRecR1) or the saved model file."""
    import logging

    sampled = f" (sampled: {result['eval_user_sample']} users)" if result.get("eval_user_sample") else ""
    lines = []
    if result.get("best_valid_result"):
        lines.append(f"best valid{sampled}: {plain_metrics(result['best_valid_result'])}")
    lines.append(f"test result{sampled}: {plain_metrics(result['test_result'])}")
    log_files = [
        handler.baseFilename for handler in getLogger().handlers
        if isinstance(handler, logging.FileHandler) and os.path.isfile(handler.baseFilename)  # not /dev/null
    ]
    if log_files:
        lines.append(f"log: {_shown_path(log_files[-1])}")
    run_dir = getattr(trainer, "run_dir", None)
    model_file = getattr(trainer, "saved_model_file", None)
    if run_dir and os.path.isdir(run_dir):
        lines.append(f"run folder: {_shown_path(run_dir)}")
    elif model_file and os.path.isfile(model_file):
        lines.append(f"saved model: {_shown_path(model_file)}")
    return "\n".join(lines)


def _shown_path(path):
    """``path`` relative to the working folder when it is inside it."""
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith("..") else relative
