"""Collaborative grounding: the sequential model trained inside the run, hybrid item tokens, score
fusion and its bad inputs, on tiny datasets with the tiny random-weight LLM (the projector's real
SFT step with the default model is marked slow)."""
import glob
import json
import os
import shutil

import numpy as np
import pytest
import torch
from recbole.data.interaction import Interaction

from recbole_mllmr1.config import Config
from recbole_mllmr1.item_tokens import projector_of
from recbole_mllmr1.quick_start import ensure_sequential_model, prepare_run
from recbole_mllmr1.sequential_model import read_checkpoint
from recbole_mllmr1.settings import SettingsError, check_settings
from recbole_mllmr1.trainer import pick_fusion_weight
from recbole_mllmr1.training import stages
from tests.conftest import TINY_CONFIG, write_tiny_dataset


def tiny_config(data_path, checkpoint_dir, **extra):
    return Config(
        model="MLLMRecR1",
        dataset="tiny",
        config_dict={**TINY_CONFIG, "data_path": data_path, "checkpoint_dir": checkpoint_dir, **extra},
    )


@pytest.fixture(scope="module")
def grounded(tiny_data_path, tiny_llm_dir, tmp_path_factory):
    config = tiny_config(tiny_data_path, str(tmp_path_factory.mktemp("saved")), llm_path=tiny_llm_dir)
    return (config, *prepare_run(config))


# ---- the sequential model inside the run ------------------------------------------------------
def test_the_run_trains_the_sequential_model_once_and_reuses_its_checkpoint(grounded):
    config, model, *_ = grounded
    (checkpoint,) = glob.glob(os.path.join(config["checkpoint_dir"], "sequential_model", "SASRec-tiny-*.pth"))
    assert os.path.isfile(checkpoint.replace(".pth", ".json"))  # its validation and test results
    saved = read_checkpoint(checkpoint)
    assert saved["config"]["model"] == "SASRec" and saved["config"]["epochs"] == 2
    assert torch.equal(saved["state_dict"]["item_embedding.weight"], model.sequential_model.item_embedding.weight)
    assert not any(p.requires_grad for p in model.sequential_model.parameters())
    modified = os.path.getmtime(checkpoint)
    assert ensure_sequential_model(config) == checkpoint and os.path.getmtime(checkpoint) == modified


def _with_other_test_items(source, target):
    """A copy of the tiny dataset in which users' last interaction (RecBole's test item) is another item.

    RecBole numbers items in order of first appearance: only items that appear earlier in the file
    are swapped, so every item keeps its id. Returns the folder and how many test items changed.
    """
    shutil.copytree(source, target)
    inter = os.path.join(target, "tiny", "tiny.inter")
    with open(inter) as file:
        header, *lines = file.read().splitlines()
    rows = [line.split("\t") for line in lines]
    first_seen, last = {}, {}
    for index, row in enumerate(rows):
        first_seen.setdefault(row[1], index)
        last[row[0]] = index  # rows are in time order per user
    changed = 0
    for user, index in last.items():
        seen = {row[1] for row in rows if row[0] == user}
        earlier = [item for item, position in first_seen.items() if position < index and item not in seen]
        if first_seen[rows[index][1]] < index and earlier:
            rows[index][1] = earlier[0]
            changed += 1
    with open(inter, "w") as file:
        file.write("\n".join([header] + ["\t".join(row) for row in rows]) + "\n")
    return target, changed


