"""Hybrid item tokens: the tokens, the wrapped embedding, training through it (plain and PEFT), the
curriculum collator and the plugin-free export, all on the tiny random LLM."""
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerState

from recbole_mllmr1.item_tokens import (
    CurriculumCallback,
    ItemTokenCurriculum,
    ItemTokenEmbedding,
    add_item_tokens,
    export_hybrid_checkpoint,
    hybrid_share,
    install_item_tokens,
    item_token_text,
    projector_of,
)
from recbole_mllmr1.llm import load_causal_lm, load_tokenizer

N_ITEMS = 12
D_SEQ = 8
LISTED = (3, 7, 11)


@pytest.fixture(scope="module")
def item_embeddings():
    return torch.randn(N_ITEMS, D_SEQ, generator=torch.Generator().manual_seed(0))


def installed(llm_dir, item_embeddings, seed=0):
    tokenizer = load_tokenizer(llm_dir)
    llm = load_causal_lm(llm_dir, "cpu", "float32")
    torch.manual_seed(seed)
    first = install_item_tokens(llm, tokenizer, item_embeddings)
    return llm, tokenizer, first


def hybrid_prompt(tokenizer, items=LISTED):
    listing = "\n".join(f"{rank}. Title {item} {item_token_text(item)}" for rank, item in enumerate(items, 1))
    messages = [{"role": "user", "content": f"The user watched:\n{listing}\nWhich movie next?"}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def prompt_ids(tokenizer, items=LISTED):
    return tokenizer(hybrid_prompt(tokenizer, items), add_special_tokens=False, return_tensors="pt")["input_ids"]


def lm_loss(llm, ids, first):
    """Item tokens are inputs only: an item id as a target would index past the real-vocabulary logits."""
    return llm(input_ids=ids, labels=ids.masked_fill(ids >= first, -100)).loss


# ---- tokens ------------------------------------------------------------------------------------
def test_item_token_ids_are_contiguous_after_the_vocabulary(tiny_llm_dir):
    tokenizer = load_tokenizer(tiny_llm_dir)
    vocab_size = len(tokenizer)
    first = add_item_tokens(tokenizer, N_ITEMS, vocab_size)
    assert first >= vocab_size
    assert tokenizer.convert_tokens_to_ids([item_token_text(i) for i in range(N_ITEMS)]) == [
        first + i for i in range(N_ITEMS)
    ]
    assert add_item_tokens(tokenizer, N_ITEMS, vocab_size) == first  # idempotent
    assert len(tokenizer) == vocab_size + N_ITEMS


def test_a_listed_item_is_one_token_right_after_its_title(tiny_llm_dir):
    tokenizer = load_tokenizer(tiny_llm_dir)
    first = add_item_tokens(tokenizer, N_ITEMS, len(tokenizer))
    ids = prompt_ids(tokenizer)[0].tolist()
    positions = [p for p, token in enumerate(ids) if token >= first]
    assert [ids[p] for p in positions] == [first + item for item in LISTED]
    for position, item in zip(positions, LISTED):
        assert tokenizer.decode(ids[:position]).rstrip().endswith(f"Title {item}")


def test_a_vocabulary_padded_beyond_the_tokenizer_gets_fillers_so_item_tokens_start_after_it(tiny_llm_dir):
    tokenizer = load_tokenizer(tiny_llm_dir)
    length = len(tokenizer)  # like Qwen, whose embedding has more rows than its tokenizer has tokens
    assert add_item_tokens(tokenizer, 3, length + 5) == length + 5
    assert tokenizer.convert_tokens_to_ids(item_token_text(2)) == length + 7


def test_item_tokens_colliding_with_the_model_vocabulary_are_refused(tiny_llm_dir):
    tokenizer = load_tokenizer(tiny_llm_dir)
    length = len(tokenizer)
    tokenizer.add_tokens([item_token_text(0)], special_tokens=True)  # an earlier run's token, too early
    with pytest.raises(ValueError, match=f"{length}.*{length + 5}"):
        add_item_tokens(tokenizer, 3, length + 5)


# ---- the embedding -----------------------------------------------------------------------------
def test_word_ids_keep_their_embedding_and_item_ids_get_the_projection(tiny_llm_dir, item_embeddings):
    llm, tokenizer, first = installed(tiny_llm_dir, item_embeddings)
    embedding = projector_of(llm)
    assert isinstance(embedding, ItemTokenEmbedding)
    ids = prompt_ids(tokenizer)
    is_item = ids >= first
    with torch.no_grad():
        out = embedding(ids)
        torch.testing.assert_close(out[~is_item], embedding.word_embeddings(ids[~is_item]))
        expected = embedding.item_projector(item_embeddings[torch.tensor(LISTED)])
        torch.testing.assert_close(out[is_item], expected)
    assert embedding.num_embeddings == first == llm.config.vocab_size
    assert embedding.embedding_dim == llm.config.hidden_size
    assert "item_embeddings" not in llm.state_dict()  # frozen input, rebuilt each run
    with pytest.raises(IndexError, match="out of range"):
        embedding(torch.tensor([[first + N_ITEMS]]))


def test_the_lm_head_stays_tied_to_the_real_vocabulary(tiny_llm_dir, item_embeddings):
    llm, tokenizer, first = installed(tiny_llm_dir, item_embeddings)
    llm.tie_weights()  # what from_pretrained, resize and PEFT may call again
    assert llm.get_output_embeddings().weight is projector_of(llm).word_embeddings.weight
    with torch.no_grad():
        logits = llm(input_ids=prompt_ids(tokenizer)).logits
    assert logits.shape[-1] == first


@pytest.mark.parametrize("sampling", [{"do_sample": False}, {"do_sample": True, "temperature": 2.0, "top_k": 0}])
def test_generate_never_emits_an_item_token(tiny_llm_dir, item_embeddings, sampling):
    llm, tokenizer, first = installed(tiny_llm_dir, item_embeddings)
    ids = prompt_ids(tokenizer)
    torch.manual_seed(0)
    out = llm.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, min_new_tokens=12, **sampling)
    assert out.shape[1] == ids.shape[1] + 12
    assert int(out[:, ids.shape[1]:].max()) < first


