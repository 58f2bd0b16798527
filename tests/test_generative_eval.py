"""Generative evaluation (``eval_scoring: generative``): one greedy reply per user ranks the candidates.

The reply parser is pure; the score construction is tested through ``predict`` and
``full_sort_predict`` with scripted replies in place of the LLM's generation, and end to end
with the tiny random-weight LLM (plumbing, not quality).
"""
import logging

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_mllmr1.listing import listing_order
from recbole_mllmr1.model.sequential_recommender.mllmrecr1 import strict_rank_scores
from recbole_mllmr1.prompts import CANDIDATES_HEADER, parse_ranked_list
from recbole_mllmr1.settings import SettingsError, check_settings
from recbole_mllmr1.trainer import ZERO_SHOT, MLLMRecR1Trainer
from tests.conftest import TINY_CONFIG
from tests.test_model import _eval_rows, build
from tests.test_settings import mllmrecr1_config

IDS = ["i1", "i2", "i3", "i4"]
TITLES = ["Red Night 1", "Blue  Star 2", "Iron Garden 3", "Red Night 1"]


# ---- the parser -------------------------------------------------------------------------------
def test_titles_are_read_in_the_replys_order_ignoring_case_and_spaces():
    reply = "<think>I like stars.</think>\n<answer>\nblue star 2\nIRON  garden 3\n</answer>"
    assert parse_ranked_list(reply, IDS, TITLES, 4) == [1, 2]


def test_listed_ids_ranks_and_bullets_name_candidates():
    reply = "<answer>1. [i3] Iron Garden 3 (Drama)\n2) i2\n- [i4] whatever the line says\n</answer>"
    assert parse_ranked_list(reply, IDS, TITLES, 4) == [2, 1, 3]


def test_an_unknown_id_in_brackets_falls_back_to_the_title_after_it():
    assert parse_ranked_list("[i99] Iron Garden 3", IDS, TITLES, 4) == [2]


def test_repeats_and_unknown_names_are_skipped_and_a_shared_title_names_the_next_candidate():
    reply = "Blue Star 2\nBlue Star 2\nThe Matrix\nRed Night 1\nRed Night 1\nRed Night 1"
    assert parse_ranked_list(reply, IDS, TITLES, 4) == [1, 0, 3]


def test_at_most_count_candidates_are_kept():
    assert parse_ranked_list("i4\ni3\ni2\ni1", IDS, TITLES, 2) == [3, 2]


def test_a_reply_without_an_answer_tag_is_read_whole_and_an_unclosed_answer_to_its_end():
    assert parse_ranked_list("Iron Garden 3\nBlue Star 2", IDS, TITLES, 4) == [2, 1]
    assert parse_ranked_list("Iron Garden 3\n<answer>Blue Star 2", IDS, TITLES, 4) == [1]


@pytest.mark.parametrize("reply", ["", "   \n", "<answer></answer>", "I cannot decide.", "<answer>Red Night</answer>", "[[[\n)))"])
def test_an_empty_or_garbled_reply_ranks_nothing(reply):
    assert parse_ranked_list(reply, IDS, TITLES, 4) == []


# ---- scores from scripted replies -------------------------------------------------------------
def candidate_lines(prompt):
    """The ranking prompt's candidate lines, in the listed order."""
    return prompt.split(CANDIDATES_HEADER)[1].split("\n\n")[0].splitlines()


def scripted(reply_for_lines):
    """A stand-in for the model's greedy generation: the reply is ``reply_for_lines(candidate lines)``."""

    def replies(texts, max_new_tokens, stop_string):
        return [reply_for_lines(candidate_lines(text)) for text in texts]

    return replies


# Replies of K = max(topk) = 3 candidates, and each evaluation's 30 users (x 10 candidates) in one
# batch and one generation: the random-weight LLM never stops early, so each reply takes its whole budget.
GENERATIVE = {"eval_scoring": "generative", "topk": [1, 3], "valid_metric": "NDCG@3", "eval_batch_size": 300, "llm_batch_size": 32}


@pytest.fixture(scope="module")
def generative(tiny_data_path, tiny_llm_dir):
    return build("tiny", {**TINY_CONFIG, "data_path": tiny_data_path, "llm_path": tiny_llm_dir, **GENERATIVE})


