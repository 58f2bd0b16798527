"""MLLMRecR1's settings, checked when a run starts: every key of ``properties/model/MLLMRecR1.yaml``.

RecBole's Config stays the one source of the values; :func:`check_settings` only reads it,
before the dataset or the LLM loads, so that a wrong value fails in the first second with
the key, the value and what is allowed (in the style of TRL's ``GRPOConfig.__post_init__``),
instead of after hours of training in the stage that reads it.
"""
import math
import os

from recbole_mllmr1.sequential_model import check_checkpoint_matches, check_sequential_model_name, read_checkpoint
from recbole_mllmr1.textualize.backends import BACKENDS
from recbole_mllmr1.training.rewards import REWARDS
from recbole_mllmr1.training.settings import check_grpo_batch
from recbole_mllmr1.training.stages import STAGES, grpo_shows_rationales

# The GRPO loss types of every TRL release setup.py allows (trl >= 0.23).
GRPO_LOSS_TYPES = ("grpo", "dapo", "dr_grpo", "bnpo")
# transformers' schedules that need nothing beyond the step count (warm-up is 0): today's constant rate,
# the official code's linear decay (TRL's default) and cosine. The others take extra arguments no key sets.
LR_SCHEDULER_TYPES = ("constant", "linear", "cosine")


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


def texts(non_empty=False, optional=False, none_means=""):
    requirement = "a list of strings" + (", at least one" if non_empty else "") + (f", or ~ (None on the command line) for {none_means}" if optional else "")

    def check(key, value):
        if value is None and optional:
            return
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
    "recommender_image_text": boolean,
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
    "eval_scoring": choice("likelihood", "generative"),
    "stages": names(STAGES, ordered=True),
    "train_samples": integer(1, optional=True, none_means="the whole training split"),
    "train_candidates": integer(2),
    "train_sample_per_user": boolean,
    "eval_step": integer(1),
    "stopping_step": integer(1),
    "reasoning_eval": choice("auto", True, False),
    "max_reasoning_tokens": integer(1),
    "lora_r": integer(1),
    "lora_alpha": number(0, low_inclusive=False),
    "lora_dropout": number(0, 1),
    "lora_target_modules": texts(non_empty=True),
    "lora_last_layers": integer(1, optional=True, none_means="every layer"),
    "grpo_lora": choice("continue", "fresh"),
    "grpo_lora_r": integer(1, optional=True, none_means="lora_r"),
    "grpo_lora_alpha": number(0, low_inclusive=False, optional=True, none_means="lora_alpha"),
    "grpo_lora_target_modules": texts(non_empty=True, optional=True, none_means="lora_target_modules"),
    "gradient_checkpointing": boolean,
    "lr_scheduler_type": choice(*LR_SCHEDULER_TYPES),
    "sft_data": choice("mixed", "plain"),
    "sft_steps": integer(1),
    "sft_epochs": number(0, low_inclusive=False, optional=True, none_means="sft_steps deciding the length"),
    "sft_learning_rate": number(0, low_inclusive=False),
    "sft_batch_size": integer(1),
    "sft_gradient_accumulation_steps": integer(1),
    "sft_max_length": integer(1),
    "sft_completion_only_loss": boolean,
    "cot_teacher": text(),
    "cot_teacher_model": text(optional=True, none_means="no served model name"),
    "cot_num_samples": integer(0, optional=True, none_means="every plain sample"),
    "cot_placement": choice("output", "input"),
    "cot_ratio": number(0),
    "cot_input_share_sft": number(0, 1),
    "cot_input_share_grpo": number(0, 1),
    "cot_refine_sees_target": boolean,
    "cot_min_gain": number(optional=True, none_means="no gain threshold"),
    "cot_min_prob": number(0, 1, optional=True, none_means="no probability threshold"),
    "cot_max_new_tokens": integer(1),
    "cot_temperature": number(0),
    "cot_refine_teacher": text(optional=True, none_means="cot_teacher refining its own notes"),
    "cot_refine_teacher_model": text(optional=True, none_means="no served model name"),
    "cot_refine_max_new_tokens": integer(1, optional=True, none_means="cot_max_new_tokens"),
    "cot_refine_temperature": number(0, optional=True, none_means="cot_temperature"),
    "cot_batch_size": integer(1),
    "cot_cache_dir": text(optional=True, none_means="~/.cache/recbole_mllmr1/cot"),
    "grpo_steps": integer(1),
    "grpo_epochs": number(0, low_inclusive=False, optional=True, none_means="grpo_steps deciding the length"),
    "grpo_learning_rate": number(0, low_inclusive=False),
    "grpo_batch_size": integer(1),
    "grpo_gradient_accumulation_steps": integer(1),
    # TRL computes advantages within a group: one completion per prompt has none.
    "grpo_num_generations": integer(2),
    "grpo_max_completion_length": integer(1),
    "grpo_temperature": number(0, low_inclusive=False),
    "grpo_top_p": number(0, 1, low_inclusive=False),
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
    _check_time_field_loaded(config)
    if config["model"] != "MLLMRecR1":
        return
    if config["max_history"] > config["MAX_ITEM_LIST_LENGTH"]:
        _fail("max_history", config["max_history"], f"at most MAX_ITEM_LIST_LENGTH ({config['MAX_ITEM_LIST_LENGTH']}), the history RecBole keeps")
    _check_grounding(config)
    if config["use_image_text"] and not config["recommender_image_text"] and not _teacher_runs(config):
        _fail(
            "recommender_image_text", False,
            "it leaves the image text to the CoT teacher, which this run never calls (it runs for sft with sft_data: "
            "mixed, and for grpo with cot_placement: input); set use_image_text: False to skip the textualizer, or "
            "recommender_image_text: True",
        )
    if config["eval_scoring"] == "generative" and config["fusion_weight"] not in ("auto", 0):
        _fail(
            "fusion_weight", config["fusion_weight"],
            "eval_scoring: generative ranks by the LLM's generated list, which has no log-probabilities to mix with the "
            "sequential model's; set fusion_weight: 0 (or auto, which means 0 there) for the LLM alone, or eval_scoring: likelihood",
        )
    if config["item_tokens"] and not config["sft_completion_only_loss"]:
        _fail(
            "sft_completion_only_loss", False,
            "a loss on the prompt's tokens would ask the LLM's output head to predict the hybrid item tokens of the "
            "history, whose ids lie above its vocabulary; set sft_completion_only_loss: True, or item_tokens: False "
            "for a text-only model",
        )
    if "grpo" in config["stages"]:
        # torchrun and `accelerate launch` set WORLD_SIZE; TRL trains on every process.
        check_grpo_batch(config, num_processes=int(os.environ.get("WORLD_SIZE", "1")))