# ---- training ----------------------------------------------------------------------------------
def test_the_lm_loss_trains_the_projector(tiny_llm_dir, item_embeddings):
    llm, tokenizer, first = installed(tiny_llm_dir, item_embeddings)
    projector = projector_of(llm).item_projector
    before = [p.detach().clone() for p in projector.parameters()]
    optimizer = torch.optim.SGD(projector.parameters(), lr=0.1)
    lm_loss(llm, prompt_ids(tokenizer), first).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in projector.parameters())
    optimizer.step()
    assert all(not torch.equal(old, new) for old, new in zip(before, projector.parameters()))


def test_a_batch_without_item_tokens_still_gives_the_projector_a_gradient():
    """DDP fails on a trainable parameter left out of the graph, e.g. when the curriculum strips a whole batch."""
    embedding = ItemTokenEmbedding(torch.nn.Embedding(10, 4), torch.randn(3, 2), first_item_id=10)
    embedding(torch.tensor([[1, 2]])).sum().backward()
    assert all(p.grad is not None for p in embedding.item_projector.parameters())


def test_peft_trains_saves_and_restores_the_projector(tiny_llm_dir, item_embeddings, tmp_path):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from safetensors.torch import load_file

    def peft_config():
        return LoraConfig(r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["item_projector"])

    llm, tokenizer, first = installed(tiny_llm_dir, item_embeddings)
    model = get_peft_model(llm, peft_config())
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert any("item_projector" in name for name in trainable)
    assert any("lora_" in name for name in trainable)
    assert not any("embed_tokens.word_embeddings" in name for name in trainable)
    ids = prompt_ids(tokenizer)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    lm_loss(model, ids, first).backward()
    optimizer.step()
    assert any("item_projector" in key for key in get_peft_model_state_dict(model))
    model.save_pretrained(str(tmp_path))
    model.eval()
    with torch.no_grad():
        expected = model(input_ids=ids).logits

    fresh, _, _ = installed(tiny_llm_dir, item_embeddings, seed=1)  # another projector init
    restored = get_peft_model(fresh, peft_config())
    restored.eval()
    with torch.no_grad():
        assert not torch.allclose(restored(input_ids=ids).logits, expected)
        set_peft_model_state_dict(restored, load_file(os.path.join(tmp_path, "adapter_model.safetensors")))
        torch.testing.assert_close(restored(input_ids=ids).logits, expected)


# ---- curriculum --------------------------------------------------------------------------------
def test_hybrid_share_rises_linearly_over_the_ramp():
    assert hybrid_share(0, 100, 0) == 1.0
    assert hybrid_share(0, 100, 0.5) == 0.0
    assert hybrid_share(25, 100, 0.5) == 0.5
    assert hybrid_share(50, 100, 0.5) == 1.0
    assert hybrid_share(90, 100, 0.5) == 1.0
    assert hybrid_share(30, 100, 1) == 0.3


FIRST = 1000


def example(j):
    ids = [5, 6, FIRST + j, 7, FIRST + j + 1, 8]
    return {"input_ids": ids, "labels": [-100, -100, -100, -100, -100, 8], "attention_mask": [1] * 6}


