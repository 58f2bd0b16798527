"""Shared fixtures: tiny RecBole datasets written by the tests, and RecBole configs over them."""
import importlib.util
import os
import random

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


TINY_CONFIG = {
    "stages": [],
    "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "title", "genre"]},
    "item_meta_fields": ["genre"],
    "show_progress": False,
    "state": "WARNING",
}


@pytest.fixture(scope="session")
def tiny_data_path(tmp_path_factory):
    return write_tiny_dataset(str(tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def default_llm_dir():
    """The default model converted to a HF checkpoint (done once per cache)."""
    from recbole_mllmr1.llm import resolve_llm_path

    return resolve_llm_path(None)
