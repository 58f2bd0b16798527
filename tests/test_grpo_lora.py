"""``grpo_lora: fresh``, the official code's LoRA per stage: GRPO trains a new adapter stacked on SFT's best
adapter, which stays applied and frozen; the KL reference is the SFT model; every stage's adapter still loads
into the run's model afterwards, and a resumed run, ``recommend`` and ``export`` rebuild base + SFT + GRPO."""
import copy
import glob
import os
import shutil

import pytest
import torch
from safetensors.torch import load_file
from trl.trainer.utils import use_adapter

from recbole_mllmr1.config import Config
from recbole_mllmr1.quick_start import run_recbole
from recbole_mllmr1.sequential_model import TEXT_ONLY
from recbole_mllmr1.settings import SettingsError, check_settings
from recbole_mllmr1.training import adapters, settings, stages
from recbole_mllmr1.training.adapters import GRPO_ADAPTER, SFT_ADAPTER
from recbole_mllmr1.training.stacked_grpo import REFERENCE_ADAPTER, StackedGRPOTrainer
from tests.conftest import TINY_CONFIG
from tests.test_model import build
from tests.test_settings import mllmrecr1_config
from tests.test_training import TRAINING

# GRPO's adapter differs from SFT's in rank, scale and modules: the two are independent.
FRESH = {"grpo_lora": "fresh", "grpo_lora_r": 8, "grpo_lora_alpha": 16, "grpo_lora_target_modules": ["q_proj", "v_proj", "gate_proj"]}
GRPO_STEP = {
    **FRESH, "grpo_beta": 0.1, "grpo_steps": 1, "grpo_batch_size": 4, "grpo_num_generations": 4, "grpo_max_completion_length": 6,
    "grpo_learning_rate": 0.01, "train_samples": 4, "train_candidates": 5, "eval_step": 1,
    # No dropout: the policy's and the reference's forward passes compute the same SFT model at the first step.
    "lora_dropout": 0.0,
}


def position_reward(completions, **kwargs):
    """Distinct rewards within every group: each GRPO step has advantages to follow."""
    return [float(i) for i in range(len(completions))]


def _weights(peft_model, adapter):
    return {name: p.detach().clone() for name, p in peft_model.named_parameters() if f".{adapter}." in name}


@torch.no_grad()
def _logits(llm, input_ids):
    was_training = llm.training
    llm.eval()
    logits = llm(input_ids=input_ids).logits
    llm.train(was_training)
    return logits


def _input_ids(model):
    return model.tokenizer("Red Night River 12 and Blue Star 7", return_tensors="pt").input_ids


# ---- settings ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, allowed",
    [
        ("grpo_lora", "merged", "one of 'continue', 'fresh'"),
        ("grpo_lora_r", 0, "an int >= 1, or ~ (None on the command line) for lora_r"),
        ("grpo_lora_alpha", 0, "a number > 0, or ~ (None on the command line) for lora_alpha"),
        ("grpo_lora_target_modules", [], "a list of strings, at least one, or ~ (None on the command line) for lora_target_modules"),
    ],
)
def test_a_wrong_grpo_lora_value_names_the_key_the_value_and_what_is_allowed(tiny_data_path, key, value, allowed):
    with pytest.raises(SettingsError) as error:
        check_settings(mllmrecr1_config(tiny_data_path, **{key: value}))
    assert f"[{key}] = {value!r}" in str(error.value) and allowed in str(error.value)


def test_the_fresh_adapter_takes_its_own_keys_or_the_sft_adapters_in_the_same_layers():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "lora_last_layers": 2})
    assert config["grpo_lora"] == "continue"  # today's behaviour by default
    sft, fresh = settings.lora_config(config, 4), settings.grpo_lora_config(config, 4)
    assert (fresh.r, fresh.lora_alpha, fresh.target_modules) == (sft.r, sft.lora_alpha, sft.target_modules)
    assert fresh.layers_to_transform == sft.layers_to_transform == [2, 3] and fresh.lora_dropout == sft.lora_dropout
    assert sft.modules_to_save == ["item_projector"] and fresh.modules_to_save is None  # the projector stays SFT's
    for key, value in FRESH.items():
        config[key] = value
    own = settings.grpo_lora_config(config, 4)
    assert (own.r, own.lora_alpha, set(own.target_modules)) == (8, 16, {"q_proj", "v_proj", "gate_proj"})


