"""The switches between this project's choices and the official code's (docs/training.md, "The official code's choices").

Each switch keeps this project's behaviour by default; each test shows the official setting changes what it says.
"""
import json

import pytest
import torch

from recbole_mllmr1.config import Config
from recbole_mllmr1.cot.build import build_mixed_grained_dataset
from recbole_mllmr1.cot.cache import read_jsonl
from recbole_mllmr1.cot.teacher_prompts import REFINE_SYSTEM, pseudo_cot_messages, refinement_messages
from recbole_mllmr1.training import settings, stages
from recbole_mllmr1.training_samples import REFERENCE_HEADER, draw_training_samples, last_row_per_user
from tests.conftest import TINY_CONFIG
from tests.test_cot import PromptHashScorer, ScriptedTeacher, _cot_samples, cot_config, tiny_cot  # noqa: F401 (fixtures)
from tests.test_model import build


@pytest.fixture(scope="module")
def tiny(tiny_data_path, tiny_llm_dir):
    return build("tiny", {**TINY_CONFIG, "data_path": tiny_data_path, "llm_path": tiny_llm_dir, "train_candidates": 5})


def _overridden(config, monkeypatch, **values):
    for key, value in values.items():
        monkeypatch.setitem(config.final_config_dict, key, value)
    return config


# ---- grpo_top_p ------------------------------------------------------------------------------
def test_grpo_top_p_reaches_trls_rollout_sampling():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING"})
    assert settings.grpo_config(config, "/tmp/unused").top_p == 1.0  # TRL's default: no nucleus cut
    config["grpo_top_p"] = 0.9
    assert settings.grpo_config(config, "/tmp/unused").top_p == 0.9


# ---- lr_scheduler_type -----------------------------------------------------------------------
def test_lr_scheduler_type_reaches_both_trl_configs():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING"})
    assert {settings.sft_config(config, "/tmp/unused").lr_scheduler_type, settings.grpo_config(config, "/tmp/unused").lr_scheduler_type} == {"constant"}
    config["lr_scheduler_type"] = "linear"
    assert {settings.sft_config(config, "/tmp/unused").lr_scheduler_type, settings.grpo_config(config, "/tmp/unused").lr_scheduler_type} == {"linear"}


# ---- sft_epochs, grpo_epochs -----------------------------------------------------------------
def test_epochs_set_each_stages_length_from_its_data(tiny_data_path, tiny_llm_dir, tmp_path):
    """One epoch over 6 training samples: SFT 2 per step -> 3 steps; GRPO 4 completions = 2 prompts per step -> 3 steps."""
    import glob

    from recbole_mllmr1.quick_start import run_recbole
    from tests.test_training import TRAINING

    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "sft_epochs": 3, "grpo_epochs": 2.5})
    sft, grpo = settings.sft_config(config, "/tmp/unused"), settings.grpo_config(config, "/tmp/unused")
    assert (sft.max_steps, sft.num_train_epochs, grpo.max_steps, grpo.num_train_epochs) == (-1, 3.0, -1, 2.5)

    run_recbole("MLLMRecR1", "tiny", config_dict={
        **TRAINING, "data_path": tiny_data_path, "checkpoint_dir": str(tmp_path), "llm_path": tiny_llm_dir,
        "train_samples": 6, "sft_epochs": 1, "sft_batch_size": 2, "grpo_epochs": 1, "grpo_batch_size": 4, "grpo_num_generations": 2,
        "eval_step": 10, "eval_user_sample": 4,
    })
    (run_dir,) = glob.glob(str(tmp_path / "MLLMRecR1-tiny-*"))
    with open(f"{run_dir}/history.jsonl") as file:
        trained = [row for row in map(json.loads, file) if row["kind"] == "train"]
    assert [row["step"] for row in trained if row["stage"] == "sft"] == [1, 2, 3]
    assert [row["step"] for row in trained if row["stage"] == "grpo"] == [1, 2, 3]