def _teacher_runs(config):
    """Whether the run calls the CoT teacher: SFT on mixed data, or GRPO with rationales in a share of its prompts."""
    stages = config["stages"] or []
    return ("sft" in stages and config["sft_data"] == "mixed") or ("grpo" in stages and grpo_shows_rationales(config))


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


def _check_time_field_loaded(config):
    """A time-ordered split (``eval_args.order: TO``) needs the time field among the loaded inter columns.

    Without it RecBole fails later with ``[timestamp] is not exist in interaction``, after the
    dataset is read. ``load_col: ~`` loads every column and passes.
    """
    eval_args = config["eval_args"] or {}
    time_field = config["TIME_FIELD"]
    load_col = config["load_col"]
    if eval_args.get("order") != "TO" or not time_field or not isinstance(load_col, dict):
        return
    if not os.path.isfile(os.path.join(config["data_path"], f"{config['dataset']}.inter")):
        return  # no dataset there: that is reported as such, first
    inter_columns = load_col.get("inter") or []
    if isinstance(inter_columns, str):
        inter_columns = [inter_columns]
    if time_field in inter_columns:
        return
    raise SettingsError(
        f"Config key [load_col] loads the inter columns {list(inter_columns)} without the time field [{time_field}] "
        f"(TIME_FIELD), but eval_args.order is 'TO': the leave-one-out split orders each user's interactions by time. "
        f"Add {time_field} to load_col's inter list (and a {time_field}:float column to the .inter file), "
        f"or set eval_args.order: RO for a random order."
    )


