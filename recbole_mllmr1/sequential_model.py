"""The sequential model MLLMRecR1 reads: its item embeddings (hybrid item tokens) and its scores
(fusion, and the candidates full ranking reranks).

It is an ordinary RecBole sequential model (``sequential_model``, SASRec by default), either
loaded from ``retriever_checkpoint`` or trained by the run itself through RecBole's own quick
start on RecBole's own split of the same dataset, so it sees exactly what RecBole's training of
that model sees: the training interactions, and the validation set for early stopping. The
trained checkpoint is cached under ``checkpoint_dir`` by everything that defines it, so a rerun
(or another MLLMRecR1 variant on the same data) reuses it.
"""
import hashlib
import json
import os

import torch
import yaml
from recbole.utils import ModelType

from recbole_mllmr1.config import properties_path
from recbole_mllmr1.utils import get_model

# The config of MLLMRecR1 without collaborative grounding: no sequential model to train or read
# (popularity retrieval in full ranking), text-only prompts, the LLM's own scores.
TEXT_ONLY = {"sequential_model": None, "item_tokens": False, "fusion_weight": 0}

# RecBole keys that say how a model trains rather than what the data and evaluation are: the
# sequential model takes RecBole's defaults for its own model, then ``sequential_model_config``.
_TRAINING_KEYS = {
    "model", "dataset", "epochs", "train_batch_size", "learner", "learning_rate", "train_neg_sample_args",
    "eval_step", "stopping_step", "clip_grad_norm", "weight_decay", "loss_type", "checkpoint_dir",
    "enable_amp", "enable_scaler", "require_pow", "config_files", "allow_unknown_keys",
}
# Keys MLLMRecR1's yaml sets that define the data and the evaluation the sequential model shares.
_SHARED_EVALUATION_KEYS = ("eval_args", "metrics", "topk", "valid_metric", "seed", "reproducibility", "show_progress")


def _plugin_keys():
    with open(properties_path("model", "MLLMRecR1.yaml")) as model_yaml:
        return set(yaml.safe_load(model_yaml))


def sequential_config_dict(config):
    """The config dict the sequential model trains with.

    The run's own data keys (data path, columns, filters, ``MAX_ITEM_LIST_LENGTH``, ...) and its
    evaluation protocol, never MLLMRecR1's training keys (its ``eval_step`` counts LLM steps),
    then ``sequential_model_config``. ``recbole-mllmr1 compare`` trains its SASRec row with this
    same dict, so that row is the very model the grounded rows read.
    """
    excluded = _plugin_keys() | _TRAINING_KEYS
    carried = {key: value for key, value in config.external_config_dict.items() if key not in excluded}
    carried.update({key: config[key] for key in _SHARED_EVALUATION_KEYS})
    carried.update(config["sequential_model_config"] or {})
    return carried


def selection_eval_args(eval_args):
    """``eval_args`` as training and model selection see them: the validation mode, not the test mode.

    Early stopping and adapter selection validate in the validation mode; the test mode only
    changes the final test, so one trained model serves every test mode. ``mode`` is read as
    RecBole's Config reads it: a string for both sets, or a ``{valid, test}`` dict.
    """
    mode = eval_args.get("mode", "full")
    valid_mode = mode.get("valid", mode.get("test", "full")) if isinstance(mode, dict) else mode
    return {**eval_args, "mode": {"valid": valid_mode}}


def state_dict_digest(state_dict):
    """A hash of a model's weights: each tensor's name, shape, dtype and bytes, in name order.

    The same weights give the same digest wherever their checkpoint lies and whenever it was written.
    """
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name} {tuple(tensor.shape)} {tensor.dtype}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def _dataset_files_signature(config):
    """Sizes and modification times of the dataset's atomic files: new data, new checkpoint."""
    folder = config["data_path"]
    if not os.path.isdir(folder):
        return []
    return sorted((name, os.path.getsize(os.path.join(folder, name)), int(os.path.getmtime(os.path.join(folder, name))))
                  for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name)))