# ---- sft_completion_only_loss ----------------------------------------------------------------
def _sft_loss_and_labels(tiny_llm_dir, completion_only_loss):
    """SFT's loss on two conversational prompt/completion records, as TRL computes it with the project's
    LM-head patch, and the labels TRL built: (loss, HF's own loss on those labels, labels, input ids)."""
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import SFTTrainer

    from recbole_mllmr1 import compat
    from recbole_mllmr1.llm import load_causal_lm

    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "sft_completion_only_loss": completion_only_loss})
    records = [
        {"prompt": [{"role": "user", "content": f"Which film comes next after film {i}?"}],
         "completion": [{"role": "assistant", "content": f"<answer>Film {i + 1}</answer>"}]}
        for i in range(2)
    ]
    compat.fuse_lm_head_on_labelled_positions_only()
    llm = load_causal_lm(tiny_llm_dir, "cpu")
    trainer = SFTTrainer(model=llm, args=settings.sft_config(config, "/tmp/unused"), train_dataset=Dataset.from_list(records),
                         processing_class=AutoTokenizer.from_pretrained(tiny_llm_dir))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(records))])
    with torch.no_grad():
        reference = llm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        loss = trainer.compute_loss(llm, dict(batch))
    return float(loss), float(reference), batch["labels"], batch["input_ids"]


def test_sft_without_completion_only_loss_labels_the_prompt_and_the_lm_head_patch_scores_every_row(tiny_llm_dir):
    completion_loss, completion_reference, completion_labels, input_ids = _sft_loss_and_labels(tiny_llm_dir, True)
    full_loss, full_reference, full_labels, same_ids = _sft_loss_and_labels(tiny_llm_dir, False)
    assert torch.equal(input_ids, same_ids)
    padding = full_labels == -100  # the collator's padding only
    assert torch.equal(full_labels[~padding], input_ids[~padding])
    assert 0 < int((completion_labels != -100).sum()) < int((~padding).sum())
    # The patched LM head scores only labelled rows: every row here, the same loss as the model's own.
    assert full_loss == pytest.approx(full_reference, abs=1e-5) and completion_loss == pytest.approx(completion_reference, abs=1e-5)
    assert full_loss != pytest.approx(completion_loss, abs=1e-3)


def test_prompt_loss_with_item_tokens_is_refused_at_run_start(tiny_data_path):
    from recbole_mllmr1.settings import SettingsError, check_settings
    from tests.test_settings import mllmrecr1_config

    with pytest.raises(SettingsError, match=r"\[sft_completion_only_loss\] = False .*item tokens.*item_tokens: False"):
        check_settings(mllmrecr1_config(tiny_data_path, item_tokens=True, sft_completion_only_loss=False))
    check_settings(mllmrecr1_config(tiny_data_path, item_tokens=False, sft_completion_only_loss=False))


# ---- train_sample_per_user -------------------------------------------------------------------
def test_last_row_per_user_takes_each_users_last_row():
    import numpy as np

    assert last_row_per_user(np.array([1, 1, 1, 2, 2, 3])).tolist() == [2, 4, 5]


def test_one_sample_per_user_is_each_users_last_training_interaction(tiny, monkeypatch):
    config, model, train_data, _, _ = tiny
    train_dataset = train_data._dataset
    users = train_dataset.inter_feat[model.USER_ID].tolist()
    targets = train_dataset.inter_feat[model.ITEM_ID].tolist()
    training_items = {}
    for user, item in zip(users, targets):
        training_items.setdefault(user, []).append(item)

    samples = stages.training_samples(_overridden(config, monkeypatch, train_samples=None, train_sample_per_user=True), model, train_dataset, 0)
    assert sorted(s.user_id for s in samples) == sorted(training_items)  # every user once
    for sample in samples:
        *earlier, last = training_items[sample.user_id]
        assert sample.target == last
        assert sample.history[-len(earlier) :] == tuple(earlier)  # the whole training history before it (a user's first item is no target)

    drawn = stages.training_samples(_overridden(config, monkeypatch, train_samples=7), model, train_dataset, 0)
    assert len({s.user_id for s in drawn}) == 7 and {s.target for s in drawn} <= {training_items[s.user_id][-1] for s in drawn}

    default = stages.training_samples(_overridden(config, monkeypatch, train_samples=None, train_sample_per_user=False), model, train_dataset, 0)
    assert len(default) == len(users)  # every training interaction, several per user
    assert default == draw_training_samples(model, train_dataset, None, config["train_candidates"], 0)