# ---- CPU cost estimate ------------------------------------------------------------------------
# Seconds measured on the project's 2-core CPU VM with SmolLM2-135M-Instruct (the default LLM);
# the figures are in benchmarks/results/README.md ("The main command" and the CPU throughput tables).
#
# Scoring: ~1 user per second with max_history 5 and uni9 (10 candidates per user): the main
# command's zero-shot validation of 60 users took ~1 min. Cost grows with the candidates (one
# title scored per candidate) and with the prompt length; about half of a 5-item prompt (~390
# tokens) is the history, so a history of h items costs (h + 5) / 10 of it.
SCORING_S_PER_USER = 1.0
SCORING_REFERENCE_CANDIDATES = 10
SCORING_REFERENCE_HISTORY = 5
# Reasoning before scoring (after GRPO, reasoning_eval: auto): the main command's validations after
# GRPO took ~1.6 min instead of ~1 min for 60 users with 12 reasoning tokens: ~0.05 s per token and user.
REASONING_S_PER_TOKEN = 0.05
# SFT: ~1.8 s per sample with LoRA on every linear layer of the last 8 decoder layers
# (main_cpu.yaml: 24 steps x 4 samples in ~5 min with its validation); rounded up to 2 s. LoRA on
# every layer (lora_last_layers: ~) costs more: the backward pass then runs through the whole model.
SFT_S_PER_SAMPLE = 2.0
# GRPO: 15-19 s per step of 4 completions (main_cpu.yaml: 8 steps in ~3 min with its validation);
# scaled by the completions per step.
GRPO_S_PER_STEP = 15.0
GRPO_REFERENCE_COMPLETIONS = 4
# CoT teacher (sft_data: mixed): ~13 s per sample with the 135M teacher (pseudo-CoT, then refinement).
COT_S_PER_SAMPLE = 13.0
# SASRec trained in the run: ~52 s per epoch over ml-100k with 20-item histories; rounded to 1 min.
SEQUENTIAL_MIN_PER_EPOCH = 1.0
# RecBole's default of 300 epochs ends with early stopping (stopping_step 10) far sooner; counted as 30.
SEQUENTIAL_DEFAULT_EPOCHS = 30
# A run estimated over this many minutes on CPU is announced before it starts.
CPU_WARNING_MINUTES = 30
LAPTOP_CONFIG = "properties/quick_start_config/main_cpu.yaml"


def _candidates_per_user(config):
    """Candidates scored per evaluated user: N + 1 in 'uniN' / 'popN' mode, rerank_topk in full ranking."""
    mode = (config["eval_args"] or {}).get("mode", "full")
    if isinstance(mode, dict):
        mode = mode.get("test", mode.get("valid", "full"))
    mode = str(mode)
    for prefix in ("uni", "pop"):
        if mode.startswith(prefix) and mode[len(prefix):].isdigit():
            return int(mode[len(prefix):]) + 1
    if mode == "full":
        return config["rerank_topk"]
    return SCORING_REFERENCE_CANDIDATES


def _count_users(config, max_lines=2_000_000):
    """Distinct users in the first ``max_lines`` lines of ``<data_path>/<dataset>.inter``; None if it is absent."""
    path = os.path.join(config["data_path"] or "", f"{config['dataset']}.inter")
    if not os.path.isfile(path):
        return None
    separator = config["field_separator"] or "\t"
    users = set()
    with open(path, encoding="utf-8", errors="replace") as inter:
        header = inter.readline().rstrip("\n").split(separator)
        names = [column.split(":")[0] for column in header]
        if config["USER_ID_FIELD"] not in names:
            return None
        column = names.index(config["USER_ID_FIELD"])
        for number, line in enumerate(inter):
            if number >= max_lines:
                break
            fields = line.rstrip("\n").split(separator)
            if len(fields) > column:
                users.add(fields[column])
    return len(users)