def test_the_sequential_model_never_sees_the_test_interactions(tiny_data_path, tmp_path):
    """Trained on RecBole's training split (validation only for early stopping): other test items, the same model."""
    other, changed = _with_other_test_items(tiny_data_path, str(tmp_path / "other"))
    assert changed >= 20  # of the 30 users
    weights = []
    for data_path, folder in ((tiny_data_path, "a"), (other, "b")):
        checkpoint = ensure_sequential_model(tiny_config(data_path, str(tmp_path / folder)))
        weights.append(read_checkpoint(checkpoint)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


def test_a_checkpoint_of_another_dataset_or_item_count_is_refused_before_any_work(grounded, tiny_data_path, tmp_path):
    config, *_ = grounded
    (checkpoint,) = glob.glob(os.path.join(config["checkpoint_dir"], "sequential_model", "SASRec-tiny-*.pth"))
    saved = read_checkpoint(checkpoint)
    saved["config"]["dataset"] = "ml-100k"
    saved["state_dict"]["item_embedding.weight"] = torch.zeros(1683, 16)
    torch.save(saved, tmp_path / "other.pth")
    other = tiny_config(tiny_data_path, str(tmp_path), retriever_checkpoint=str(tmp_path / "other.pth"))
    with pytest.raises(SettingsError, match=r"retriever_checkpoint.*trained on dataset \[ml-100k\]"):
        check_settings(other)
    saved["config"]["dataset"] = "tiny"
    torch.save(saved, tmp_path / "items.pth")
    other = tiny_config(tiny_data_path, str(tmp_path), retriever_checkpoint=str(tmp_path / "items.pth"))
    check_settings(other)  # the item count needs the dataset: checked when the run loads it, before the LLM
    with pytest.raises(ValueError, match=r"1683 item rows, this dataset has 41 items"):
        prepare_run(other)
    missing = tiny_config(tiny_data_path, str(tmp_path), retriever_checkpoint=str(tmp_path / "none.pth"))
    with pytest.raises(SettingsError, match=r"\[retriever_checkpoint\] = .*none.pth.*no such file"):
        check_settings(missing)


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"sequential_model": "BPR"}, r"\[sequential_model\] = 'BPR' is not a sequential model"),
        ({"sequential_model": "SASRek"}, r"\[sequential_model\] = 'SASRek'"),
        ({"sequential_model": None}, r"\[item_tokens\] = True is not allowed: it reads the sequential model"),
        ({"sequential_model": None, "item_tokens": False}, r"\[fusion_weight\] = 'auto'"),
        ({"fusion_weight": 1.5}, r"\[fusion_weight\] = 1.5 is not allowed: 'auto' or a number in \[0, 1\]"),
        ({"use_vllm": True, "stages": ["grpo"]}, r"\[use_vllm\].*cannot map the item-token projector"),
    ],
)
def test_grounding_settings_fail_with_the_key_and_what_is_allowed(tiny_data_path, tmp_path, extra, message):
    with pytest.raises(SettingsError, match=message):
        check_settings(tiny_config(tiny_data_path, str(tmp_path), **extra))


# ---- hybrid item tokens ------------------------------------------------------------------------
def test_every_listed_item_has_one_item_token_after_its_title(grounded):
    _, model, *_ = grounded
    history, candidates = [1, 2, 3], [7, 4, 9, 12]
    ids = model.tokenizer(model.prompt(history, candidates), add_special_tokens=False)["input_ids"]
    first = projector_of(model.language_model).first_item_id
    assert [i - first for i in ids if i >= first] == history + candidates
    for item in history + candidates:
        before = model.tokenizer.decode(ids[: ids.index(first + item)])
        assert before.rstrip().endswith(model.item_title(item))
    # Teachers read the text-only listing.
    assert "<|item_" not in model.item_entry(1)[1] and "<|item_1|>" in model.prompt_entry(1)[1]


def test_the_projector_trains_with_lora_in_sft_and_item_tokens_are_never_generated(grounded, tmp_path):
    config, model, train_data, *_ = grounded
    # RecBole logs the model with one trainable count: nothing before LoRA, then exactly the adapter's.
    assert "Trainable parameters" in str(model) and str(model).endswith(": 0") and "LlamaDecoderLayer" not in str(model)
    trainable, _ = stages.attach_lora(config, model)
    assert trainable > 0 and str(model).endswith(f": {trainable}")
    projector = projector_of(model.language_model)
    before = {k: v.detach().clone() for k, v in projector.item_projector.state_dict().items()}
    config["sft_data"], config["sft_steps"], config["sft_batch_size"], config["item_token_curriculum"] = "plain", 2, 2, 0.0
    records = stages.sft_records(config, model, train_data._dataset)[:4]
    output = stages.run_sft(config, model, records, str(tmp_path / "sft"))
    assert output.metrics["hybrid_sample_share"] == 1.0  # no curriculum: every sample keeps its item tokens
    after = projector.item_projector.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    prompt = model.tokenizer(model.prompt([1, 2], [3, 4, 5]), add_special_tokens=False, return_tensors="pt")
    generated = model.language_model.generate(**prompt, max_new_tokens=8, do_sample=True, pad_token_id=model.tokenizer.pad_token_id)
    assert int(generated[0, prompt["input_ids"].shape[1] :].max()) < projector.first_item_id


# ---- fusion ---------------------------------------------------------------------------------------
def test_the_fusion_weight_is_the_best_on_validation_and_a_tie_goes_to_the_llm():
    assert pick_fusion_weight({0.0: 0.30, 0.5: 0.41, 1.0: 0.40}) == 0.5
    assert pick_fusion_weight({0.0: 0.30, 0.3: 0.41, 0.6: 0.41, 1.0: 0.41}) == 0.3
    assert pick_fusion_weight({0.0: 2.0, 0.5: 1.0, 1.0: 1.0}, bigger=False) == 0.5


class TiedLLM:
    def log_probs(self, prompts, candidate_titles):
        return [torch.full((len(titles),), -float(np.log(len(titles)))) for titles in candidate_titles]