# ---- one GRPO step, and its resume ---------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return str(tmp_path_factory.mktemp("saved"))  # one SASRec, trained once for every model of this module


def _sft_model(tiny_data_path, tiny_llm_dir, saved):
    """A grounded model (SASRec, item tokens) whose adapter holds seeded non-zero weights, as if SFT had
    trained it: the SFT model differs from the base model, its projector from the untrained one."""
    config, model, train_data, _, _ = build("tiny", {
        **TINY_CONFIG, **GRPO_STEP, "data_path": tiny_data_path, "llm_path": tiny_llm_dir, "checkpoint_dir": saved,
    })
    stages.attach_lora(config, model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.language_model.named_parameters():
            if f".{SFT_ADAPTER}." in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))
    return config, model, train_data._dataset


def _train_grpo(config, model, train_dataset, stage_dir, monkeypatch):
    """run_grpo with the position reward; returns what it saw: ``optimized`` (the names of the parameters
    in the optimizer), ``kl`` (each logged KL), ``grpo_at_start`` and ``active_at_start`` (GRPO's adapter and
    the active adapters when training starts) and ``output`` (the TrainOutput)."""
    from transformers import TrainerCallback

    seen = {"optimized": set(), "kl": []}
    create_optimizer = StackedGRPOTrainer.create_optimizer

    def recording(trainer, *args, **kwargs):
        optimizer = create_optimizer(trainer, *args, **kwargs)
        in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
        seen["optimized"] |= {name for name, p in trainer.model.named_parameters() if id(p) in in_optimizer}
        return optimizer

    class Watch(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen["grpo_at_start"] = _weights(model, GRPO_ADAPTER)
            seen["active_at_start"] = list(model.base_model.active_adapters)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "kl" in logs:
                seen["kl"].append(logs["kl"])

    monkeypatch.setattr(StackedGRPOTrainer, "create_optimizer", recording)
    monkeypatch.setattr(stages, "get_rewards", lambda names: [position_reward])
    records = stages.grpo_records(config, model, train_dataset)
    seen["output"] = stages.run_grpo(config, model, records, stage_dir, callbacks=[Watch()])
    return seen


def _as_saved(weights):
    """GRPO adapter weights under the names PEFT saves them with (no adapter name)."""
    return {name.replace(f".{GRPO_ADAPTER}.", "."): w for name, w in weights.items()}


def test_a_grpo_step_trains_only_the_fresh_adapter_against_the_sft_model(tiny_data_path, tiny_llm_dir, saved, tmp_path, monkeypatch):
    config, model, train_dataset = _sft_model(tiny_data_path, tiny_llm_dir, saved)
    llm, input_ids = model.language_model, _input_ids(model)
    sft = _weights(llm, SFT_ADAPTER)
    with llm.disable_adapter():
        base_logits = _logits(llm, input_ids)
    sft_logits = _logits(llm, input_ids)
    assert not torch.allclose(base_logits, sft_logits, atol=1e-3)

    seen = _train_grpo(config, model, train_dataset, str(tmp_path / "grpo"), monkeypatch)

    assert seen["optimized"] == set(_weights(llm, GRPO_ADAPTER)) and seen["optimized"]  # GRPO's adapter alone trains
    assert seen["active_at_start"] == [GRPO_ADAPTER, SFT_ADAPTER]
    assert all(torch.equal(p, sft[name]) for name, p in _weights(llm, SFT_ADAPTER).items())  # SFT's, projector included
    grpo = _weights(llm, GRPO_ADAPTER)
    assert any(torch.count_nonzero(w) for name, w in grpo.items() if "lora_B" in name)  # GRPO's moved from the identity
    assert llm.base_model.active_adapters == [GRPO_ADAPTER, SFT_ADAPTER]
    # The KL reference is the SFT model: TRL's "ref" adapter is a copy of SFT's, scored alone. At the first
    # step GRPO's adapter is still the identity, so policy and reference agree: a base-model reference, or a
    # policy without the SFT adapter under it, would give a KL far from 0.
    reference = _weights(llm, REFERENCE_ADAPTER)
    assert all(torch.equal(w, sft[name.replace(f".{REFERENCE_ADAPTER}.", f".{SFT_ADAPTER}.")]) for name, w in reference.items())
    with use_adapter(llm, REFERENCE_ADAPTER):  # TRL's reference pass
        assert torch.equal(_logits(llm, input_ids), sft_logits)
    assert llm.base_model.active_adapters == [GRPO_ADAPTER]  # TRL restores one adapter by name...
    adapters.stack_grpo_adapter(llm)  # ...and StackedGRPOTrainer puts the stack back
    assert len(seen["kl"]) == 1 and abs(seen["kl"][0]) < 1e-6
    # After the step the model is base + SFT + GRPO: what merging both adapters into the weights computes.
    trained_logits = _logits(llm, input_ids)
    merged = copy.deepcopy(llm).merge_and_unload()
    assert torch.allclose(_logits(merged, input_ids), trained_logits, atol=1e-5)
    assert not torch.allclose(trained_logits, sft_logits, atol=1e-4)


def test_a_resumed_grpo_stage_reloads_both_adapters_and_trains_the_fresh_one_only(
    tiny_data_path, tiny_llm_dir, saved, tmp_path, monkeypatch
):
    stage_dir = str(tmp_path / "grpo")
    config, model, train_dataset = _sft_model(tiny_data_path, tiny_llm_dir, saved)
    _train_grpo(config, model, train_dataset, stage_dir, monkeypatch)
    (checkpoint,) = glob.glob(os.path.join(stage_dir, "checkpoint-*"))
    after_step_1 = load_file(os.path.join(checkpoint, GRPO_ADAPTER, adapters.ADAPTER_FILE))

    # A new process: the model is built again with SFT's adapter, and GRPO resumes at step 1 of 2.
    config, model, train_dataset = _sft_model(tiny_data_path, tiny_llm_dir, saved)
    config["grpo_steps"] = 2
    llm = model.language_model
    sft = _weights(llm, SFT_ADAPTER)
    seen = _train_grpo(config, model, train_dataset, stage_dir, monkeypatch)

    assert seen["output"].global_step == 2
    assert seen["optimized"] == set(_weights(llm, GRPO_ADAPTER))
    assert seen["active_at_start"] == [GRPO_ADAPTER, SFT_ADAPTER]  # Transformers' resume activated GRPO's alone
    at_start = _as_saved(seen["grpo_at_start"])
    assert at_start.keys() == after_step_1.keys() and all(torch.equal(at_start[name], after_step_1[name]) for name in at_start)
    assert all(torch.equal(p, sft[name]) for name, p in _weights(llm, SFT_ADAPTER).items())
    assert llm.base_model.active_adapters == [GRPO_ADAPTER, SFT_ADAPTER]
    after_step_2 = _as_saved(_weights(llm, GRPO_ADAPTER))
    assert any(not torch.equal(after_step_2[name], after_step_1[name]) for name in after_step_1 if "lora_B" in name)


# ---- a whole run: each stage's adapter, resume, recommend and export -----------------------
@pytest.fixture(scope="module")
def fresh_run(tiny_data_path, tiny_llm_dir, tmp_path_factory):
    """SFT then fresh GRPO (text only, grpo_beta 0.1), 2 steps each, rewarded by position so that GRPO trains:
    (run_recbole's result, the trainer, the run folder, the run's config dict)."""
    saved = str(tmp_path_factory.mktemp("saved"))
    config_dict = {
        **TRAINING, **TEXT_ONLY, **FRESH, "grpo_beta": 0.1, "grpo_learning_rate": 0.01, "eval_user_sample": 4,
        "data_path": tiny_data_path, "checkpoint_dir": saved, "llm_path": tiny_llm_dir,
    }
    trainers = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, "get_rewards", lambda names: [position_reward])
        result = run_recbole("MLLMRecR1", "tiny", config_dict=config_dict, trainer_hook=trainers.append)
    (run_dir,) = glob.glob(os.path.join(saved, "MLLMRecR1-tiny-*"))
    return result, trainers[0], run_dir, config_dict


