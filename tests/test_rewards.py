"""GRPO rewards on crafted completions, as TRL passes them."""
import pytest

from recbole_mllmr1.training.rewards import accuracy_reward, format_reward, get_rewards


def conversation(text):
    return [{"role": "assistant", "content": text}]


CASES = [
    # completion, target, n candidates, format, accuracy
    ("<answer>C</answer>", "C", 10, 1.0, 1.0),
    ("<think>likes sci-fi</think>\n<answer>C</answer>", "C", 10, 1.0, 1.0),
    ("<answer> c </answer>", "C", 10, 1.0, 1.0),
    ("<answer>B</answer>", "C", 10, 1.0, 0.0),
    ("<answer>K</answer>", "C", 10, 0.0, 0.0),  # not a listed candidate
    ("<answer>B</answer><answer>C</answer>", "C", 10, 0.0, 0.0),  # two answers name no single item
    ("C", "C", 10, 0.0, 0.0),  # no answer tags: a miss
    ("", "A", 10, 0.0, 0.0),
    ("<answer>Toy Story</answer>", "A", 10, 0.0, 0.0),
]


@pytest.mark.parametrize("text,target,n,expected_format,expected_accuracy", CASES)
def test_rewards_on_crafted_completions(text, target, n, expected_format, expected_accuracy):
    assert format_reward([conversation(text)], num_candidates=[n]) == [expected_format]
    assert accuracy_reward([conversation(text)], target_label=[target], num_candidates=[n], prompts=["ignored"]) == [expected_accuracy]


def test_rewards_accept_plain_text_completions_too():
    assert accuracy_reward(["<answer>A</answer>"], target_label=["A"], num_candidates=[4]) == [1.0]


def test_reward_registry_rejects_unknown_names():
    assert get_rewards(["format", "accuracy"]) == [format_reward, accuracy_reward]
    with pytest.raises(ValueError, match=r"\['length'\] are not rewards"):
        get_rewards(["length"])
