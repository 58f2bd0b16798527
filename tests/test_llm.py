"""The default model, converted offline, and llm_path resolution."""
import json
import os

import pytest
import torch

from recbole_mllmr1 import llm


@pytest.mark.slow
def test_default_model_is_converted_to_a_plain_checkpoint(default_llm_dir):
    with open(os.path.join(default_llm_dir, "config.json")) as config_file:
        config = json.load(config_file)
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert llm.resolve_llm_path("smollm2-135m") == default_llm_dir == llm.resolve_llm_path(None)


@pytest.mark.slow
def test_converted_checkpoint_trains(default_llm_dir):
    model = llm.load_causal_lm(default_llm_dir, "cpu")
    assert model.dtype == torch.float32 and not getattr(model, "is_quantized", False)
    tokenizer = llm.load_tokenizer(default_llm_dir)
    batch = tokenizer(["Hello there"], return_tensors="pt")
    loss = model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert model.model.embed_tokens.weight.grad is not None


@pytest.mark.slow
def test_conversion_keeps_the_gguf_logits(tmp_path, default_llm_dir):
    from transformers import AutoModelForCausalLM

    target = llm.convert_default_llm(str(tmp_path / "converted"))
    folder = os.path.dirname(llm._gguf_source() + os.sep)
    gguf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=llm._GGUF_FILE, dtype=torch.float32)
    converted = llm.load_causal_lm(target, "cpu")
    ids = torch.tensor([[1, 504, 3458, 314, 260]])
    with torch.no_grad():
        assert torch.allclose(gguf(ids).logits, converted(ids).logits, atol=1e-5)
    assert not any(name.startswith(".converting-") for name in os.listdir(tmp_path))


def test_local_directories_and_hub_ids_pass_through(tmp_path):
    assert llm.resolve_llm_path(str(tmp_path)) == str(tmp_path)
    assert llm.resolve_llm_path("Qwen/Qwen2.5-1.5B-Instruct") == "Qwen/Qwen2.5-1.5B-Instruct"


def test_a_missing_path_gets_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"llm_path \[.*nowhere\] is neither a local directory nor a HF model id"):
        llm.resolve_llm_path(str(tmp_path / "nowhere"))


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECBOLE_MLLMR1_CACHE", str(tmp_path))
    assert llm.cache_root() == str(tmp_path)