# ---- cot_refine_sees_target ------------------------------------------------------------------
def _held_out_items(model, *splits):
    held_out = {}
    for split in splits:
        for user, item in zip(split.inter_feat[model.USER_ID].tolist(), split.inter_feat[model.ITEM_ID].tolist()):
            held_out.setdefault(user, set()).add(item)
    return held_out


@pytest.mark.parametrize("sees_target", [False, True], ids=["default", "official"])
def test_the_refinement_shows_the_training_target_only_when_switched_on(tiny_cot, cot_config, tmp_path, monkeypatch, sees_target):
    _, model, train_dataset, valid_dataset, test_dataset = tiny_cot
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    config = cot_config(cot_num_samples=8, cot_refine_sees_target=sees_target)
    teacher = ScriptedTeacher()
    build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=teacher)

    expected = {}
    for sample in _cot_samples(config, model, train_dataset):
        pseudo = pseudo_cot_messages([model.item_entry(i) for i in sample.history])
        target = model.item_entry(sample.target) if sees_target else None
        expected[json.dumps(refinement_messages(f"Notes on this user. {pseudo[-1]['content']}", target))] = sample
    sent = {json.dumps(messages) for messages in teacher.conversations if messages[0]["content"] == REFINE_SYSTEM}
    assert sent == set(expected)

    held_out = _held_out_items(model, valid_dataset, test_dataset)
    for conversation, sample in expected.items():
        token, text = model.item_entry(sample.target)
        assert (f"[{token}] {text}" in conversation) is sees_target
        for item in held_out[sample.user_id]:  # the user's validation and test items: never
            token, text = model.item_entry(item)
            assert f"[{token}]" not in conversation and text not in conversation


# ---- cot_refine_teacher, cot_refine_max_new_tokens, cot_refine_temperature ---------------------
class RecordingTeacher(ScriptedTeacher):
    """A scripted teacher with a name of its own that records the generation settings of each call."""

    def __init__(self, identity):
        super().__init__()
        self.identity = identity
        self.settings = []

    def generate(self, conversations, settings, scaffold=()):
        self.settings.append(settings)
        return super().generate(conversations, settings, scaffold)


def _steps(teacher):
    """The steps a teacher was called for, with the (max_new_tokens, temperature) of each call."""
    kinds = {"refinement" if messages[0]["content"] == REFINE_SYSTEM else "pseudo-CoT" for messages in teacher.conversations}
    return kinds, {(s.max_new_tokens, s.temperature) for s in teacher.settings}


def test_a_refinement_teacher_of_its_own_refines_with_its_own_length_and_temperature(tiny_cot, cot_config, monkeypatch):
    from recbole_mllmr1.cot import build

    _, model, train_dataset, _, _ = tiny_cot
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    alone = RecordingTeacher("notes-teacher")
    default = build_mixed_grained_dataset(cot_config(cot_num_samples=4), model, train_dataset, show_progress=False, teacher=alone)
    assert _steps(alone) == ({"pseudo-CoT", "refinement"}, {(48, 0.0)})  # one teacher, one length and temperature

    notes, refiner = RecordingTeacher("notes-teacher"), RecordingTeacher("reasoning-teacher")
    made = []
    monkeypatch.setattr(build, "make_teacher", lambda *args: made.append(args) or refiner)
    config = cot_config(
        cot_refine_teacher="http://localhost:8000", cot_refine_teacher_model="deepseek-r1-0528",
        cot_refine_max_new_tokens=300, cot_refine_temperature=0.1,
    )
    official = build_mixed_grained_dataset(config, model, train_dataset, show_progress=False, teacher=notes)
    assert [(spec, str(device), batch, name) for spec, device, batch, name in made] == [
        ("http://localhost:8000", "cpu", config["cot_batch_size"], "deepseek-r1-0528")
    ]
    assert notes.conversations == []  # the same notes teacher: its pseudo-CoTs come from the first build's cache
    assert _steps(refiner) == ({"refinement"}, {(300, 0.1)})
    assert [m for m in refiner.conversations] == [m for m in alone.conversations if m[0]["content"] == REFINE_SYSTEM]
    assert official != default  # the refinement teacher is part of the file's fingerprint