def cached_checkpoint_path(config):
    """Where the run's trained sequential model is cached: named by everything that defines it.

    Its test mode is left out (:func:`selection_eval_args`): runs that differ only in how they
    test read one trained model.
    """
    trained_with = sequential_config_dict(config)
    trained_with["eval_args"] = selection_eval_args(trained_with["eval_args"])
    described = json.dumps(
        {
            "model": config["sequential_model"],
            "dataset": config["dataset"],
            "config": trained_with,
            "files": _dataset_files_signature(config),
        },
        sort_keys=True,
        default=str,
    )
    key = hashlib.sha256(described.encode()).hexdigest()[:10]
    return os.path.join(config["checkpoint_dir"], "sequential_model", f"{config['sequential_model']}-{config['dataset']}-{key}.pth")


def check_sequential_model_name(name):
    """``name`` must be a RecBole (or plugin) model of type SEQUENTIAL other than MLLMRecR1."""
    try:
        model_class = get_model(name)
    except ValueError as error:
        raise ValueError(f"Config key [sequential_model] = {name!r}: {error}") from None
    if getattr(model_class, "type", None) != ModelType.SEQUENTIAL or name == "MLLMRecR1":
        raise ValueError(
            f"Config key [sequential_model] = {name!r} is not a sequential model (its type is "
            f"{getattr(model_class, 'type', None)}): choose a RecBole sequential model such as SASRec, GRU4Rec or BERT4Rec."
        )


def read_checkpoint(checkpoint_file, key="retriever_checkpoint"):
    """The checkpoint RecBole's trainer saved (``config``, ``state_dict``, ...); a clear error when missing."""
    if not os.path.isfile(checkpoint_file):
        raise FileNotFoundError(
            f"Config key [{key}] = {checkpoint_file!r}: no such file. Pass a checkpoint that run_recbole saved "
            "(under checkpoint_dir), or set it to ~ to train the sequential model in this run."
        )
    return torch.load(checkpoint_file, map_location="cpu", weights_only=False)  # a RecBole checkpoint (our own runs)


def check_checkpoint_matches(checkpoint, checkpoint_file, config, item_num=None):
    """The checkpoint must hold a sequential model of ``sequential_model`` trained on this dataset and item count."""
    saved_config = checkpoint["config"]
    problems = []
    if saved_config["model"] != config["sequential_model"]:
        problems.append(f"its model is {saved_config['model']}, while sequential_model is {config['sequential_model']}")
    if saved_config["dataset"] != config["dataset"]:
        problems.append(f"it was trained on dataset [{saved_config['dataset']}], this run uses [{config['dataset']}]")
    if saved_config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
        problems.append(f"{saved_config['model']} is not a sequential model ({saved_config['MODEL_TYPE']})")
    embedding = checkpoint["state_dict"].get("item_embedding.weight")
    if embedding is None:
        problems.append(f"{saved_config['model']} has no item_embedding to read")
    elif item_num is not None and embedding.shape[0] != item_num:
        problems.append(f"it has {embedding.shape[0]} item rows, this dataset has {item_num} items (padding included)")
    if problems:
        raise ValueError(f"Config key [retriever_checkpoint] = {checkpoint_file!r} cannot be used: " + "; ".join(problems) + ".")


def load_sequential_model(checkpoint_file, config, dataset):
    """The trained sequential model, frozen and in eval mode, checked against ``config`` and ``dataset``."""
    checkpoint = read_checkpoint(checkpoint_file)
    check_checkpoint_matches(checkpoint, checkpoint_file, config, item_num=dataset.item_num)
    saved_config = checkpoint["config"]
    saved_config["device"] = torch.device("cpu")
    model = get_model(saved_config["model"])(saved_config, dataset)
    model.load_state_dict(checkpoint["state_dict"])
    model.load_other_parameter(checkpoint.get("other_parameter"))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model.eval()