def collate(curriculum, step, n=8, max_steps=10):
    curriculum.step, curriculum.max_steps = step, max_steps
    return curriculum([example(j) for j in range(n)])


def test_the_curriculum_strips_every_example_at_the_start_and_none_at_the_end():
    curriculum = ItemTokenCurriculum(lambda examples: examples, FIRST, ramp=1, seed=0)
    for out in collate(curriculum, step=0):
        assert out == {"input_ids": [5, 6, 7, 8], "labels": [-100, -100, -100, 8], "attention_mask": [1] * 4}
    assert (curriculum.stripped, curriculum.seen) == (8, 8)
    assert collate(curriculum, step=10) == [example(j) for j in range(8)]
    assert (curriculum.stripped, curriculum.seen) == (8, 16)


def test_the_curriculum_is_deterministic_per_seed_and_step():
    def draws(seed, step):
        curriculum = ItemTokenCurriculum(lambda examples: examples, FIRST, ramp=1, seed=seed)
        return [len(out["input_ids"]) for out in collate(curriculum, step, n=64)]

    middle = draws(seed=3, step=5)
    assert 4 in middle and 6 in middle  # a mix at share 0.5
    assert draws(seed=3, step=5) == middle
    assert draws(seed=4, step=5) != middle


def test_micro_batches_of_one_step_draw_independently():
    curriculum = ItemTokenCurriculum(lambda examples: examples, FIRST, ramp=1, seed=0)
    first_half = [len(out["input_ids"]) for out in collate(curriculum, step=5, n=32)]
    second_half = [len(out["input_ids"]) for out in collate(curriculum, step=5, n=32)]
    whole = ItemTokenCurriculum(lambda examples: examples, FIRST, ramp=1, seed=0)
    assert first_half + second_half == [len(out["input_ids"]) for out in collate(whole, step=5, n=64)]


def test_stripping_a_packed_example_shortens_each_segment():
    curriculum = ItemTokenCurriculum(lambda examples: examples, FIRST, ramp=1, seed=0)
    packed = {"input_ids": [5, FIRST, 6, 7, FIRST + 1], "labels": [-100, -100, 6, 7, -100], "seq_lengths": [3, 2]}
    assert curriculum([packed]) == [{"input_ids": [5, 6, 7], "labels": [-100, 6, 7], "seq_lengths": [2, 1]}]


def test_the_curriculum_wraps_trl_collator_and_follows_the_trainer():
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    curriculum = ItemTokenCurriculum(DataCollatorForLanguageModeling(pad_token_id=0), FIRST, ramp=0.5, seed=0)
    callback = CurriculumCallback(curriculum)
    callback.on_step_begin(None, TrainerState(global_step=0, max_steps=20), None)
    batch = curriculum([example(j) for j in range(4)])
    assert batch["input_ids"].shape == (4, 4) and int(batch["input_ids"].max()) < FIRST
    callback.on_step_begin(None, TrainerState(global_step=10, max_steps=20), None)
    assert (curriculum.step, curriculum.max_steps) == (10, 20)
    assert curriculum([example(j) for j in range(4)])["input_ids"].shape == (4, 6)


# ---- export ------------------------------------------------------------------------------------
def test_the_export_loads_without_the_plugin_and_keeps_the_logits(tiny_llm_dir, item_embeddings, tmp_path):
    llm, tokenizer, first = installed(tiny_llm_dir, item_embeddings)
    ids = prompt_ids(tokenizer)
    with torch.no_grad():
        expected = llm(input_ids=ids).logits
    export_hybrid_checkpoint(llm, tokenizer, str(tmp_path))
    assert isinstance(projector_of(llm), ItemTokenEmbedding) and llm.config.vocab_size == first  # untouched

    exported = AutoModelForCausalLM.from_pretrained(str(tmp_path), dtype=torch.float32)
    reloaded_ids = prompt_ids(AutoTokenizer.from_pretrained(str(tmp_path)))
    assert torch.equal(reloaded_ids, ids)
    assert not exported.config.tie_word_embeddings
    assert exported.config.vocab_size == first + N_ITEMS
    with torch.no_grad():
        logits = exported(input_ids=ids).logits
        torch.testing.assert_close(logits[..., :first], expected, atol=1e-5, rtol=0)
        assert torch.count_nonzero(logits[..., first:]) == 0
        items = exported.get_input_embeddings().weight[first:]
        torch.testing.assert_close(items, projector_of(llm).item_projector(item_embeddings))
        out = exported.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False)
    assert int(out[:, ids.shape[1]:].max()) < first
