"""MLLMRecR1's scoring contract with RecBole, on tiny datasets and a tiny random-weight LLM (plumbing, not quality)."""
import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_mllmr1.config import Config
from recbole_mllmr1.listing import listing_order
from recbole_mllmr1.model.sequential_recommender.mllmrecr1 import strict_rank_scores
from recbole_mllmr1.quick_start import prepare_run
from recbole_mllmr1.scoring import TitleScorer
from recbole_mllmr1.sequential_model import TEXT_ONLY
from recbole_mllmr1.trainer import MLLMRecR1Trainer
from tests.conftest import TINY_CONFIG, write_tiny_dataset


def build(dataset_name, config_dict):
    config = Config(model="MLLMRecR1", dataset=dataset_name, config_dict={"state": "WARNING", "show_progress": False, **config_dict})
    return (config, *prepare_run(config))


@pytest.fixture(scope="module")
def tiny(tiny_data_path, tiny_llm_dir):
    return build("tiny", {**TINY_CONFIG, "data_path": tiny_data_path, "llm_path": tiny_llm_dir})


class FirstListedScorer:
    """Always prefers the first listed candidate: a pure position bias."""

    def log_probs(self, prompts, candidate_titles):
        return [torch.log_softmax(torch.linspace(0, -3, len(titles)), dim=0) for titles in candidate_titles]


class ConstantScorer:
    """Gives every candidate the same score, like an answer that names no candidate."""

    def log_probs(self, prompts, candidate_titles):
        return [torch.full((len(titles),), -float(np.log(len(titles)))) for titles in candidate_titles]


@pytest.fixture(scope="module")
def ml100k_uni9(tiny_llm_dir):
    # Fusion off (text only): the LLM's own scores must land at the random floor.
    return build("ml-100k", {"stages": [], "eval_args": {"mode": "uni9"}, "eval_batch_size": 2000, "llm_path": tiny_llm_dir, **TEXT_ONLY})


@pytest.mark.parametrize("scorer", [FirstListedScorer(), ConstantScorer()], ids=["first-listed", "all-tied"])
def test_position_bias_and_ties_land_at_the_random_floor(ml100k_uni9, scorer, monkeypatch):
    config, model, _, _, test_data = ml100k_uni9
    monkeypatch.setattr(model, "title_log_probs", scorer.log_probs)
    result = MLLMRecR1Trainer(config, model).evaluate(test_data)
    # 943 users, 1 positive among 10 candidates: HR@1 ~ 0.1 (std ~0.01), never ~1.
    assert 0.065 < result["hit@1"] < 0.135
    assert 0.43 < result["hit@5"] < 0.57


def test_listing_order_ignores_input_order_and_positive_position():
    items = [17, 4, 99, 23, 8, 61, 2, 45, 70, 33]
    listed = [items[j] for j in listing_order(7, 3, items)]
    shuffled = items[::-1]
    assert [shuffled[j] for j in listing_order(7, 3, shuffled)] == listed
    assert [items[j] for j in listing_order(8, 3, items)] != listed  # the seed matters
    assert sorted(listed) == sorted(items)


def test_strict_rank_scores_break_ties_by_listing_order_not_row_order():
    log_probs = np.zeros(4)
    order = np.array([2, 0, 3, 1])  # row 2 is listed first
    scores = strict_rank_scores(log_probs, order)
    assert np.argmax(scores) == 2 and len(set(scores)) == 4
    assert list(np.argsort(-strict_rank_scores(np.array([-3.0, -1.0, -2.0, -0.5]), order))) == [3, 1, 2, 0]


def _eval_rows(model, dataset, user_row, candidates):
    """RecBole-style rows: one user's sequence repeated once per candidate."""
    n = len(candidates)
    return Interaction(
        {
            model.USER_ID: dataset.inter_feat[model.USER_ID][user_row].repeat(n),
            model.ITEM_SEQ: dataset.inter_feat[model.ITEM_SEQ][user_row].repeat(n, 1),
            model.ITEM_SEQ_LEN: dataset.inter_feat[model.ITEM_SEQ_LEN][user_row].repeat(n),
            model.ITEM_ID: torch.tensor(candidates),
            "label": torch.tensor([1.0] + [0.0] * (n - 1)),
        }
    )


def test_predict_scores_each_candidate_regardless_of_its_row(tiny):
    _, model, _, _, test_data = tiny
    dataset = test_data._dataset
    candidates = [5, 9, 13, 2, 30, 21, 7, 11, 17, 25]
    scores = model.predict(_eval_rows(model, dataset, 0, candidates))
    assert scores.shape == (10,)
    reversed_scores = model.predict(_eval_rows(model, dataset, 0, candidates[::-1]))
    assert torch.equal(scores, reversed_scores.flip(0))


def test_full_sort_never_reads_the_target(tiny):
    _, model, _, _, test_data = tiny
    dataset = test_data._dataset
    interaction = dataset.inter_feat[:2]
    first = model.full_sort_predict(interaction)
    wrong_target = Interaction({k: v.clone() for k, v in interaction.interaction.items()})
    wrong_target[model.ITEM_ID] = (wrong_target[model.ITEM_ID] % (model.n_items - 1)) + 1
    assert torch.equal(first, model.full_sort_predict(wrong_target))
    assert first.shape == (2, model.n_items)


