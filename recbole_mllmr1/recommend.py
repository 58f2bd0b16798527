"""``recbole-mllmr1 recommend``: what a trained MLLMRecR1 recommends to one user, and why.

Prints which adapter it uses (the stage and step of the run's best one, or zero-shot) and its
fusion weight, the user's recent history (with image text; its last item is the user's held-out
test item), the candidates (the retriever's top ``rerank_topk`` items the user has not seen), the
model's own greedy reasoning (flagged when it only repeats the prompt), its ranking with the LLM's
probabilities, and the held-out item; ``--evaluate`` ranks from the history before that item and
says where the model puts it. The run folder and the user id are checked before the dataset or
the LLM loads.
"""
import difflib
import json
import os

import numpy as np

# The run folder's files (written by recbole_mllmr1.trainer, which imports torch: the checks here
# run before anything heavy loads; tests/test_user_errors.py checks that the names agree).
RUN_CONFIG_FILE = "run_config.json"
PROGRESS_FILE = "progress.json"
BEST_ADAPTER = "best_adapter"
ZERO_SHOT_STAGE = "zero-shot"


def check_run_folder(checkpoint):
    """The run's config (``run_config.json``) when ``checkpoint`` is a finished MLLMRecR1 run folder;
    raises :class:`recbole_mllmr1.cli.UserError` otherwise."""
    from recbole_mllmr1.cli import UserError

    config_file = os.path.join(checkpoint, RUN_CONFIG_FILE)
    if not (os.path.isfile(config_file) and os.path.isdir(os.path.join(checkpoint, BEST_ADAPTER))):
        raise UserError(
            f"{checkpoint} is not a finished MLLMRecR1 run folder (it needs {RUN_CONFIG_FILE} and {BEST_ADAPTER}/): "
            "pass the run folder that run_recbole printed last, under checkpoint_dir."
        )
    with open(config_file, encoding="utf-8") as file:
        return json.load(file)


def adapter_description(checkpoint):
    """Which adapter the run folder's ``best_adapter/`` is, from its ``progress.json``."""
    try:
        with open(os.path.join(checkpoint, PROGRESS_FILE), encoding="utf-8") as file:
            score, stage, step = json.load(file)["best"][:3]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{BEST_ADAPTER}/ of the run (no readable {PROGRESS_FILE}: stage and step unknown)"
    if stage == ZERO_SHOT_STAGE:
        return f"zero-shot (no training): the untrained model validated best (score {score:.4f})"
    return f"stage {stage}, step {step} (the run's best validation score, {score:.4f})"


def dataset_folder(run_config, dataset=None, data_path=None):
    """The folder RecBole reads the run's dataset from (ml-100k: RecBole's own copy, as RecBole's Config does)."""
    import importlib.util

    dataset = dataset or run_config["dataset"]
    if dataset == "ml-100k":
        recbole = importlib.util.find_spec("recbole")  # top-level: finding it imports nothing
        return os.path.join(os.path.dirname(recbole.origin), "dataset_example", dataset) if recbole else None
    return os.path.join(data_path or run_config.get("data_path") or "dataset/", dataset)


def closest_ids(user, ids, count=5):
    """The ``count`` ids nearest ``user``: by number when all are integers, else by spelling."""
    if user.lstrip("-").isdigit() and all(i.lstrip("-").isdigit() for i in ids):
        return sorted(ids, key=lambda i: (abs(int(i) - int(user)), int(i)))[:count]
    return difflib.get_close_matches(user, sorted(ids), n=count) or sorted(ids)[:count]


def check_user(run_config, user, dataset=None, data_path=None):
    """Raise :class:`recbole_mllmr1.cli.UserError` when the dataset's ``.inter`` file has no user ``user``,
    naming the closest ids. Reads only that file's user column; when the file or the column cannot
    be found (benchmark files, another layout), the check is left to the loaded dataset."""
    from recbole_mllmr1.cli import UserError

    folder = dataset_folder(run_config, dataset, data_path)
    name = dataset or run_config["dataset"]
    path = os.path.join(folder, f"{name}.inter") if folder else None
    if not path or not os.path.isfile(path):
        return
    separator = run_config.get("field_separator", "\t")
    uid_field = run_config.get("USER_ID_FIELD", "user_id")
    with open(path, encoding="utf-8") as file:
        fields = [column.split(":")[0] for column in file.readline().rstrip("\n").split(separator)]
        if uid_field not in fields:
            return
        column = fields.index(uid_field)
        ids = {values[column] for values in (line.rstrip("\n").split(separator) for line in file) if len(values) > column}
    user = str(user)
    if user not in ids:
        raise UserError(
            f"user [{user}] is not in {path} ({len(ids)} users); closest ids: {', '.join(closest_ids(user, ids))} "
            "(pass an external user id, as in the .inter file)"
        )


