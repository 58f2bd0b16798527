"""Model and trainer lookup: the plugin's classes first, then RecBole's (the RecBole-GNN pattern)."""
import importlib
import os
import re

from recbole.utils import get_trainer as get_recbole_trainer

_MODEL_PACKAGES = ("recbole_mllmr1.model.sequential_recommender",) + tuple(
    f"recbole.model.{family}"
    for family in (
        "general_recommender",
        "context_aware_recommender",
        "sequential_recommender",
        "knowledge_aware_recommender",
        "exlib_recommender",
    )
)


def _model_files():
    """``(package, module file)`` for every model module, plugin first.

    Found on disk without importing the packages: RecBole's exlib family imports
    lightgbm / xgboost in its ``__init__``, which most installs lack.
    """
    for package in _MODEL_PACKAGES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for file in sorted(os.listdir(folder)):
                if file.endswith(".py") and not file.startswith("_"):
                    yield package, os.path.join(folder, file)


def available_models():
    """Every model name ``get_model`` accepts: classes named like their module (``class SASRec`` in ``sasrec.py``)."""
    names = set()
    for _, path in _model_files():
        stem = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as source:
            names.update(name for name in re.findall(r"^class (\w+)\(", source.read(), re.M) if name.lower() == stem)
    return sorted(names)


def get_model(model_name):
    """Return the model class called ``model_name``, looking in the plugin before RecBole."""
    for package, path in _model_files():
        if os.path.basename(path) == f"{model_name.lower()}.py":
            module = importlib.import_module(f"{package}.{model_name.lower()}")
            if hasattr(module, model_name):
                return getattr(module, model_name)
    raise ValueError(
        f"`model_name` [{model_name}] is not the name of an existing model. "
        f"Available models: {', '.join(available_models())}"
    )


def get_trainer(model_type, model_name):
    """Return ``<Model>Trainer`` from the plugin when it defines one, else RecBole's choice."""
    plugin_trainers = importlib.import_module("recbole_mllmr1.trainer")
    if hasattr(plugin_trainers, f"{model_name}Trainer"):
        return getattr(plugin_trainers, f"{model_name}Trainer")
    return get_recbole_trainer(model_type, model_name)
