"""``recbole-mllmr1 recommend``: what a trained MLLMRecR1 recommends to one user, and why.

Prints which adapter it uses (the stage and step of the run's best one, or zero-shot), the
user's recent history (with image text; its last item is the user's held-out test item), the
candidates (the retriever's top ``rerank_topk`` items the user has not seen), the model's own
greedy reasoning, its ranking with probabilities, and the held-out item. The run folder and
the user id are checked before the dataset or the LLM loads.
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


def load_trained_model(checkpoint, dataset=None, data_path=None):
    """The model of a training run folder with its best adapter, and its RecBole datasets."""
    from peft import PeftModel

    from recbole_mllmr1.config import Config
    from recbole_mllmr1.quick_start import prepare_run

    run_config = check_run_folder(checkpoint)
    adapter = os.path.join(checkpoint, BEST_ADAPTER)
    overrides = {key: value for key, value in run_config.items() if key not in ("model", "dataset")}
    if data_path:
        overrides["data_path"] = data_path
    overrides.update(state="WARNING", eval_user_sample=None)
    config = Config(model="MLLMRecR1", dataset=dataset or run_config["dataset"], config_dict=overrides)
    model, _, _, test_data = prepare_run(config)
    model.use_language_model(PeftModel.from_pretrained(model.language_model, adapter))
    return model.eval(), test_data._dataset


def recommend(checkpoint, user, dataset=None, data_path=None, reasoning=True):
    """A dict with the adapter used, the user's history, the candidates, the model's reasoning, its
    ranking and the user's held-out test item (the last item of the history)."""
    import torch

    model, test_dataset = load_trained_model(checkpoint, dataset, data_path)
    uid_field = test_dataset.uid_field
    try:
        user_id = test_dataset.token2id(uid_field, str(user))
    except ValueError:
        raise ValueError(f"user [{user}] is not in dataset [{test_dataset.dataset_name}]; pass an external user id.") from None
    row = int(np.flatnonzero(test_dataset.inter_feat[uid_field].numpy() == user_id)[0])
    interaction = test_dataset.inter_feat[row : row + 1]
    # Everything the user did, the held-out test item included: recommend what comes after it.
    length = int(interaction[model.ITEM_SEQ_LEN][0])
    held_out = int(interaction[model.ITEM_ID][0])
    full_history = interaction[model.ITEM_SEQ][0][:length].tolist() + [held_out]
    interaction[model.ITEM_SEQ][0, : min(length + 1, model.max_seq_length)] = torch.tensor(full_history[-model.max_seq_length :])
    interaction[model.ITEM_SEQ_LEN][0] = min(length + 1, model.max_seq_length)
    history = full_history[-model.max_history :]

    candidates = model.retrieve(interaction)[0]
    model.set_reasoning(reasoning)
    messages = model.messages(history, candidates)
    thoughts = model.reasoning([messages])[0] if reasoning else ""
    ((log_probs, order),) = model.candidate_log_probs([(user_id, history, candidates)])
    ranked = sorted(range(len(candidates)), key=lambda j: -log_probs[j])
    entry = model.item_entry
    return {
        "user": str(user),
        "adapter": adapter_description(checkpoint),
        "held_out": entry(held_out),
        "history": [entry(i) for i in history],
        "candidates": [entry(candidates[j]) for j in order],
        "reasoning": thoughts,
        "ranking": [(*entry(candidates[j]), float(np.exp(log_probs[j]))) for j in ranked],
    }


def format_recommendation(result):
    held_out = result.get("held_out")
    lines = [f"Adapter: {result['adapter']}"] if result.get("adapter") else []
    lines += [f"User {result['user']}: recent history, oldest first"]
    lines += [f"  [{token}] {text}" for token, text in result["history"]]
    if held_out and result["history"] and tuple(result["history"][-1]) == tuple(held_out):
        lines[-1] += "   <- held-out test item"
    lines += ["Candidates (as listed to the model):"]
    lines += [f"  [{token}] {text}" for token, text in result["candidates"]]
    lines += ["Reasoning:", f"  {result['reasoning'].strip() or '(the model answered directly)'}", "Ranking:"]
    lines += [f"  {rank:2d}. [{token}] {text}  p={p:.3f}" for rank, (token, text, p) in enumerate(result["ranking"], 1)]
    if held_out:
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


def run(args):
    # Both checks read small files only: a wrong folder or user fails before the dataset and the LLM load.
    run_config = check_run_folder(args.checkpoint)
    check_user(run_config, args.user, args.dataset, args.data_path)
    result = recommend(args.checkpoint, args.user, args.dataset, args.data_path, reasoning=not args.no_reasoning)
    print(format_recommendation(result))
    return 0