def best_fusion_weight(checkpoint):
    """The fusion weight the run tested its best adapter with (``fusion_weights.json``), or None."""
    from recbole_mllmr1.trainer import FUSION_WEIGHTS

    try:
        with open(os.path.join(checkpoint, FUSION_WEIGHTS), encoding="utf-8") as file:
            weights = json.load(file)
        return float(weights[weights["best"]])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _keys_of(config_files):
    import yaml

    keys = set()
    for path in config_files or []:
        with open(path, encoding="utf-8") as file:
            keys |= set(yaml.safe_load(file) or {})
    return keys


def load_trained_model(checkpoint, dataset=None, data_path=None, config_files=None, config_dict=None):
    """The model of a training run folder with its best adapter and that adapter's fusion weight,
    and its RecBole test dataset. The run's saved config is the base; the keys of ``config_files``
    and then ``config_dict`` (``recommend``'s ``--config_files`` and ``--key=value``) win over it."""
    from peft import PeftModel

    from recbole_mllmr1.config import Config
    from recbole_mllmr1.quick_start import prepare_run
    from recbole_mllmr1.training.adapters import activate_saved_grpo_adapter

    run_config = check_run_folder(checkpoint)
    adapter = os.path.join(checkpoint, BEST_ADAPTER)
    overridden = _keys_of(config_files) | set(config_dict or {})
    overrides = {key: value for key, value in run_config.items() if key not in ("model", "dataset") and key not in overridden}
    if data_path:
        overrides["data_path"] = data_path
    overrides.update(state="WARNING", eval_user_sample=None)
    overrides.update(config_dict or {})
    config = Config(model="MLLMRecR1", dataset=dataset or run_config["dataset"], config_file_list=config_files, config_dict=overrides)
    model, _, _, test_data = prepare_run(config)
    llm = PeftModel.from_pretrained(model.language_model, adapter)
    activate_saved_grpo_adapter(llm, adapter)  # a grpo_lora: fresh run's GRPO adapter, on top of SFT's
    model.use_language_model(llm)
    weight = best_fusion_weight(checkpoint)
    if weight is not None and model.sequential_model is not None:
        model.set_fusion_weight(weight)
    return model.eval(), test_data._dataset


def repeats_prompt(reply, prompt):
    """Whether every line of ``reply`` is already in ``prompt`` (whitespace ignored): an echo, not reasoning."""
    flat_prompt = " ".join(prompt.split())
    lines = [" ".join(line.split()) for line in reply.splitlines() if line.strip()]
    return bool(lines) and all(line in flat_prompt for line in lines)


def _user_interaction(model, test_dataset, user, evaluate):
    """The user's test row: as RecBole tests it (``evaluate``: history before the held-out item),
    or with the held-out item appended (what comes after everything the user did)."""
    import torch

    uid_field = test_dataset.uid_field
    try:
        user_id = test_dataset.token2id(uid_field, str(user))
    except ValueError:
        raise ValueError(f"user [{user}] is not in dataset [{test_dataset.dataset_name}]; pass an external user id.") from None
    row = int(np.flatnonzero(test_dataset.inter_feat[uid_field].numpy() == user_id)[0])
    interaction = test_dataset.inter_feat[row : row + 1]
    length = int(interaction[model.ITEM_SEQ_LEN][0])
    held_out = int(interaction[model.ITEM_ID][0])
    if not evaluate:
        full_history = interaction[model.ITEM_SEQ][0][:length].tolist() + [held_out]
        interaction[model.ITEM_SEQ][0, : min(length + 1, model.max_seq_length)] = torch.tensor(full_history[-model.max_seq_length :])
        interaction[model.ITEM_SEQ_LEN][0] = min(length + 1, model.max_seq_length)
    return user_id, interaction, held_out


