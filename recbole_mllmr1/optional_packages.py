"""Optional packages, and the one-line error naming what is missing and how to get it.

- RecBole models that need a package RecBole itself does not install. RecBole imports them
  only deep inside a run (the exlib family in its package ``__init__``, KGAT when it builds
  its DGL graph), so a missing one surfaced as a traceback after the dataset had loaded;
  ``require_model_packages`` turns that into one line up front.
- vLLM, for GRPO rollouts, the CoT teacher and the captioning backend on a GPU machine:
  ``require_vllm`` fails before any work starts.
"""
import importlib.util

# Modules each model imports, by import name. RecBole's exlib_recommender/__init__.py imports
# lightgbm and xgboost both, so either model needs the two of them.
MODEL_PACKAGES = {
    "LightGBM": ("lightgbm", "xgboost"),
    "XGBoost": ("lightgbm", "xgboost"),
    "NCL": ("faiss",),
    "KGAT": ("dgl",),
    "KGIN": ("torch_scatter",),
    "MCCLK": ("torch_scatter",),
}

_MODELS_EXTRA = 'pip install "recbole-mllmr1[models]"'
_INSTALL_HINTS = {
    "lightgbm": _MODELS_EXTRA,
    "xgboost": _MODELS_EXTRA,
    "faiss": _MODELS_EXTRA,
    # DGL's PyPI wheels stop at dgl 2.1, whose import needs torchdata's datapipes (gone
    # since torchdata 0.10, which torch >= 2.5 requires): no extra can bring it here.
    "dgl": "install a DGL build that matches your torch version (https://www.dgl.ai/pages/start.html)",
    # PyPI has only torch-scatter's source; PyG publishes wheels per torch version.
    "torch_scatter": "install torch-scatter for your torch version (https://data.pyg.org/whl/, or build it from source)",
}


class MissingModelPackage(ImportError):
    """A RecBole model's optional package is not installed."""


def require_model_packages(model_name):
    """Raise :class:`MissingModelPackage` naming what ``model_name`` needs and how to get it."""
    missing = [package for package in MODEL_PACKAGES.get(model_name, ()) if importlib.util.find_spec(package) is None]
    if missing:
        hints = sorted({_INSTALL_HINTS[package] for package in missing})
        raise MissingModelPackage(
            f"model [{model_name}] needs the package(s) {', '.join(missing)}, not installed here; {'; '.join(hints)}"
        )


VLLM_INSTALL_HINT = "pip install 'recbole-mllmr1[vllm]'"


def require_vllm(feature, alternatives):
    """Raise ImportError when vLLM is missing: ``feature`` needs it, ``alternatives`` do without."""
    if importlib.util.find_spec("vllm") is None:
        raise ImportError(
            f"{feature} needs vLLM, which is not installed: on a GPU machine run `{VLLM_INSTALL_HINT}`, or {alternatives}."
        )