@pytest.fixture(scope="module")
def likelihood(tiny_data_path, tiny_llm_dir):
    return build("tiny", {**TINY_CONFIG, "data_path": tiny_data_path, "llm_path": tiny_llm_dir})


CANDIDATES = [5, 9, 13, 2, 30, 21, 7, 11, 17, 25]


def test_ranked_candidates_come_first_in_the_replys_order_then_the_rest_in_listing_order(generative, monkeypatch):
    _, model, _, _, test_data = generative
    dataset = test_data._dataset
    reply = f"<answer>\n{model.item_title(13)}\n[{model.item_token(2)}]\nNot A Candidate\n{model.item_title(13)}\n</answer>"
    monkeypatch.setattr(model, "_greedy_replies", scripted(lambda lines: reply))
    scores = model.predict(_eval_rows(model, dataset, 0, CANDIDATES))
    ranking = [CANDIDATES[j] for j in np.argsort(-scores.numpy(), kind="stable")]
    user = int(dataset.inter_feat[model.USER_ID][0])
    listed = [CANDIDATES[j] for j in listing_order(model.listing_seed, user, CANDIDATES)]
    assert ranking == [13, 2] + [item for item in listed if item not in (13, 2)]
    assert len(set(scores.tolist())) == len(CANDIDATES)
    assert model.pop_generation_tally() == {"replies": 1, "listed none": 0, "listed fewer than asked": 1}
    assert model.pop_generation_tally() == {}


def _positive_ranks(model, dataset, rng):
    """Each test user's positive (row 0 of its rows, as RecBole puts it) and 9 random negatives: its rank by ``predict``."""
    rows = [(row, [int(i) for i in rng.choice(np.arange(1, model.n_items), 10, replace=False)]) for row in range(len(dataset.inter_feat))]
    parts = [_eval_rows(model, dataset, row, candidates) for row, candidates in rows]
    interaction = Interaction({field: torch.cat([part[field] for part in parts]) for field in parts[0].interaction})
    scores = model.predict(interaction).view(len(rows), 10)
    return (scores > scores[:, :1]).sum(dim=1) + 1


@pytest.mark.parametrize(
    "reply_for_lines",
    [lambda lines: "", lambda lines: "I have no idea.", lambda lines: f"<answer>\n{lines[0]}\n</answer>"],
    ids=["empty", "garbled", "first-listed"],
)
def test_a_reply_that_ranks_nothing_or_the_first_listed_lands_at_the_random_floor(generative, monkeypatch, reply_for_lines):
    _, model, _, _, test_data = generative
    monkeypatch.setattr(model, "_greedy_replies", scripted(reply_for_lines))
    rng = np.random.default_rng(0)
    ranks = []
    for seed in range(20):
        monkeypatch.setattr(model, "listing_seed", seed)
        ranks.append(_positive_ranks(model, test_data._dataset, rng))
    ranks = torch.cat(ranks).double()
    # 600 (user, seed) pairs, the positive uniform over 10 ranks: mean 5.5 (std ~0.12), HR@1 ~ 0.1 (std ~0.012).
    assert 5.0 < ranks.mean() < 6.0
    assert 0.06 < (ranks == 1).double().mean() < 0.14


def test_full_sort_reorders_the_retrievers_top_k_by_the_reply(generative, monkeypatch):
    _, model, _, _, test_data = generative
    monkeypatch.setattr(model, "_greedy_replies", scripted(lambda lines: f"<answer>\n{lines[-1]}\n</answer>"))
    interaction = test_data._dataset.inter_feat[:2]
    scores = model.full_sort_predict(interaction)
    wrong_target = Interaction({k: v.clone() for k, v in interaction.interaction.items()})
    wrong_target[model.ITEM_ID] = (wrong_target[model.ITEM_ID] % (model.n_items - 1)) + 1
    assert torch.equal(scores, model.full_sort_predict(wrong_target))
    for row, top in enumerate(model.retrieve(interaction)):
        user = int(interaction[model.USER_ID][row])
        listed = [top[j] for j in listing_order(model.listing_seed, user, top)]
        reranked = torch.argsort(scores[row], descending=True, stable=True)[: model.rerank_topk].tolist()
        assert reranked == [listed[-1]] + listed[:-1]


