"""``recbole-mllmr1 recommend``: what a trained MLLMRecR1 recommends to one user, and why.

Prints the user's recent history (with image text), the candidates (the retriever's top
``rerank_topk`` items the user has not seen), the model's own greedy reasoning and its
ranking with probabilities.
"""
import json
import os

import numpy as np


def load_trained_model(checkpoint, dataset=None, data_path=None):
    """The model of a training run folder with its best adapter, and its RecBole datasets."""
    from peft import PeftModel

    from recbole_mllmr1.config import Config
    from recbole_mllmr1.quick_start import prepare_run
    from recbole_mllmr1.trainer import RUN_CONFIG

    config_file = os.path.join(checkpoint, RUN_CONFIG)
    adapter = os.path.join(checkpoint, "best_adapter")
    if not (os.path.isfile(config_file) and os.path.isdir(adapter)):
        raise FileNotFoundError(
            f"{checkpoint} is not a finished MLLMRecR1 run folder (it needs {RUN_CONFIG} and best_adapter/): "
            "pass the folder that run_recbole printed, under checkpoint_dir."
        )
    with open(config_file) as file:
        run_config = json.load(file)
    overrides = {key: value for key, value in run_config.items() if key not in ("model", "dataset")}
    if data_path:
        overrides["data_path"] = data_path
    overrides.update(state="WARNING", eval_user_sample=None)
    config = Config(model="MLLMRecR1", dataset=dataset or run_config["dataset"], config_dict=overrides)
    model, _, _, test_data = prepare_run(config)
    model.use_language_model(PeftModel.from_pretrained(model.language_model, adapter))
    return model.eval(), test_data._dataset


def recommend(checkpoint, user, dataset=None, data_path=None, reasoning=True):
    """A dict with the user's history, the candidates, the model's reasoning and its ranking."""
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
    full_history = interaction[model.ITEM_SEQ][0][:length].tolist() + [int(interaction[model.ITEM_ID][0])]
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
        "history": [entry(i) for i in history],
        "candidates": [entry(candidates[j]) for j in order],
        "reasoning": thoughts,
        "ranking": [(*entry(candidates[j]), float(np.exp(log_probs[j]))) for j in ranked],
    }


def format_recommendation(result):
    lines = [f"User {result['user']}: recent history, oldest first"]
    lines += [f"  [{token}] {text}" for token, text in result["history"]]
    lines += ["Candidates (as listed to the model):"]
    lines += [f"  [{token}] {text}" for token, text in result["candidates"]]
    lines += ["Reasoning:", f"  {result['reasoning'].strip() or '(the model answered directly)'}", "Ranking:"]
    lines += [f"  {rank:2d}. [{token}] {text}  p={p:.3f}" for rank, (token, text, p) in enumerate(result["ranking"], 1)]
    return "\n".join(lines)


def add_arguments(parser):
    parser.add_argument("--checkpoint", required=True, help="run folder written by run_recbole (under checkpoint_dir)")
    parser.add_argument("--dataset", default=None, help="dataset name (default: the run's)")
    parser.add_argument("--data-path", default=None, help="folder holding the dataset (default: the run's)")
    parser.add_argument("--user", required=True, help="external user id, as in the .inter file")
    parser.add_argument("--no-reasoning", action="store_true", help="skip generating the model's reasoning")


def run(args):
    result = recommend(args.checkpoint, args.user, args.dataset, args.data_path, reasoning=not args.no_reasoning)
    print(format_recommendation(result))
    return 0
