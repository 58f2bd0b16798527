"""Model and trainer lookup: the plugin's classes first, then RecBole's (the RecBole-GNN pattern)."""
import importlib
import os
import re

from recbole.utils import get_model as get_recbole_model
from recbole.utils import get_trainer as get_recbole_trainer

_PLUGIN_FAMILIES = ("recbole_mllmr1.model.sequential_recommender",)
_RECBOLE_FAMILIES = tuple(
    f"recbole.model.{family}"
    for family in (
        "general_recommender",
        "context_aware_recommender",
        "sequential_recommender",
        "knowledge_aware_recommender",
        "exlib_recommender",
    )
)


def available_models():
    """Every model name ``get_model`` accepts, the plugin's and RecBole's.

    Read from the source files (``class <Name>`` in ``<name>.py``) rather than by importing
    every model, some of which need optional libraries.
    """
    names = set()
    for package in _PLUGIN_FAMILIES + _RECBOLE_FAMILIES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for file in os.listdir(folder):
                stem, ext = os.path.splitext(file)
                if ext != ".py" or stem.startswith("_"):
                    continue
                with open(os.path.join(folder, file), encoding="utf-8") as source:
                    names.update(
                        name for name in re.findall(r"^class (\w+)\(", source.read(), re.M)
                        if name.lower() == stem
                    )
    return sorted(names)


def get_model(model_name):
    """Return the model class called ``model_name``, looking in the plugin before RecBole."""
    for package in _PLUGIN_FAMILIES:
        module_path = f"{package}.{model_name.lower()}"
        if importlib.util.find_spec(module_path) is not None:
            module = importlib.import_module(module_path)
            if hasattr(module, model_name):
                return getattr(module, model_name)
    try:
        return get_recbole_model(model_name)
    except (ValueError, AttributeError):
        raise ValueError(
            f"`model_name` [{model_name}] is not the name of an existing model. "
            f"Available models: {', '.join(available_models())}"
        ) from None


def get_trainer(model_type, model_name):
    """Return ``<Model>Trainer`` from the plugin when it defines one, else RecBole's choice."""
    plugin_trainers = importlib.import_module("recbole_mllmr1.trainer")
    if hasattr(plugin_trainers, f"{model_name}Trainer"):
        return getattr(plugin_trainers, f"{model_name}Trainer")
    return get_recbole_trainer(model_type, model_name)
