"""The one place where RecBole 1.2.1 is adapted to today's numpy / torch (and to torchrun), and TRL to the CPU.

Each fix names the line it is for and when it can go; the RecBole fixes are applied
once, when ``recbole_mllmr1.config`` is imported (and by tests/conftest.py), the TRL one
by the training stages, which import TRL (3-4 s that a scoring-only run need not pay). Two more
incompatibilities are handled without patching: pandas 3 (``Dataset._remap`` on
``token_seq`` fields, silent ``fillna(inplace=True)``) by the ``pandas<3`` pin in setup.py,
and ray 2.6.3 (needs ``pkg_resources`` and ``np.bool8``) by never importing
``recbole.quick_start``, the only module that imports it; RecBole uses ray only for
hyper-parameter search.
"""
import importlib
import os
import types

import numpy as np
import torch

# numpy 2 removed these aliases; recbole/config/configurator.py:625-635
# (Config.compatibility_settings) reads them to define np.float, np.long, ... which
# recbole/evaluator/metrics.py and model/layers.py still use. Remove with RecBole > 1.2.1.
_NUMPY_ALIASES = {"float_": np.float64, "complex_": np.complex128, "unicode_": np.str_}


def restore_numpy_aliases():
    for name, value in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, value)


class _TrustedCheckpointTorch(types.ModuleType):
    """``torch`` as seen by RecBole's checkpoint loaders, with ``load`` defaulting to weights_only=False.

    torch >= 2.6 loads with weights_only=True, which rejects the config object RecBole
    pickles into its own checkpoints (trainer.py:323 resume_checkpoint, :583
    load_best_model; s3rec.py:120 and ract.py:75/84 loading a pre-training run's file).
    Those files are written by RecBole runs, so they are trusted. Scoped to those
    modules only; torch.load elsewhere keeps the safe default.
    Remove when RecBole passes weights_only itself.
    """

    def __init__(self):
        super().__init__("torch")

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return torch.load(*args, **kwargs)


# Every RecBole module that loads a checkpoint RecBole wrote: the trainer, and the models
# that start from a pre-training run's file (``pre_model_path``, ``mf_pretrain_path``, ...).
_CHECKPOINT_LOADERS = (
    "recbole.trainer.trainer",
    "recbole.model.sequential_recommender.s3rec",
    "recbole.model.general_recommender.ract",
    "recbole.model.general_recommender.convncf",
    "recbole.model.general_recommender.nais",
    "recbole.model.general_recommender.neumf",
    "recbole.model.context_aware_recommender.kd_dagfm",
)


def trust_recbole_checkpoints():
    for module_name in _CHECKPOINT_LOADERS:
        module = importlib.import_module(module_name)
        if not isinstance(module.torch, _TrustedCheckpointTorch):
            module.torch = _TrustedCheckpointTorch()


def race_free_ensure_dir(dir_path):
    """recbole/utils/utils.py:44 ``ensure_dir`` checks, then creates: two processes started
    together (torchrun) both see no ``./log`` and one dies of FileExistsError in init_logger."""
    os.makedirs(dir_path, exist_ok=True)


# Every RecBole module that binds ensure_dir by name at import time.
_ENSURE_DIR_USERS = (
    "recbole.utils.utils", "recbole.utils", "recbole.utils.logger",
    "recbole.data.utils", "recbole.data", "recbole.trainer.trainer", "recbole.trainer",
)


def make_ensure_dir_race_free():
    for module_name in _ENSURE_DIR_USERS:
        importlib.import_module(module_name).ensure_dir = race_free_ensure_dir


def restore_dok_update():
    """``dok_matrix._update(dict)``: bulk-set entries without per-key checks.

    scipy 1.13 stopped making dok_matrix a dict and later removed ``_update``; RecBole
    1.2.1 builds its normalised adjacency with ``A._update(data_dict)`` in
    general_recommender/{spectralcf.py:123, gcmc.py:174, lightgcn.py:111, ngcf.py:110,
    ncl.py:131} and knowledge_aware_recommender/{kgin.py:356, mcclk.py:425}. This is
    scipy's own former body on today's storage. Remove when RecBole stops calling it.
    """
    from scipy.sparse import _dok

    if not hasattr(_dok._dok_base, "_update"):
        def _update(self, data):
            self._dict.update(data)

        _dok._dok_base._update = _update


def turn_off_anomaly_detection():
    """recbole/model/sequential_recommender/sine.py:25 calls ``torch.autograd.set_detect_anomaly(True)``
    at import, and importing any RecBole sequential model imports it (this module does, above):
    every later backward op then scans its outputs for NaN (~1,400 scans per SFT step of the main
    command: 7% of the step on one thread, up to 20% on two busy ones) and every forward op records
    its stack. Anomaly detection is a debugging tool: turn it on after
    importing the config, or use the ``torch.autograd.detect_anomaly()`` context, to debug with
    it. Remove when RecBole drops that line."""
    importlib.import_module("recbole.model.sequential_recommender.sine")
    torch.autograd.set_detect_anomaly(False)


def _labelled_rows_only(device):
    from trl.kernels.chunked_logprob import _use_triton

    return device.type == "cpu" or _use_triton(device)


def fuse_lm_head_on_labelled_positions_only():
    """TRL 1.16's fused LM head (trl/trainer/utils.py:1642, ``compact = _use_triton(device)`` in
    ``add_fused_lm_head``) projects only the positions that carry a label on CUDA and XPU, and every
    position elsewhere, so that a compiled backend (Neuron) keeps one tile shape. On CPU that means
    the 49,152-wide head, its softmax and its backward over every prompt token, which carries no
    label with ``completion_only_loss`` (SFT) nor in GRPO's loss: 40% of an SFT step of the main
    command, for ~20 scored tokens in ~400. Eager CPU compiles nothing: score the labelled rows there too,
    with the same per-row arithmetic (the unlabelled rows' log-probabilities are zero in both paths).
    With ``sft_completion_only_loss: False`` every row but the padding is labelled and both paths score the same rows.
    A TRL without the fused head has nothing to fix. Remove when TRL compacts on CPU."""
    import trl.trainer.utils

    if hasattr(trl.trainer.utils, "_use_triton"):
        trl.trainer.utils._use_triton = _labelled_rows_only


def apply():
    restore_numpy_aliases()
    restore_dok_update()
    trust_recbole_checkpoints()
    make_ensure_dir_race_free()
    turn_off_anomaly_detection()
