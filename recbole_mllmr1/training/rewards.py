"""GRPO rewards over completions of the recommendation prompt.

TRL calls a reward as ``reward(completions, **columns)``: conversational completions arrive
as ``[[{"role": "assistant", "content": ...}], ...]`` and every dataset column (here
``target_label`` and ``num_candidates``) as a keyword argument.
"""
from recbole_mllmr1.prompts import CANDIDATE_LABELS, parse_answer


def _text(completion):
    return completion[0]["content"] if isinstance(completion, list) else completion


def format_reward(completions, num_candidates, **kwargs):
    """1.0 when the completion names exactly one listed candidate as ``<answer>X</answer>``, else 0.0.

    >>> format_reward([[{"role": "assistant", "content": "<answer>B</answer>"}]], num_candidates=[10])
    [1.0]
    """
    return [float(parse_answer(_text(c), n) is not None) for c, n in zip(completions, num_candidates)]


def accuracy_reward(completions, target_label, num_candidates, **kwargs):
    """1.0 when the named candidate is the true next item, else 0.0 (a malformed answer is a miss).

    >>> accuracy_reward([[{"role": "assistant", "content": "<answer>C</answer>"}]], target_label=["C"], num_candidates=[10])
    [1.0]
    """
    return [
        float(parse_answer(_text(c), n) == CANDIDATE_LABELS.index(t))
        for c, t, n in zip(completions, target_label, num_candidates)
    ]


REWARDS = {"format": format_reward, "accuracy": accuracy_reward}


def get_rewards(names):
    """Reward functions by short name, in order; unknown names get an error listing the valid ones."""
    unknown = [name for name in names if name not in REWARDS]
    if unknown:
        raise ValueError(f"grpo_rewards {unknown} are not rewards; choose from {sorted(REWARDS)}.")
    return [REWARDS[name] for name in names]