def test_a_reply_has_room_for_k_listed_lines_and_for_reasoning_first_when_the_model_reasons(generative, monkeypatch):
    _, model, _, _, test_data = generative
    budgets = []

    def recording(texts, max_new_tokens, stop_string):
        budgets.append(max_new_tokens[0])
        assert stop_string == "</answer>"
        return [""] * len(texts)

    monkeypatch.setattr(model, "_greedy_replies", recording)
    rows = _eval_rows(model, test_data._dataset, 0, CANDIDATES)
    model.predict(rows)
    model.set_reasoning(True)
    try:
        model.predict(rows)
    finally:
        model.set_reasoning(False)
    lines = [model.tokenizer(f"[{model.item_token(i)}] {model.item_title(i)}", add_special_tokens=False)["input_ids"] for i in CANDIDATES]
    assert budgets[0] > sum(sorted(map(len, lines))[-model.generative_topk :])
    assert budgets[1] == budgets[0] + model.max_reasoning_tokens
    model.pop_generation_tally()


def test_generative_scores_do_not_fuse(generative):
    _, model, _, _, _ = generative
    with pytest.raises(ValueError, match="no log-probabilities to mix"):
        model.set_fusion_weight(0.5)
    model.set_fusion_weight(1.0)  # the sequential model alone stays comparable
    model.set_fusion_weight(0.0)


# ---- end to end -------------------------------------------------------------------------------
def test_the_tiny_llm_evaluates_generatively_through_recbole(generative, caplog):
    config, model, _, valid_data, test_data = generative
    caplog.set_level(logging.INFO)
    trainer = MLLMRecR1Trainer(config, model)
    trainer.fit(None, valid_data)
    assert trainer.fusion_weights[ZERO_SHOT] == 0.0  # no fusion grid
    assert model.pop_generation_tally() == {}  # validation (adapter selection) scores by likelihood
    result = trainer.evaluate(test_data)
    assert {"hit@1", "hit@3", "ndcg@3", "mrr@3"} <= set(result)
    assert all(0.0 <= value <= 1.0 for value in result.values())
    assert any("generative ranking" in message and "replies" in message for message in caplog.messages)


def test_the_default_likelihood_scoring_is_unchanged(likelihood):
    config, model, _, _, test_data = likelihood
    assert config["eval_scoring"] == "likelihood" and not model.generative_eval
    dataset = test_data._dataset
    user = int(dataset.inter_feat[model.USER_ID][0])
    history = model.history(dataset.inter_feat[model.ITEM_SEQ][0], dataset.inter_feat[model.ITEM_SEQ_LEN][0])
    ((log_probs, order),) = model.candidate_log_probs([(user, history, CANDIDATES)])
    scores = model.predict(_eval_rows(model, dataset, 0, CANDIDATES))
    assert torch.equal(scores, torch.from_numpy(strict_rank_scores(log_probs, order)).float())
    assert model.pop_generation_tally() == {}


# ---- settings ---------------------------------------------------------------------------------
def test_an_explicit_fusion_weight_with_generative_scoring_stops_the_run(tiny_data_path):
    with pytest.raises(SettingsError) as error:
        check_settings(mllmrecr1_config(tiny_data_path, eval_scoring="generative", fusion_weight=0.3))
    assert "[fusion_weight] = 0.3" in str(error.value) and "eval_scoring: generative" in str(error.value)
    for weight in ("auto", 0, 0.0):
        check_settings(mllmrecr1_config(tiny_data_path, eval_scoring="generative", fusion_weight=weight))
    check_settings(mllmrecr1_config(tiny_data_path, fusion_weight=0.3))


def test_eval_scoring_names_what_is_allowed(tiny_data_path):
    with pytest.raises(SettingsError, match=r"\[eval_scoring\] = 'greedy' .* one of 'likelihood', 'generative'"):
        check_settings(mllmrecr1_config(tiny_data_path, eval_scoring="greedy"))