def test_full_sort_reranks_the_retriever_top_k_and_keeps_its_order_below(tiny):
    _, model, _, _, test_data = tiny
    interaction = test_data._dataset.inter_feat[:1]
    scores = model.full_sort_predict(interaction)[0]
    history = set(interaction[model.ITEM_SEQ][0].tolist()) - {0}
    top = torch.topk(scores, model.rerank_topk).indices.tolist()
    retrieval = model.retrieval_scores(interaction)[0]  # the sequential model's scores
    assert torch.isinf(retrieval[0]) and all(torch.isinf(retrieval[i]) for i in history)
    retriever_top = torch.argsort(retrieval, descending=True, stable=True)[: model.rerank_topk].tolist()
    assert set(top) == set(retriever_top)
    below = torch.argsort(scores, descending=True, stable=True)[model.rerank_topk :]
    below_retrieval = retrieval[below]
    finite = below_retrieval[torch.isfinite(below_retrieval)]
    assert torch.all(finite[:-1] >= finite[1:])


def test_more_candidates_than_one_prompt_lists_are_split_over_prompts(tiny):
    _, model, _, _, test_data = tiny
    history = [1, 2, 3]
    candidates = list(range(4, 39))  # 35 candidates, 20 per prompt
    ((log_probs, order),) = model.candidate_log_probs([(0, history, candidates)])
    first_chunk, second_chunk = order[:20], order[20:]
    assert np.isclose(np.exp(log_probs[first_chunk]).sum(), 1.0, atol=1e-4)
    assert np.isclose(np.exp(log_probs[second_chunk]).sum(), 1.0, atol=1e-4)


def test_prompt_lists_recent_history_and_candidates_through_the_chat_template(tiny):
    _, model, _, _, _ = tiny
    history = list(range(1, 16))
    text = model.prompt(model.history(torch.tensor(history + [0] * 5), 15), [20, 21])
    assert text.startswith("<|im_start|>system") and text.endswith("<|im_start|>assistant\n<answer>")
    shown = model.prompt_entry(history[-1])
    hidden = model.prompt_entry(history[-model.max_history - 1])
    assert f"[{shown[0]}] {shown[1]}" in text and f"[{hidden[0]}] " not in text
    candidates = text[text.index("Candidates:\n") :]
    assert all(f"\n[{model.prompt_entry(i)[0]}] {model.prompt_entry(i)[1]}" in candidates for i in (20, 21))


def _title_log_prob_alone(model, prompt, title):
    """log P(title</answer> | prompt) from one forward pass over the whole text, no shared cache."""
    prompt_ids = model.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = model.tokenizer(prompt + title + "</answer>", add_special_tokens=False)["input_ids"]
    start = next((k for k, (a, b) in enumerate(zip(prompt_ids, ids)) if a != b), len(prompt_ids))
    with torch.no_grad():
        log_probs = torch.log_softmax(model.language_model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(float(log_probs[k - 1, ids[k]]) for k in range(start, len(ids)))


def test_shared_prompt_cache_scores_each_title_as_a_full_forward_does(tiny):
    """The prompt is run once for all titles; each title must score as if run on its own.

    The titles differ in length (right padding), and one starts with a quote that the tokenizer
    may merge with the ``>`` that ends ``<answer>``.
    """
    _, model, _, _, _ = tiny
    model.language_model.eval()
    prompt = model.prompt([1, 2, 3], [4, 5, 6])
    titles = ["Heat", "'Til There Was You", "Star Wars: Episode IV", "Heat"]
    shared = TitleScorer(model.language_model, model.tokenizer).title_log_likelihoods(prompt, titles).detach()
    alone = torch.tensor([_title_log_prob_alone(model, prompt, title) for title in titles])
    assert torch.allclose(shared.double(), alone.double(), atol=2e-3)
    log_probs = model.title_log_probs([prompt], [titles])[0]
    assert torch.isclose(log_probs.exp().sum(), torch.tensor(1.0), atol=1e-5) and log_probs[0] == log_probs[3]


def test_calculate_loss_is_a_differentiable_cross_entropy(tiny):
    _, model, train_data, _, _ = tiny
    batch = train_data._dataset.inter_feat[:2]
    loss = model.calculate_loss(batch)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.language_model.lm_head.weight.grad is not None


def test_a_dataset_without_the_title_field_gets_an_error_naming_it(tmp_path, tiny_llm_dir):
    write_tiny_dataset(str(tmp_path), name="notitle", with_title=False)
    config = {**TINY_CONFIG, "data_path": str(tmp_path), "llm_path": tiny_llm_dir, "load_col": {"inter": ["user_id", "item_id", "timestamp"], "item": ["item_id", "genre"]}}
    with pytest.raises(ValueError, match=r"no item field \[title\]"):
        build("notitle", config)
