"""GRPO rollouts with a shared prompt cache draw the completions TRL's own generate call draws."""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from trl.trainer.utils import pad

from recbole_mllmr1.llm import cache_keyword
from recbole_mllmr1.training import rollouts, stages
from tests.test_training_paths import _length_reward, _train


def _left_padded(tokenizer, prompts, repeats):
    """TRL's batch: every prompt ``repeats`` times, left-padded, as GRPOTrainer._generate_single_turn builds it."""
    rows = [torch.tensor(tokenizer(prompt)["input_ids"]) for prompt in prompts for _ in range(repeats)]
    input_ids = pad(rows, padding_value=tokenizer.pad_token_id, padding_side="left")
    attention_mask = pad([torch.ones_like(row) for row in rows], padding_value=0, padding_side="left")
    return input_ids, attention_mask


@pytest.fixture(scope="module")
def tiny(tiny_llm_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval(), AutoTokenizer.from_pretrained(tiny_llm_dir)


@pytest.mark.parametrize("do_sample", [False, True])
def test_shared_prompts_generate_the_completions_of_the_plain_call(tiny, do_sample):
    model, tokenizer = tiny
    # Two prompts of different lengths, 3 rollouts each: the shorter one's rows are left-padded.
    input_ids, attention_mask = _left_padded(tokenizer, ["Which film next? Star Wars", "Rate it: a very long title of a film"], 3)
    config = GenerationConfig(max_new_tokens=8, do_sample=do_sample, temperature=1.0, top_k=0, pad_token_id=tokenizer.pad_token_id)

    torch.manual_seed(3)
    plain = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    torch.manual_seed(3)
    with rollouts.shared_prompt_generation(model):
        shared = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config)
    assert "generate" not in vars(model)  # the patch is gone after the block
    assert torch.equal(shared, plain)
    if do_sample:  # the rollouts of one prompt differ: sampling was not collapsed into one draw
        assert len({tuple(row.tolist()) for row in shared[:3]}) > 1


def test_the_shared_cache_holds_the_keys_each_row_would_compute(tiny):
    model, tokenizer = tiny
    input_ids, attention_mask = _left_padded(tokenizer, ["short prompt", "a somewhat longer prompt than that"], 2)
    with torch.no_grad():
        cache = rollouts.shared_prompt_cache(model, input_ids, attention_mask)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # generate's positions for left-padded rows
        own = model(input_ids=input_ids[:, :-1], attention_mask=attention_mask[:, :-1], position_ids=positions[:, :-1], use_cache=True)
    own = own[cache_keyword(model)]
    assert cache.get_seq_length() == input_ids.shape[1] - 1
    visible = attention_mask[:, None, :-1, None].bool()  # padded columns are hidden by the mask, whatever they hold
    for shared_layer, own_layer in zip(cache.layers, own.layers):
        assert torch.allclose(shared_layer.keys * visible, own_layer.keys * visible, atol=1e-5)
        assert torch.allclose(shared_layer.values * visible, own_layer.values * visible, atol=1e-5)


def test_distinct_rows_have_nothing_to_share(tiny):
    model, tokenizer = tiny
    input_ids, attention_mask = _left_padded(tokenizer, ["one prompt", "another prompt"], 1)
    assert rollouts.shared_prompt_cache(model, input_ids, attention_mask) is None


def test_grpo_runs_each_prompt_once_per_step(tiny_data_path, tiny_llm_dir, tmp_path, monkeypatch):
    """A GRPO step of 2 rollouts of one prompt prefills that prompt once, through TRL's own trainer."""
    monkeypatch.setattr(stages, "get_rewards", lambda names: [_length_reward])
    built = []
    shared_prompt_cache = rollouts.shared_prompt_cache

    def counting(model, input_ids, attention_mask):
        cache = shared_prompt_cache(model, input_ids, attention_mask)
        built.append((len(input_ids), len(torch.unique(input_ids, dim=0)), cache is not None))
        return cache

    monkeypatch.setattr(rollouts, "shared_prompt_cache", counting)
    losses, _ = _train("grpo", tiny_data_path, tiny_llm_dir, tmp_path)
    assert len(losses) == 2
    assert built == [(2, 1, True), (2, 1, True)]  # per step: 2 rows, 1 distinct prompt, one shared cache
