"""The packed, many-prompts-per-forward title scorer against the one-prompt-at-a-time reference.

A tiny random-weight Llama with SmolLM2's tokenizer (``tiny_llm_dir``): the equality is plumbing
(masks, positions, padding, the LM head only at read positions), so random weights test it as well.
"""
import pytest
import torch

from recbole_mllmr1.llm import load_causal_lm, load_tokenizer
from recbole_mllmr1.prompts import SYSTEM_PROMPT, build_messages
from recbole_mllmr1.scoring import PackedPrompt, TitleScorer, _common_prefix_length, render_prompt

TITLES = [
    "Heat (1995)",
    "'Til There Was You (1997)",  # the quote merges with the '>' that ends the prompt
    '"Weird Al" Yankovic Live! (1999)',
    "Star Wars: Episode IV - A New Hope (1977)",
    "Heat (1995)",  # a duplicate scores exactly as its twin
    "M (1931)",
    "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)",
    "Up",
    "(500) Days of Summer (2009)",
    ".com for Murder (2002)",
]


def _prompts(tokenizer):
    """Prompts of different lengths and candidate counts; one opens with reasoning before ``<answer>``."""
    lists = [
        (TITLES[:3], TITLES[3:6], ""),
        (TITLES[5:], TITLES, ""),
        (TITLES[:1], [TITLES[1], TITLES[0], TITLES[4], TITLES[7]], ""),
        (TITLES * 3, TITLES[6:], "<think>The user watches old films.</think>\n"),
        ([], TITLES[2:4], ""),
    ]
    prompts, titles = [], []
    for history, candidates, reasoning in lists:
        entries = [(str(k), title) for k, title in enumerate(candidates)]
        messages = build_messages([(str(100 + k), title) for k, title in enumerate(history)], entries)
        prompts.append(render_prompt(tokenizer, messages, reasoning))
        titles.append(list(candidates))
    return prompts, titles


@pytest.fixture(scope="module")
def scorer(tiny_llm_dir):
    return TitleScorer(load_causal_lm(tiny_llm_dir, "cpu").eval(), load_tokenizer(tiny_llm_dir))


@pytest.mark.parametrize("tokens_per_forward", [1, 900, 100_000], ids=["one-prompt-per-forward", "some-per-forward", "all-in-one"])
def test_packed_scores_match_the_one_prompt_reference(scorer, tokens_per_forward):
    prompts, titles = _prompts(scorer.tokenizer)
    lengths = {len(scorer.tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lengths) == len(prompts), "the prompts must differ in length to exercise the padding"
    merged = [min(scorer.answer_ids(p, t)[2]) == 0 and max(scorer.answer_ids(p, t)[2]) > 0 for p, t in zip(prompts, titles)]
    assert any(merged), "some prompt must hold a title whose first token merges with the prompt's end"

    scorer.tokens_per_forward = tokens_per_forward
    packed = scorer.log_probs(prompts, titles)
    with torch.no_grad():
        reference = [scorer.candidate_log_probs(p, t) for p, t in zip(prompts, titles)]
    for got, want, candidates in zip(packed, reference, titles):
        assert got.shape == (len(candidates),)
        assert (got - want).abs().max().item() < 1e-4
        assert torch.equal(torch.argsort(got, descending=True, stable=True), torch.argsort(want, descending=True, stable=True))
        twins = [k for k, title in enumerate(candidates) if title == "Heat (1995)"]
        assert len({got[k].item() for k in twins}) <= 1


def test_the_opening_all_prompts_share_runs_once(scorer):
    """The system prompt and the start of the user turn go through the model once per call, not once per prompt."""
    prompts, titles = _prompts(scorer.tokenizer)
    prefixes = [scorer.answer_ids(p, list(dict.fromkeys(t)))[0] for p, t in zip(prompts, titles)]
    system_prompt = scorer.tokenizer(SYSTEM_PROMPT)["input_ids"]
    opening = _common_prefix_length(prefixes)
    assert opening > len(system_prompt), "the prompts must share the system prompt"
    widths = []
    handle = scorer.model.register_forward_pre_hook(lambda _module, _args, kwargs: widths.append(tuple(kwargs["input_ids"].shape)), with_kwargs=True)
    try:
        scorer.tokens_per_forward = 100_000
        scorer.log_probs(prompts, titles)
    finally:
        handle.remove()
    packed_tokens = [len(PackedPrompt(*scorer.answer_ids(p, list(dict.fromkeys(t))))) for p, t in zip(prompts, titles)]
    assert widths == [(1, opening), (len(prompts), max(packed_tokens) - opening)]


def test_a_single_prompt_runs_all_but_its_last_prefix_token_once(scorer):
    prompts, titles = _prompts(scorer.tokenizer)
    (got,) = scorer.log_probs(prompts[:1], titles[:1])
    with torch.no_grad():
        want = scorer.candidate_log_probs(prompts[0], titles[0])
    assert (got - want).abs().max().item() < 1e-4


def test_a_call_without_prompts_scores_nothing(scorer):
    assert scorer.log_probs([], []) == []