def cpu_cost_parts(config, n_users=None):
    """MLLMRecR1's estimated CPU minutes by part (``{part: minutes}``), from the config alone.

    ``n_users``: the dataset's users with a test interaction (counted from the ``.inter`` file when
    not given); ``eval_user_sample`` caps it. Parts: the sequential model's training, the CoT
    teacher, SFT, GRPO, and the validation and test passes. Constants: see the comments above.
    """
    stages = list(config["stages"] or [])
    parts = {}
    sequential = config["sequential_model"] and not config["retriever_checkpoint"]
    if sequential:
        try:
            from recbole_mllmr1.sequential_model import cached_checkpoint_path

            sequential = not os.path.isfile(cached_checkpoint_path(config))
        except Exception:  # an estimate: a config the cache path cannot describe counts as not cached
            pass
    if sequential:
        epochs = (config["sequential_model_config"] or {}).get("epochs") or SEQUENTIAL_DEFAULT_EPOCHS
        parts[f"{config['sequential_model']} ({epochs} epochs)"] = epochs * SEQUENTIAL_MIN_PER_EPOCH
    if "sft" in stages and config["sft_data"] == "mixed":
        teacher_samples = config["cot_num_samples"]
        if teacher_samples is None:
            teacher_samples = config["train_samples"] or 0
        if config["train_samples"]:
            teacher_samples = min(teacher_samples, config["train_samples"])
        if teacher_samples:
            parts[f"CoT teacher ({teacher_samples} samples)"] = teacher_samples * COT_S_PER_SAMPLE / 60
    if n_users is None:
        n_users = _count_users(config)
    steps = {stage: _stage_steps(config, stage, n_users) for stage in ("sft", "grpo")}
    if "sft" in stages:
        samples = steps["sft"] * config["sft_batch_size"] * config["sft_gradient_accumulation_steps"]
        parts[f"SFT ({steps['sft']} steps, {samples} samples)"] = samples * SFT_S_PER_SAMPLE / 60
    if "grpo" in stages:
        completions = config["grpo_batch_size"] * config["grpo_gradient_accumulation_steps"]
        seconds = steps["grpo"] * GRPO_S_PER_STEP * completions / GRPO_REFERENCE_COMPLETIONS
        parts[f"GRPO ({steps['grpo']} steps)"] = seconds / 60
    if config["eval_user_sample"]:
        n_users = min(n_users, config["eval_user_sample"]) if n_users else config["eval_user_sample"]
    if n_users:
        # The untrained model is validated once, each stage every eval_step steps (and at its end);
        # each stage's best adapter and the zero-shot model are tested.
        validations = 1 + sum(-(-steps[stage] // config["eval_step"]) for stage in stages)
        tests = len(stages) + 1
        candidates = _candidates_per_user(config)
        per_user = (
            SCORING_S_PER_USER
            * candidates / SCORING_REFERENCE_CANDIDATES
            * (config["max_history"] + SCORING_REFERENCE_HISTORY) / (2 * SCORING_REFERENCE_HISTORY)
        )
        seconds = (validations + tests) * n_users * per_user
        reasoning = config["reasoning_eval"]
        if reasoning is True or (reasoning == "auto" and "grpo" in stages):
            reasoning_passes = (validations + tests) if reasoning is True else (-(-steps["grpo"] // config["eval_step"]) + 1)
            seconds += reasoning_passes * n_users * config["max_reasoning_tokens"] * REASONING_S_PER_TOKEN
        parts[f"evaluation ({validations} validations + {tests} tests of {n_users} users x {candidates} candidates)"] = seconds / 60
    return parts


def _stage_steps(config, stage, n_users):
    """A stage's optimizer steps: ``<stage>_steps``, or ``<stage>_epochs`` over ``train_samples`` rows (one
    per user when it is ~: a lower bound unless train_sample_per_user); the steps key when nothing is counted."""
    epochs = config[f"{stage}_epochs"]
    rows = config["train_samples"] or n_users
    if epochs is None or not rows:
        return config[f"{stage}_steps"]
    per_step = config[f"{stage}_batch_size"] * config[f"{stage}_gradient_accumulation_steps"]
    if stage == "grpo":
        per_step /= config["grpo_num_generations"]  # GRPO's batch counts completions, grpo_num_generations per prompt
    return math.ceil(epochs * rows / per_step)


def estimated_cpu_minutes(config, n_users=None):
    """Estimated minutes of an MLLMRecR1 run on a 2-core CPU (see :func:`cpu_cost_parts`)."""
    return sum(cpu_cost_parts(config, n_users).values())


def warn_if_long_on_cpu(config, logger, n_users=None):
    """Log a warning before an MLLMRecR1 run on CPU estimated over ``CPU_WARNING_MINUTES``; the run goes on.

    Returns the estimate in minutes (None when nothing is estimated: another model or a GPU).
    """
    if config["model"] != "MLLMRecR1" or str(config["device"]).split(":")[0] != "cpu":
        return None
    parts = cpu_cost_parts(config, n_users)
    total = sum(parts.values())
    if total > CPU_WARNING_MINUTES:
        main = ", ".join(f"{name} ~{minutes:.0f} min" for name, minutes in sorted(parts.items(), key=lambda p: -p[1]))
        logger.warning(
            f"This MLLMRecR1 run is estimated at ~{total:.0f} min on CPU ({main}). "
            f"For a run sized for a laptop (~15 min on 2 cores) use --config_files={LAPTOP_CONFIG}, "
            "or reduce eval_user_sample, train_samples, sft_steps, grpo_steps and cot_num_samples."
        )
    return total