# ---- cot_placement ---------------------------------------------------------------------------
def _answer_alone(row):
    return row["completion"][0]["content"] == f"<answer>{row['target_title']}</answer>"


def test_input_placement_shows_the_rationale_in_a_share_of_sft_prompts_and_trains_the_answer_alone(tiny_cot, cot_config, tmp_path, monkeypatch):
    _, model, train_dataset, _, _ = tiny_cot
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    official = dict(cot_num_samples=8, train_samples=12, cot_min_gain=-100.0, cot_placement="input", cot_input_share_sft=0.5)  # all 8 reliable
    path = build_mixed_grained_dataset(cot_config(**official), model, train_dataset, show_progress=False, teacher=ScriptedTeacher())
    rows = read_jsonl(path)
    shown = [row for row in rows if REFERENCE_HEADER in row["prompt"][-1]["content"]]
    assert len(rows) == 12 and all(_answer_alone(row) for row in rows)  # no row added, no reasoning trained
    assert len(shown) == 4 and all(row["kind"] == "cot" and "1. Preference signals:" in row["prompt"][-1]["content"] for row in shown)
    again = build_mixed_grained_dataset(
        cot_config(cot_cache_dir=str(tmp_path / "again")), model, train_dataset, show_progress=False, teacher=ScriptedTeacher()
    )
    assert read_jsonl(again) == rows  # seeded

    default = read_jsonl(
        build_mixed_grained_dataset(cot_config(cot_placement="output"), model, train_dataset, show_progress=False, teacher=ScriptedTeacher())
    )
    assert len(default) == 12 + 3  # round(cot_ratio 0.25 x 12) CoT rows added, reasoning in the completion
    assert not any(REFERENCE_HEADER in row["prompt"][-1]["content"] for row in default)
    assert sum(row["completion"][0]["content"].startswith("<think>") for row in default) == 3


def test_input_placement_shows_the_rationale_in_a_share_of_grpo_prompts(tiny_cot, cot_config, monkeypatch):
    from recbole_mllmr1.cot import build

    _, model, train_dataset, _, _ = tiny_cot
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    monkeypatch.setattr(build, "make_teacher", lambda *args, **kwargs: pytest.fail("cot_placement: output runs no teacher for GRPO"))
    config = cot_config(train_samples=None, train_sample_per_user=True, cot_num_samples=None, cot_min_gain=-100.0, cot_input_share_grpo=0.5)
    plain = stages.grpo_records(config, model, train_dataset)
    assert not any(REFERENCE_HEADER in record["prompt"][-1]["content"] for record in plain)

    monkeypatch.setattr(build, "make_teacher", lambda *args, **kwargs: ScriptedTeacher())
    records = stages.grpo_records(cot_config(cot_placement="input"), model, train_dataset)
    shown = [i for i, record in enumerate(records) if REFERENCE_HEADER in record["prompt"][-1]["content"]]
    assert len(records) == 30 and len(shown) == 15  # one sample per user, each with a rationale; half show it
    for i, (record, without) in enumerate(zip(records, plain)):
        assert record["target_title"] == without["target_title"] and record["candidate_titles"] == without["candidate_titles"]
        assert (record["prompt"] == without["prompt"]) is (i not in shown)
    assert [r["prompt"] for r in stages.grpo_records(config, model, train_dataset)] == [r["prompt"] for r in records]  # seeded