def test_every_stage_adapter_loads_into_the_run_model_after_a_fresh_grpo_run(fresh_run):
    result, trainer, run_dir, _ = fresh_run
    assert [stage for stage in result["stage_results"]] == ["zero-shot", "sft", "grpo"]
    folder = {stage: os.path.join(run_dir, stage, "best_adapter") for stage in ("zero-shot", "sft", "grpo")}
    assert [os.path.isdir(os.path.join(folder[stage], GRPO_ADAPTER)) for stage in folder] == [False, False, True]
    # GRPO's folder keeps SFT's best adapter as it was: frozen through GRPO.
    sft, under_grpo = (load_file(os.path.join(folder[stage], adapters.ADAPTER_FILE)) for stage in ("sft", "grpo"))
    assert sft.keys() == under_grpo.keys() and all(torch.equal(sft[name], under_grpo[name]) for name in sft)

    llm, input_ids = trainer.model.language_model, _input_ids(trainer.model)
    with llm.disable_adapter():
        base_logits = _logits(llm, input_ids)
    logits = {}
    for stage in ("zero-shot", "sft", "grpo"):
        trainer.load_adapter(folder[stage])
        logits[stage] = _logits(llm, input_ids)
        expected = [GRPO_ADAPTER, SFT_ADAPTER] if stage == "grpo" else [SFT_ADAPTER]
        assert llm.base_model.active_adapters == expected, stage
    assert torch.equal(logits["zero-shot"], base_logits)  # the untrained adapter is the identity
    assert not torch.allclose(logits["sft"], logits["grpo"], atol=1e-4)
    trainer.load_adapter(folder["sft"])
    assert torch.equal(_logits(llm, input_ids), logits["sft"])  # GRPO's adapter is off again