def recommend(checkpoint, user, dataset=None, data_path=None, reasoning=True, evaluate=False, config_files=None, config_dict=None):
    """A dict with the adapter used, the user's history, the candidates, the model's reasoning (and
    whether it only repeats the prompt), its ranking and the user's held-out test item.

    The ranking is the model's own (``full_sort_predict``: the retriever's top ``rerank_topk``
    reranked, fused with the sequential model at the adapter's fusion weight); ``p`` is the LLM's
    probability among the candidates. Without ``evaluate`` the history ends with the held-out
    item and the ranking is what comes after it; with ``evaluate`` the history stops before it, as
    in RecBole's test, and ``evaluation`` says where the model ranks it (or the retriever's rank
    when it is not among the candidates).
    """
    model, test_dataset = load_trained_model(checkpoint, dataset, data_path, config_files, config_dict)
    user_id, interaction, held_out = _user_interaction(model, test_dataset, user, evaluate)
    history = model.history(interaction[model.ITEM_SEQ][0], interaction[model.ITEM_SEQ_LEN][0])
    retrieval = model.retrieval_scores(interaction)[0]
    candidates = model.retrieve(interaction)[0]
    model.set_reasoning(reasoning)
    messages = model.messages(history, candidates)
    thoughts = model.reasoning([messages])[0] if reasoning else ""
    with model.remembering_llm_scores():  # the model's ranking reuses these LLM scores
        ((log_probs, order),) = model.candidate_log_probs([(user_id, history, candidates)])
        final = model.full_sort_predict(interaction)[0]
    ranked = sorted(range(len(candidates)), key=lambda j: -float(final[candidates[j]]))
    entry = model.item_entry
    result = {
        "user": str(user),
        "adapter": adapter_description(checkpoint),
        "fusion_weight": model.fusion_weight if model.sequential_model is not None else None,
        "held_out": entry(held_out),
        "history": [entry(i) for i in history],
        "candidates": [entry(candidates[j]) for j in order],
        "reasoning": thoughts,
        "reasoning_repeats_prompt": repeats_prompt(thoughts, "\n".join(m["content"] for m in messages)),
        "ranking": [(*entry(candidates[j]), float(np.exp(log_probs[j]))) for j in ranked],
    }
    if evaluate:
        if held_out in candidates:
            result["evaluation"] = f"rank {ranked.index(candidates.index(held_out)) + 1} of {len(candidates)}"
        else:
            retriever_rank = int((retrieval > retrieval[held_out]).sum()) + 1
            result["evaluation"] = f"not retrieved (retriever rank {retriever_rank})"
    return result


def format_recommendation(result):
    held_out = result.get("held_out")
    evaluated = "evaluation" in result
    lines = [f"Adapter: {result['adapter']}"] if result.get("adapter") else []
    if result.get("fusion_weight") is not None:
        lines += [f"Fusion weight: {result['fusion_weight']:g} (the ranking mixes the LLM and the sequential model)"]
    lines += [f"User {result['user']}: recent history, oldest first" + (" (before the held-out test item)" if evaluated else "")]
    lines += [f"  [{token}] {text}" for token, text in result["history"]]
    if not evaluated and held_out and result["history"] and tuple(result["history"][-1]) == tuple(held_out):
        lines[-1] += "   <- held-out test item"
    lines += ["Candidates (as listed to the model):"]
    lines += [f"  [{token}] {text}" for token, text in result["candidates"]]
    reply = result["reasoning"].strip()
    if not reply:
        shown = "(the model answered directly)"
    elif result.get("reasoning_repeats_prompt"):
        shown = f"(the model's own text only repeats the prompt, it is not reasoning) {reply}"
    else:
        shown = reply
    shown = shown.replace("\n", "\n  ")  # a multi-line reply stays inside its section
    lines += ["Reasoning (the model's own generated text):", f"  {shown}", "Ranking (p: the LLM's probability among the candidates):"]
    marker = {tuple(held_out)} if evaluated and held_out else set()
    lines += [
        f"  {rank:2d}. [{token}] {text}  p={p:.3f}" + ("   <- held-out test item" if (token, text) in marker else "")
        for rank, (token, text, p) in enumerate(result["ranking"], 1)
    ]
    if evaluated:
        lines += [f"Held-out test item: [{held_out[0]}] {held_out[1]}: {result['evaluation']}"]
    elif held_out:
        lines += [
            "Held-out test item (the user's last item, which RecBole's split holds out for testing; it ends the "
            "history above, so the ranking is what comes after it):",
            f"  [{held_out[0]}] {held_out[1]}",
        ]
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="run folder written by run_recbole (under checkpoint_dir)")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the run's)")
    parser.add_argument("--data-path", default=None, help="folder holding the dataset (default: the run's)")
    parser.add_argument("--user", required=True, help="external user id, as in the .inter file")
    parser.add_argument("--no-reasoning", action="store_true", help="skip generating the model's reasoning")
    parser.add_argument(
        "--evaluate", action="store_true",
        help="rank from the history before the user's held-out test item and say where the model puts that item",
    )


def run(args):
    from recbole_mllmr1.cli import with_flags

    # Both checks read small files only: a wrong folder or user fails before the dataset and the LLM load.
    run_config = check_run_folder(args.checkpoint)
    config_dict = with_flags(args.config_dict, {"data_path": args.data_path, "dataset": args.dataset}, "recommend")
    dataset, data_path = config_dict.pop("dataset", None), config_dict.pop("data_path", None)
    check_user(run_config, args.user, dataset, data_path)
    config_files = args.config_files.split() if args.config_files else None
    result = recommend(
        args.checkpoint, args.user, dataset, data_path, reasoning=not args.no_reasoning, evaluate=args.evaluate,
        config_files=config_files, config_dict=config_dict,
    )
    print(format_recommendation(result))
    return 0
