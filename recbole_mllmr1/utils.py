"""Model lookup by name: the plugin's models first, then RecBole's (the RecBole-GNN pattern).

A leaf that every layer may import: it imports a model's module only when asked for it by
name, never at import time. The trainer lookup is :func:`recbole_mllmr1.trainer.get_trainer`.
"""
import importlib
import os
import re

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
