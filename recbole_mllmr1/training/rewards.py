"""GRPO rewards over completions of the recommendation prompt.

TRL calls a reward as ``reward(completions, **columns)``: conversational completions arrive
as ``[[{"role": "assistant", "content": ...}], ...]`` and every dataset column (here
``candidate_titles`` and ``target_title``) as a keyword argument.
"""
from recbole_mllmr1.prompts import parse_answer, same_title


def _text(completion):
    return completion[0]["content"] if isinstance(completion, list) else completion


def format_reward(completions, candidate_titles, **kwargs):
    """1.0 when the completion names exactly one listed candidate as ``<answer>Title</answer>``, else 0.0.

    >>> format_reward([[{"role": "assistant", "content": "<answer>Heat</answer>"}]], candidate_titles=[["Heat", "Fargo"]])
    [1.0]
    """
    return [float(parse_answer(_text(c), titles) is not None) for c, titles in zip(completions, candidate_titles)]


def accuracy_reward(completions, target_title, candidate_titles, **kwargs):
    """1.0 when the named candidate is the true next item, else 0.0 (a malformed answer is a miss).

    >>> accuracy_reward([[{"role": "assistant", "content": "<answer>fargo</answer>"}]], target_title=["Fargo"], candidate_titles=[["Heat", "Fargo"]])
    [1.0]
    """
    rewards = []
    for completion, target, titles in zip(completions, target_title, candidate_titles):
        named = parse_answer(_text(completion), titles)
        rewards.append(float(named is not None and same_title(titles[named], target)))
    return rewards


def paper_reward(completions, target_title, candidate_titles, **kwargs):
    """The official MLLMRec-R1 reward (``train/grpo.py``): +1 for the target, +0.3 for a well-formed
    answer naming another listed candidate, -1 for anything else.

    >>> paper_reward([[{"role": "assistant", "content": c}] for c in ("<answer>Fargo</answer>", "<answer>Heat</answer>", "Fargo")],
    ...              target_title=["Fargo"] * 3, candidate_titles=[["Heat", "Fargo"]] * 3)
    [1.0, 0.3, -1.0]
    """
    rewards = []
    for completion, target, titles in zip(completions, target_title, candidate_titles):
        named = parse_answer(_text(completion), titles)
        rewards.append(-1.0 if named is None else 1.0 if same_title(titles[named], target) else 0.3)
    return rewards


REWARDS = {"format": format_reward, "accuracy": accuracy_reward, "paper": paper_reward}


class HitSpread:
    """A zero-weight GRPO "reward" that counts the steps where GRPO can learn which item to name.

    GRPO's advantage is zero within a group whose rollouts all get the same reward: a step
    teaches the hit only when some prompt's group holds both a hit and a miss. Each call (one
    step's rollouts, in groups of ``num_generations`` consecutive completions) records whether
    any group differs in the hit reward; TRL logs its return value, the hit rate, as
    ``rewards/hit/mean``.
    """

    __name__ = "hit"

    def __init__(self, num_generations):
        self.num_generations = num_generations
        self.steps = 0
        self.steps_with_spread = 0

    def __call__(self, completions, target_title, candidate_titles, **kwargs):
        hits = accuracy_reward(completions, target_title, candidate_titles)
        groups = [hits[i : i + self.num_generations] for i in range(0, len(hits), self.num_generations)]
        self.steps += 1
        self.steps_with_spread += any(len(set(group)) > 1 for group in groups)
        return hits

    @property
    def share(self):
        """The share of steps with at least one group whose rollouts differ in the hit reward."""
        return self.steps_with_spread / self.steps if self.steps else 0.0


def get_rewards(names):
    """Reward functions by short name, in order; unknown names get an error listing the valid ones."""
    unknown = [name for name in names if name not in REWARDS]
    if unknown:
        raise ValueError(f"grpo_rewards {unknown} are not rewards; choose from {sorted(REWARDS)}.")
    return [REWARDS[name] for name in names]
