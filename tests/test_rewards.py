"""GRPO rewards on crafted completions, as TRL passes them."""
import pytest

from recbole_mllmr1.training.rewards import accuracy_reward, format_reward, get_rewards


def conversation(text):
    return [{"role": "assistant", "content": text}]


TITLES = ["Heat", "Fargo", "Star Wars", "Star Wars: Episode V"]
CASES = [
    # completion, target, format, accuracy
    ("<answer>Fargo</answer>", "Fargo", 1.0, 1.0),
    ("<think>likes crime films</think>\n<answer>Fargo</answer>", "Fargo", 1.0, 1.0),
    ("<answer>  fargo </answer>", "Fargo", 1.0, 1.0),  # case and spaces are ignored
    ("<answer>Heat</answer>", "Fargo", 1.0, 0.0),
    ("<answer>Star Wars</answer>", "Star Wars: Episode V", 1.0, 0.0),  # a title's prefix is another title
    ("<answer>Toy Story</answer>", "Fargo", 0.0, 0.0),  # not a listed candidate
    ("<answer>Far</answer>", "Fargo", 0.0, 0.0),  # part of a title names nothing
    ("<answer>Heat</answer><answer>Fargo</answer>", "Fargo", 0.0, 0.0),  # two answers name no single item
    ("Fargo", "Fargo", 0.0, 0.0),  # no answer tags: a miss
    ("", "Heat", 0.0, 0.0),
    ("<answer>B</answer>", "Fargo", 0.0, 0.0),  # a letter is not a title
]


@pytest.mark.parametrize("text,target,expected_format,expected_accuracy", CASES)
def test_rewards_on_crafted_completions(text, target, expected_format, expected_accuracy):
    assert format_reward([conversation(text)], candidate_titles=[TITLES]) == [expected_format]
    assert accuracy_reward([conversation(text)], target_title=[target], candidate_titles=[TITLES], prompts=["ignored"]) == [expected_accuracy]


def test_rewards_accept_plain_text_completions_too():
    assert accuracy_reward(["<answer>Heat</answer>"], target_title=["Heat"], candidate_titles=[TITLES]) == [1.0]


def test_reward_registry_rejects_unknown_names():
    assert get_rewards(["format", "accuracy"]) == [format_reward, accuracy_reward]
    with pytest.raises(ValueError, match=r"\['length'\] are not rewards"):
        get_rewards(["length"])
