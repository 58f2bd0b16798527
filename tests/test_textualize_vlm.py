"""The ``vlm`` backend on a tiny random-weight LLaVA built here (plumbing only), and the ``vllm`` backend's
request building and missing-vLLM error (vLLM itself cannot run on these CPU machines)."""

import importlib.util
import subprocess
import sys

import pytest
import torch
from PIL import Image

from recbole_mllmr1.textualize import DEFAULT_CAPTION_PROMPT, textualize_images
from recbole_mllmr1.textualize.caption import caption_prompt_text, clean_caption
from recbole_mllmr1.textualize.vllm_backend import build_requests
from recbole_mllmr1.textualize.vlm import VLMDescriber

_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|> {{ message['role'] }} "
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image> {% else %}{{ part['text'] }} {% endif %}"
    "{% endfor %}"
    "<|im_end|> {% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
_WORDS = "a the red blue green dark bright poster image light shadow face sky night warm calm bold soft mood".split()


def _tiny_tokenizer():
    """A word-level tokenizer made in code: no hub, no download."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>", "<image>"]
    vocab = {token: index for index, token in enumerate(specials + _WORDS + ["user", "assistant"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<image>"],
    )


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    """A 2-layer LLaVA (CLIP vision tower + Llama text model) with random weights, saved like a hub checkpoint."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tokenizer = _tiny_tokenizer()
    vision = CLIPVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config)
    # 28 px / 14 px patches = 4 image tokens per image (CLS added by the tower, dropped by "default").
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}),
        tokenizer=tokenizer,
        chat_template=_CHAT_TEMPLATE,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    folder = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return str(folder)


@pytest.fixture
def three_images(tmp_path):
    paths = {}
    for item, (size, colour) in enumerate([((40, 60), "red"), ((90, 50), "blue"), ((64, 64), "green")], start=1):
        paths[str(item)] = tmp_path / f"{item}.png"
        Image.new("RGB", size, colour).save(paths[str(item)])
    return paths


def test_vlm_captions_every_image_in_batches(tiny_vlm_dir, three_images, tmp_path, monkeypatch):
    batch_sizes = []
    original = VLMDescriber.describe

    def counting_describe(self, images):
        batch_sizes.append(len(images))
        return original(self, images)

    monkeypatch.setattr(VLMDescriber, "describe", counting_describe)

    result = textualize_images(
        three_images, backend="vlm", model=tiny_vlm_dir, cache_dir=tmp_path / "cache", batch_size=2, show_progress=False
    )

    assert batch_sizes == [2, 1]
    assert set(result.texts) == set(three_images) and not result.failures
    assert all(isinstance(text, str) and text.strip() for text in result.texts.values())
    assert all(len(text.split()) <= 50 for text in result.texts.values())


def test_vlm_is_deterministic_and_prompt_change_redescribes(tiny_vlm_dir, three_images, tmp_path):
    first = textualize_images(
        three_images, backend="vlm", model=tiny_vlm_dir, cache_dir=tmp_path / "a", show_progress=False
    )
    second = textualize_images(
        three_images, backend="vlm", model=tiny_vlm_dir, cache_dir=tmp_path / "b", show_progress=False
    )
    assert first.texts == second.texts and second.computed == 3

    same_prompt = textualize_images(
        three_images, backend="vlm", model=tiny_vlm_dir, cache_dir=tmp_path / "a", show_progress=False
    )
    assert (same_prompt.reused, same_prompt.computed) == (3, 0)
    new_prompt = textualize_images(
        three_images,
        backend="vlm",
        model=tiny_vlm_dir,
        prompt="Name the colours.",
        cache_dir=tmp_path / "a",
        show_progress=False,
    )
    assert (new_prompt.reused, new_prompt.computed) == (0, 3)


def test_caption_prompt_uses_the_model_chat_template(tiny_vlm_dir):
    from transformers import AutoProcessor

    text = caption_prompt_text(AutoProcessor.from_pretrained(tiny_vlm_dir), DEFAULT_CAPTION_PROMPT)
    assert text.startswith("<|im_start|> user <image> ")
    assert DEFAULT_CAPTION_PROMPT in text and text.rstrip().endswith("assistant")
    assert "50 words" in DEFAULT_CAPTION_PROMPT and "title" in DEFAULT_CAPTION_PROMPT


def test_clean_caption_keeps_one_line_of_at_most_50_words():
    assert clean_caption("  A red\n\nposter  ") == "A red poster"
    assert len(clean_caption("word " * 80).split()) == 50


def test_vllm_requests_pair_the_chat_prompt_with_each_image(tiny_vlm_dir):
    from transformers import AutoProcessor

    prompt_text = caption_prompt_text(AutoProcessor.from_pretrained(tiny_vlm_dir), DEFAULT_CAPTION_PROMPT)
    images = [Image.new("RGB", (10, 10), "red"), Image.new("RGB", (20, 10), "blue")]
    requests = build_requests(prompt_text, images)
    assert [request["prompt"] for request in requests] == [prompt_text, prompt_text]
    assert [request["multi_modal_data"]["image"] for request in requests] == images


def test_vllm_backend_without_vllm_says_how_to_install(three_images, tmp_path, monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vllm" else real_find_spec(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'recbole-mllmr1\[vllm\]'"):
        textualize_images(three_images, backend="vllm", cache_dir=tmp_path, show_progress=False)
    assert not (tmp_path / "ml-100k.vllm.jsonl").exists()


def test_vllm_is_not_imported_at_import_time():
    code = (
        "import sys, recbole_mllmr1.textualize, recbole_mllmr1.textualize.vllm_backend, recbole_mllmr1.textualize.cli; "
        "print('vllm' in sys.modules)"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
