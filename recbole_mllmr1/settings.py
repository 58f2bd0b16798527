"""MLLMRecR1's settings, checked when a run starts: every key of ``properties/model/MLLMRecR1.yaml``.

RecBole's Config stays the one source of the values; :func:`check_settings` only reads it,
before the dataset or the LLM loads, so that a wrong value fails in the first second with
the key, the value and what is allowed (in the style of TRL's ``GRPOConfig.__post_init__``),
instead of after hours of training in the stage that reads it.
"""
import os

from recbole_mllmr1.sequential_model import check_checkpoint_matches, check_sequential_model_name, read_checkpoint
from recbole_mllmr1.textualize.backends import BACKENDS
from recbole_mllmr1.training.rewards import REWARDS
from recbole_mllmr1.training.settings import check_grpo_batch
from recbole_mllmr1.training.stages import STAGES

# The GRPO loss types of every TRL release setup.py allows (trl >= 0.23).
GRPO_LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")


class SettingsError(ValueError):
    """A config value MLLMRecR1 cannot run with."""


def _fail(key, value, requirement):
    raise SettingsError(f"Config key [{key}] = {value!r} is not allowed: {requirement}.")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(low, high=None, optional=False, none_means=""):
    requirement = f"an int >= {low}" + (f" and <= {high}" if high is not None else "") + (f", or ~ (None on the command line) for {none_means}" if optional else "")

    def check(key, value):
        if value is None and optional:
            return
        if not _is_int(value) or value < low or (high is not None and value > high):
            _fail(key, value, requirement)

    return check


def number(low=None, high=None, low_inclusive=True, optional=False, none_means=""):
    bounds = []
    if low is not None:
        bounds.append(f"{'>=' if low_inclusive else '>'} {low}")
    if high is not None:
        bounds.append(f"<= {high}")
    requirement = "a number" + (" " + " and ".join(bounds) if bounds else "") + (f", or ~ (None on the command line) for {none_means}" if optional else "")

    def check(key, value):
        if value is None and optional:
            return
        if (
            not _is_number(value)
            or (low is not None and (value < low if low_inclusive else value <= low))
            or (high is not None and value > high)
        ):
            _fail(key, value, requirement)

    return check


def boolean(key, value):
    if not isinstance(value, bool):
        _fail(key, value, "True or False")


def text(optional=False, none_means=""):
    requirement = "a non-empty string" + (f", or ~ (None on the command line) for {none_means}" if optional else "")

    def check(key, value):
        if value is None and optional:
            return
        if not isinstance(value, str) or not value:
            _fail(key, value, requirement)

    return check


def choice(*allowed):
    def matches(value, option):
        # True == 1 in Python: a bool matches only a bool, anything else only a non-bool.
        return value is option if isinstance(option, bool) else (not isinstance(value, bool) and value == option)

    def check(key, value):
        if not any(matches(value, option) for option in allowed):
            _fail(key, value, "one of " + ", ".join(repr(a) for a in allowed))

    return check


def texts(non_empty=False):
    requirement = "a list of strings" + (", at least one" if non_empty else "")

    def check(key, value):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value) or (non_empty and not value):
            _fail(key, value, requirement)

    return check


def names(allowed, ordered):
    """A list of distinct names from ``allowed`` (in ``allowed``'s order when ``ordered``)."""
    allowed = list(allowed)
    requirement = f"a list of distinct names from {allowed}" + (", in that order" if ordered else "")

    def check(key, value):
        if (
            not isinstance(value, (list, tuple))
            or any(name not in allowed for name in value)
            or len(set(value)) != len(value)
            or (ordered and list(value) != sorted(value, key=allowed.index))
        ):
            _fail(key, value, requirement)

    return check


def sequential_model_name(key, value):
    if value is None:
        return
    if not isinstance(value, str) or not value:
        _fail(key, value, "a RecBole sequential model name such as 'SASRec', or ~ (None on the command line) for none")
    try:
        check_sequential_model_name(value)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def mapping(key, value):
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        _fail(key, value, "a dict of config keys to values, e.g. {epochs: 20}")


def _is_weight(value):
    return _is_number(value) and 0 <= value <= 1


def weight_or_auto(key, value):
    if value != "auto" and not _is_weight(value):
        _fail(key, value, "'auto' or a number in [0, 1]")


def weights(key, value):
    if not isinstance(value, (list, tuple)) or not value or not all(_is_weight(v) for v in value):
        _fail(key, value, "a non-empty list of numbers in [0, 1]")


