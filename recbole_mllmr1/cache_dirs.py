"""Where the plugin caches what it derives (converted LLM checkpoints, image texts, CoT files).

A leaf without heavy imports, so that ``--help`` texts can show the default folders without
loading torch.
"""
import os


def cache_root():
    """Where converted checkpoints live: ``$RECBOLE_MLLMR1_CACHE`` or ``~/.cache/recbole_mllmr1``."""
    return os.environ.get(
        "RECBOLE_MLLMR1_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "recbole_mllmr1")
    )