def test_no_switch_reaches_a_validation_or_test_prompt(tiny_cot, cot_config, monkeypatch):
    from recbole_mllmr1.cot import build
    from tests.test_model import _eval_rows

    _, model, train_dataset, valid_dataset, test_dataset = tiny_cot
    monkeypatch.setattr(model, "title_log_probs", PromptHashScorer().log_probs)
    monkeypatch.setattr(build, "make_teacher", lambda *args, **kwargs: ScriptedTeacher())
    config = cot_config(
        train_samples=None, train_sample_per_user=True, cot_num_samples=None, cot_min_gain=-100.0,
        cot_placement="input", cot_input_share_sft=1.0, cot_input_share_grpo=1.0, cot_refine_sees_target=True,
    )
    stages.grpo_records(config, model, train_dataset)  # builds the CoT files with every official switch on

    prompts = []
    recording = PromptHashScorer()
    monkeypatch.setattr(recording, "log_probs", lambda batch, titles: prompts.extend(batch) or PromptHashScorer().log_probs(batch, titles))
    monkeypatch.setattr(model, "title_log_probs", recording.log_probs)
    for dataset in (valid_dataset, test_dataset):
        for row in range(5):
            target = int(dataset.inter_feat[model.ITEM_ID][row])
            model.predict(_eval_rows(model, dataset, row, [target] + [i for i in range(1, 6) if i != target][:4]))
    assert len(prompts) >= 10
    assert not any(REFERENCE_HEADER in prompt or "<think>" in prompt or "Preference signals" in prompt for prompt in prompts)


# ---- the switches' rules ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("cot_placement", "prompt", "one of 'output', 'input'"),
        ("cot_input_share_sft", 1.5, "a number >= 0 and <= 1"),
        ("cot_input_share_grpo", -0.1, "a number >= 0 and <= 1"),
        ("cot_refine_sees_target", "yes", "True or False"),
        ("train_sample_per_user", 1, "True or False"),
        ("grpo_top_p", 0, "a number > 0 and <= 1"),
        ("lr_scheduler_type", "cosine_with_restarts", "one of 'constant', 'linear', 'cosine'"),
        ("sft_completion_only_loss", "no", "True or False"),
        ("cot_refine_teacher", "", "a non-empty string, or ~"),
        ("cot_refine_max_new_tokens", 0, "an int >= 1, or ~"),
        ("cot_refine_temperature", -0.1, "a number >= 0, or ~"),
        ("recommender_image_text", "no", "True or False"),
    ],
)
def test_a_wrong_switch_value_fails_at_run_start_with_what_is_allowed(tiny_data_path, key, value, allowed):
    from recbole_mllmr1.settings import SettingsError, check_settings
    from tests.test_settings import mllmrecr1_config

    with pytest.raises(SettingsError) as error:
        check_settings(mllmrecr1_config(tiny_data_path, **{key: value}))
    assert f"[{key}] = {value!r}" in str(error.value) and allowed in str(error.value)


@pytest.mark.parametrize(
    "run, refused",
    [
        ({"stages": ["sft", "grpo"], "sft_data": "mixed"}, False),
        ({"stages": ["grpo"], "cot_placement": "input", "cot_input_share_grpo": 0.05}, False),
        ({"stages": ["sft", "grpo"], "sft_data": "plain"}, True),
        ({"stages": [], "use_image_text": True}, True),
        ({"stages": [], "use_image_text": False}, False),  # no image text anywhere: nothing left unused
    ],
    ids=["sft-mixed", "grpo-input", "sft-plain", "zero-shot", "zero-shot-no-image-text"],
)
def test_teacher_only_image_text_needs_a_run_that_calls_the_teacher(tiny_data_path, run, refused):
    from recbole_mllmr1.settings import SettingsError, check_settings
    from tests.test_settings import mllmrecr1_config

    config = mllmrecr1_config(tiny_data_path, **{"use_image_text": True, **run, "recommender_image_text": False})
    if refused:
        with pytest.raises(SettingsError, match=r"\[recommender_image_text\] = False .*never calls"):
            check_settings(config)
    else:
        check_settings(config)