def test_a_rerun_resumes_a_fresh_grpo_run_without_training(fresh_run, monkeypatch):
    result, _, _, config_dict = fresh_run
    calls = []
    monkeypatch.setattr(stages, "run_sft", lambda *args, **kwargs: calls.append("sft"))
    monkeypatch.setattr(stages, "run_grpo", lambda *args, **kwargs: calls.append("grpo"))
    again = run_recbole("MLLMRecR1", "tiny", config_dict=config_dict)
    assert calls == [] and again["stage_results"] == result["stage_results"]


def test_recommend_and_export_rebuild_base_sft_and_grpo(fresh_run, tmp_path):
    from transformers import AutoModelForCausalLM

    from recbole_mllmr1.export import export_run
    from recbole_mllmr1.recommend import load_trained_model

    _, trainer, run_dir, config_dict = fresh_run
    # Whichever stage validated best, the run folder's best_adapter is here GRPO's.
    run_copy = str(tmp_path / os.path.basename(run_dir))
    shutil.copytree(run_dir, run_copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    shutil.rmtree(os.path.join(run_copy, "best_adapter"))
    shutil.copytree(os.path.join(run_dir, "grpo", "best_adapter"), os.path.join(run_copy, "best_adapter"))
    trainer.load_adapter(os.path.join(run_dir, "grpo", "best_adapter"))
    input_ids = _input_ids(trainer.model)
    trained_logits = _logits(trainer.model.language_model, input_ids)

    model, _ = load_trained_model(run_copy, data_path=config_dict["data_path"])
    assert model.language_model.base_model.active_adapters == [GRPO_ADAPTER, SFT_ADAPTER]
    assert torch.equal(_logits(model.language_model, input_ids), trained_logits)
    exported = AutoModelForCausalLM.from_pretrained(export_run(run_copy, str(tmp_path / "export"), data_path=config_dict["data_path"]))
    assert torch.allclose(_logits(exported, input_ids), trained_logits, atol=1e-5)