RULES = {
    "llm_path": text(),
    "llm_dtype": choice("auto", "float32", "bfloat16", "float16"),
    "llm_batch_size": integer(1),
    "max_history": integer(1),
    "candidates_per_prompt": integer(2),
    "title_field": text(),
    "item_meta_fields": texts(),
    "use_image_text": boolean,
    "textualizer": choice(*BACKENDS),
    "textualizer_model": text(optional=True, none_means="the backend's default"),
    "textualizer_prompt": text(optional=True, none_means="the default prompt"),
    "textualize_cache_dir": text(optional=True, none_means="~/.cache/recbole_mllmr1/textualize"),
    "image_field": text(),
    "image_dir": text(optional=True, none_means="no image folder"),
    "sequential_model": sequential_model_name,
    "sequential_model_config": mapping,
    "retriever_checkpoint": text(optional=True, none_means="training the sequential model in the run"),
    "item_tokens": boolean,
    "projector_hidden_size": integer(1, optional=True, none_means="the LLM's hidden size"),
    "item_token_curriculum": number(0, 1),
    "fusion_weight": weight_or_auto,
    "fusion_grid": weights,
    "rerank_topk": integer(1),
    "stages": names(STAGES, ordered=True),
    "train_samples": integer(1, optional=True, none_means="the whole training split"),
    "train_candidates": integer(2),
    "eval_step": integer(1),
    "stopping_step": integer(1),
    "reasoning_eval": choice("auto", True, False),
    "max_reasoning_tokens": integer(1),
    "lora_r": integer(1),
    "lora_alpha": number(0, low_inclusive=False),
    "lora_dropout": number(0, 1),
    "lora_target_modules": texts(non_empty=True),
    "lora_last_layers": integer(1, optional=True, none_means="every layer"),
    "gradient_checkpointing": boolean,
    "sft_data": choice("mixed", "plain"),
    "sft_steps": integer(1),
    "sft_learning_rate": number(0, low_inclusive=False),
    "sft_batch_size": integer(1),
    "sft_gradient_accumulation_steps": integer(1),
    "sft_max_length": integer(1),
    "cot_teacher": text(),
    "cot_teacher_model": text(optional=True, none_means="no served model name"),
    "cot_num_samples": integer(0, optional=True, none_means="every plain sample"),
    "cot_ratio": number(0),
    "cot_min_gain": number(optional=True, none_means="no gain threshold"),
    "cot_min_prob": number(0, 1, optional=True, none_means="no probability threshold"),
    "cot_max_new_tokens": integer(1),
    "cot_temperature": number(0),
    "cot_batch_size": integer(1),
    "cot_cache_dir": text(optional=True, none_means="~/.cache/recbole_mllmr1/cot"),
    "grpo_steps": integer(1),
    "grpo_learning_rate": number(0, low_inclusive=False),
    "grpo_batch_size": integer(1),
    "grpo_gradient_accumulation_steps": integer(1),
    # TRL computes advantages within a group: one completion per prompt has none.
    "grpo_num_generations": integer(2),
    "grpo_max_completion_length": integer(1),
    "grpo_temperature": number(0, low_inclusive=False),
    "grpo_beta": number(0),
    "grpo_loss_type": choice(*GRPO_LOSS_TYPES),
    "grpo_scale_rewards": choice("group", "batch", "none"),
    "grpo_rewards": names(REWARDS, ordered=False),
    "use_vllm": boolean,
    "vllm_mode": choice("colocate", "server"),
    "eval_user_sample": integer(1, optional=True, none_means="every user"),
    "eval_batch_size": integer(1),
    # calculate_loss is a cross-entropy over the candidates; RecBole's BPR sampler has no use here.
    "loss_type": choice("CE"),
    "show_progress": boolean,
}

# Keys of MLLMRecR1.yaml that RecBole itself checks when it builds the Config and the data.
RECBOLE_CHECKED = ("eval_args", "metrics", "topk", "valid_metric", "train_neg_sample_args")

# The plugin's keys that every model reads (quick_start's sampled evaluation).
EVERY_MODEL = ("eval_user_sample",)


def check_settings(config):
    """Raise :class:`SettingsError` on the first key of ``config`` that the run cannot use."""
    keys = RULES if config["model"] == "MLLMRecR1" else EVERY_MODEL
    for key in keys:
        RULES[key](key, config[key])
    if config["model"] != "MLLMRecR1":
        return
    if config["max_history"] > config["MAX_ITEM_LIST_LENGTH"]:
        _fail("max_history", config["max_history"], f"at most MAX_ITEM_LIST_LENGTH ({config['MAX_ITEM_LIST_LENGTH']}), the history RecBole keeps")
    _check_grounding(config)
    if "grpo" in config["stages"]:
        # torchrun and `accelerate launch` set WORLD_SIZE; TRL trains on every process.
        check_grpo_batch(config, num_processes=int(os.environ.get("WORLD_SIZE", "1")))


def _check_grounding(config):
    """Item tokens and fusion need a sequential model; a given checkpoint must be one of this dataset."""
    grounded = {"item_tokens": config["item_tokens"], "fusion_weight": config["fusion_weight"] != 0}
    if not (config["sequential_model"] or config["retriever_checkpoint"]):
        for key, used in grounded.items():
            if used:
                _fail(key, config[key], "it reads the sequential model, and sequential_model is ~; set item_tokens: False and fusion_weight: 0 for a text-only model")
    if config["retriever_checkpoint"]:
        checkpoint_file = config["retriever_checkpoint"]
        try:
            check_checkpoint_matches(read_checkpoint(checkpoint_file), checkpoint_file, config)
        except (FileNotFoundError, ValueError) as error:
            raise SettingsError(str(error)) from None
    if config["item_tokens"] and config["use_vllm"] and "grpo" in config["stages"]:
        _fail(
            "use_vllm", True,
            "TRL's vLLM weight sync copies the LLM's own weights and cannot map the item-token projector, so vLLM "
            "rollouts would see untrained item tokens; set use_vllm: False (or item_tokens: False) for grounded GRPO",
        )
