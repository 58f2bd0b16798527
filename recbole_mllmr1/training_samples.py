"""Training samples for SFT, GRPO and CoT, drawn from RecBole's training split only.

A sample is one training interaction: the user's history before it, and a candidate list
(the target plus uniformly sampled negatives the user has not interacted with), listed in
the same seeded order evaluation uses. Nothing from the validation or test interactions
enters: RecBole's leave-one-out training split holds neither.
"""
from dataclasses import dataclass

import numpy as np

from recbole_mllmr1.listing import listing_order, sample_negatives
from recbole_mllmr1.prompts import THINK_CLOSE, THINK_OPEN, format_answer

# Introduces a rationale shown in a training prompt (cot_placement: input), as the official code words it.
REFERENCE_HEADER = "A possible reasoning process to help predict the next item, for reference only:"


@dataclass(frozen=True)
class TrainingSample:
    user_id: int
    history: tuple  # internal item ids, oldest first, at most max_history
    candidates: tuple  # internal item ids in listing order
    target: int  # internal item id of the true next item

    @property
    def target_index(self):
        return self.candidates.index(self.target)


def last_row_per_user(users):
    """Sorted row numbers of each user's last row: RecBole lists a user's training interactions in
    the split's order (time order with ``eval_args.order: TO``), so that row is the last training one."""
    reversed_first = np.unique(users[::-1], return_index=True)[1]
    return np.sort(len(users) - 1 - reversed_first)


def draw_training_samples(model, train_dataset, num_samples, num_candidates, seed, one_per_user=False):
    """``num_samples`` seeded samples (all when ``num_samples`` is None) of the training interactions,
    or with ``one_per_user`` of each user's last training interaction (``train_sample_per_user``)."""
    features = train_dataset.inter_feat
    users = features[model.USER_ID].numpy()
    targets = features[model.ITEM_ID].numpy()
    item_seq = features[model.ITEM_SEQ].numpy()
    item_seq_len = features[model.ITEM_SEQ_LEN].numpy()
    rng = np.random.default_rng(seed)
    rows = last_row_per_user(users) if one_per_user else np.arange(len(users))
    if num_samples is not None and num_samples < len(rows):
        rows = np.sort(rng.choice(rows, size=num_samples, replace=False))
    if num_candidates - 1 > model.n_items - 2:
        raise ValueError(f"num_candidates [{num_candidates}] exceeds the {model.n_items - 1} items of the dataset.")
    samples = []
    for row in rows:
        full_history = item_seq[row, : item_seq_len[row]]
        seen = set(full_history.tolist()) | {int(targets[row])}
        negatives = sample_negatives(lambda: int(rng.integers(1, model.n_items)), seen, num_candidates - 1)
        candidates = [int(targets[row])] + negatives
        order = listing_order(seed, int(users[row]), candidates)
        samples.append(
            TrainingSample(
                user_id=int(users[row]),
                history=tuple(int(i) for i in full_history[-model.max_history :]),
                candidates=tuple(candidates[j] for j in order),
                target=int(targets[row]),
            )
        )
    return samples


def sample_messages(model, sample):
    """The chat messages (system + user) of a sample, exactly as evaluation builds them."""
    return model.messages(sample.history, sample.candidates)


def reference_messages(model, sample, rationale):
    """The sample's chat messages with ``rationale`` shown after the question (``cot_placement: input``).

    Training samples only: evaluation builds its prompts from the history and candidates alone.
    """
    system, user = sample_messages(model, sample)
    return [system, {**user, "content": f"{user['content']}\n\n{REFERENCE_HEADER}\n{THINK_OPEN}\n{rationale.strip()}\n{THINK_CLOSE}"}]


def reference_record(model, sample, rationale):
    """An SFT record whose prompt shows ``rationale`` as a reference and whose completion is the answer alone."""
    return {
        "prompt": reference_messages(model, sample, rationale),
        "completion": [{"role": "assistant", "content": format_answer(model.item_title(sample.target))}],
    }


def answer_record(model, sample, rationale=None):
    """A TRL conversational prompt-completion record for SFT; ``rationale`` goes in the completion, before the answer."""
    return {
        "prompt": sample_messages(model, sample),
        "completion": [{"role": "assistant", "content": format_answer(model.item_title(sample.target), rationale)}],
    }