def test_with_a_tied_llm_fusion_ranks_as_the_sequential_model(grounded, monkeypatch):
    _, model, _, _, test_data = grounded
    monkeypatch.setattr(model, "title_log_probs", TiedLLM().log_probs)
    dataset = test_data._dataset
    history = set(dataset.inter_feat[model.ITEM_SEQ][0].tolist())
    candidates = [item for item in (5, 9, 13, 2, 30, 21, 7, 11, 17, 25, 3, 4, 6, 8, 10, 12) if item not in history][:10]
    rows = Interaction(
        {
            model.USER_ID: dataset.inter_feat[model.USER_ID][0].repeat(10),
            model.ITEM_SEQ: dataset.inter_feat[model.ITEM_SEQ][0].repeat(10, 1),
            model.ITEM_SEQ_LEN: dataset.inter_feat[model.ITEM_SEQ_LEN][0].repeat(10),
            model.ITEM_ID: torch.tensor(candidates),
        }
    )
    sequential = model.retrieval_scores(dataset.inter_feat[:1])[0, candidates]  # history items would be -inf here
    assert torch.isfinite(sequential).all()
    model.set_fusion_weight(0.5)
    try:
        fused = model.predict(rows)
    finally:
        model.set_fusion_weight(0.0)
    assert torch.argsort(fused, descending=True).tolist() == torch.argsort(sequential, descending=True).tolist()


def test_a_candidate_listed_twice_is_scored_once_and_its_copies_share_the_score(grounded):
    _, model, *_ = grounded
    model.eval()  # an earlier test trained the model: no dropout while scoring
    candidates = [5, 9, 5, 2]
    requests = [(1, [1, 2, 3], candidates)]
    ((scores, order),) = model.fused_log_probs(requests, None)
    assert scores[0] == scores[2] and len(order) == 4
    ((log_probs, _),) = model.candidate_log_probs([(1, [1, 2, 3], [5, 9, 2])])
    assert np.allclose(np.exp(log_probs).sum(), 1.0, atol=1e-4) and np.isclose(scores[1], log_probs[1])


def test_a_trained_run_tests_each_stage_fused_by_the_llm_alone_and_by_the_sequential_model_alone(tiny_data_path, tiny_llm_dir, tmp_path):
    from recbole_mllmr1.quick_start import run_recbole
    from tests.test_training import TRAINING

    result = run_recbole(
        "MLLMRecR1", "tiny",
        config_dict={**TRAINING, "stages": ["sft"], "data_path": tiny_data_path, "checkpoint_dir": str(tmp_path), "llm_path": tiny_llm_dir},
    )
    stage_names = list(result["stage_results"])
    assert stage_names == [f"{stage}{suffix}" for stage in ("zero-shot", "sft") for suffix in ("", " (LLM alone)", " (sequential model alone)")]
    weights = result["fusion_weights"]
    assert weights["sft (LLM alone)"] == 0 and weights["sft (sequential model alone)"] == 1 and 0 <= weights["sft"] <= 1
    chosen = weights["sft"]
    same = {0.0: "sft (LLM alone)", 1.0: "sft (sequential model alone)"}.get(chosen)
    if same:
        assert dict(result["stage_results"]["sft"]) == dict(result["stage_results"][same])
    # The export: a plain HF checkpoint that gives the same logits over the original vocabulary.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recbole_mllmr1.export import export_run
    from recbole_mllmr1.recommend import load_trained_model

    (run_dir,) = glob.glob(os.path.join(str(tmp_path), "MLLMRecR1-tiny-*"))
    out = export_run(run_dir, str(tmp_path / "export"))
    model, _ = load_trained_model(run_dir)
    prompt = model.prompt([1, 2, 3], [4, 5, 6])
    ids = model.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    assert torch.equal(AutoTokenizer.from_pretrained(out)(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"], ids)
    exported = AutoModelForCausalLM.from_pretrained(out).eval()
    with torch.no_grad():
        ours = model.language_model(input_ids=ids).logits
        theirs = exported(input_ids=ids).logits
    assert theirs.shape[-1] > ours.shape[-1]
    torch.testing.assert_close(theirs[..., : ours.shape[-1]], ours, atol=1e-4, rtol=1e-4)
    grounding = json.load(open(os.path.join(out, "grounding.json")))
    assert grounding["item_tokens"] and grounding["fusion_weights"]["sft"] == chosen and grounding["sequential_model"] == "SASRec"


@pytest.mark.slow
def test_the_projector_gets_gradients_and_changes_in_a_real_sft_step_of_the_default_model(tiny_data_path, default_llm_dir, tmp_path):
    config = tiny_config(tiny_data_path, str(tmp_path), llm_path=default_llm_dir, sft_data="plain", sft_steps=1, sft_batch_size=2, item_token_curriculum=0.0)
    model, train_data, _, _ = prepare_run(config)
    stages.attach_lora(config, model)
    projector = projector_of(model.language_model)
    before = {k: v.detach().clone() for k, v in projector.item_projector.state_dict().items()}
    stages.run_sft(config, model, stages.sft_records(config, model, train_data._dataset)[:2], str(tmp_path / "sft"))
    after = projector.item_projector.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
