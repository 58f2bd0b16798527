"""Each RecBole 1.2.1 incompatibility with today's stack, TRL's CPU path, and the fix for it."""
import subprocess
import sys

import numpy as np
import pandas
import pytest
import torch
from recbole.config import Config as RecBoleConfig
from recbole.data import create_dataset, data_preparation
from recbole.model.general_recommender import Pop
from recbole.trainer import Trainer

from recbole_mllmr1 import compat


def test_numpy_aliases_that_recbole_config_reads_are_restored():
    # numpy 2 removed them; RecBole's Config.compatibility_settings reads them.
    assert np.__version__.startswith("2")
    assert np.float_ is np.float64 and np.complex_ is np.complex128 and np.unicode_ is np.str_
    config = RecBoleConfig(model=Pop, dataset="ml-100k", config_dict={"state": "WARNING"})
    assert config["model"] == "Pop"


def test_recbole_config_fails_without_the_numpy_fix(monkeypatch):
    for name in compat._NUMPY_ALIASES:
        monkeypatch.delattr(np, name)
    with pytest.raises(AttributeError):
        RecBoleConfig(model=Pop, dataset="ml-100k", config_dict={"state": "WARNING"})


@pytest.fixture(scope="module")
def pop_run(tmp_path_factory):
    config = RecBoleConfig(
        model=Pop,
        dataset="ml-100k",
        config_dict={
            "state": "WARNING",
            "checkpoint_dir": str(tmp_path_factory.mktemp("saved")),
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni9"},
            "show_progress": False,
        },
    )
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    trainer = Trainer(config, Pop(config, train_data._dataset))
    trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    return trainer, test_data


def test_load_best_model_reads_recbole_checkpoints(pop_run):
    trainer, test_data = pop_run
    result = trainer.evaluate(test_data, load_best_model=True)
    assert 0.0 < result["hit@10"] <= 1.0


def test_load_best_model_fails_without_the_torch_load_fix(pop_run, monkeypatch):
    import recbole.trainer.trainer as trainer_module

    trainer, test_data = pop_run
    monkeypatch.setattr(trainer_module, "torch", torch)
    with pytest.raises(Exception, match="weights_only"):
        trainer.evaluate(test_data, load_best_model=True)


def test_torch_load_elsewhere_keeps_its_safe_default():
    assert not isinstance(torch, compat._TrustedCheckpointTorch)
    import inspect

    assert inspect.signature(torch.load).parameters["weights_only"].default is None


def _directory_created_by_another_process_after_the_check(monkeypatch, path):
    """os.path.exists says no, then another process creates the folder before makedirs runs."""
    import os

    real_makedirs = os.makedirs

    def makedirs_after_a_concurrent_one(name, *args, **kwargs):
        real_makedirs(name, exist_ok=True)
        return real_makedirs(name, *args, **kwargs)

    monkeypatch.setattr(os.path, "exists", lambda name: False if str(name) == str(path) else os.path.isdir(name))
    monkeypatch.setattr(os, "makedirs", makedirs_after_a_concurrent_one)


def test_recbole_ensure_dir_loses_the_race_between_two_processes(monkeypatch, tmp_path):
    import importlib.util

    # A fresh copy of recbole/utils/utils.py: the imported one is patched.
    origin = importlib.util.find_spec("recbole.utils.utils").origin
    spec = importlib.util.spec_from_file_location("recbole_utils_unpatched", origin)
    unpatched = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(unpatched)
    assert unpatched.ensure_dir is not compat.race_free_ensure_dir
    _directory_created_by_another_process_after_the_check(monkeypatch, tmp_path / "log")
    with pytest.raises(FileExistsError):
        unpatched.ensure_dir(str(tmp_path / "log"))


def test_ensure_dir_survives_the_race_in_every_module_that_binds_it(monkeypatch, tmp_path):
    import importlib

    _directory_created_by_another_process_after_the_check(monkeypatch, tmp_path / "log")
    for module_name in compat._ENSURE_DIR_USERS:
        module = importlib.import_module(module_name)
        assert module.ensure_dir is compat.race_free_ensure_dir, module_name
        module.ensure_dir(str(tmp_path / "log"))
    recbole_modules = [m for name, m in sys.modules.items() if name.startswith("recbole.") and m is not None]
    unpatched = [m.__name__ for m in recbole_modules if callable(getattr(m, "ensure_dir", None)) and m.ensure_dir is not compat.race_free_ensure_dir]
    assert not unpatched


def test_the_plugin_never_imports_ray_or_recbole_quick_start():
    code = (
        "import sys, recbole_mllmr1, recbole_mllmr1.quick_start, recbole_mllmr1.cli;"
        "from recbole_mllmr1.config import Config;"
        "Config(model='SASRec', dataset='ml-100k', config_dict={'state': 'WARNING'});"
        "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('recbole.quick_start')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_recbole_quick_start_is_broken_here_so_avoiding_it_matters():
    result = subprocess.run([sys.executable, "-c", "import recbole.quick_start"], capture_output=True, text=True)
    assert result.returncode != 0


def test_pandas_is_pinned_below_3_and_token_seq_titles_load():
    # pandas 3 breaks Dataset._remap for token_seq fields (Series.agg(len) returns a scalar).
    assert int(pandas.__version__.split(".")[0]) < 3
    config = RecBoleConfig(
        model=Pop,
        dataset="ml-100k",
        config_dict={"state": "WARNING", "load_col": {"inter": ["user_id", "item_id"], "item": ["item_id", "movie_title"]}},
    )
    dataset = create_dataset(config)
    toy_story = dataset.token2id(dataset.iid_field, "1")
    id2word = dataset.field2id_token["movie_title"]
    words = [id2word[int(t)] for t in dataset.item_feat["movie_title"][toy_story] if int(t)]
    assert words == ["Toy", "Story"]


def test_setup_pins_pandas_below_3():
    import os

    setup_py = open(os.path.join(os.path.dirname(__file__), "..", "setup.py")).read()
    assert '"pandas>=2.0,<3"' in setup_py


def test_scipy_dok_matrix_lost_the_update_recbole_graph_models_call():
    # Without the plugin (a fresh interpreter): scipy >= 1.13 has no dok_matrix._update.
    code = "import scipy.sparse as sp; print(hasattr(sp.dok_matrix((2, 2)), '_update'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_dok_update_sets_the_entries_recbole_gives_it():
    import scipy.sparse as sp

    matrix = sp.dok_matrix((3, 4), dtype=np.float32)
    matrix._update({(0, 1): 1, (2, 3): 1, (np.int64(1), np.int64(0)): 2})
    assert matrix.nnz == 3
    np.testing.assert_array_equal(matrix.toarray(), [[0, 1, 0, 0], [2, 0, 0, 0], [0, 0, 0, 1]])


def test_lightgcn_builds_its_normalised_adjacency_as_from_a_coo_matrix():
    from recbole.model.general_recommender import LightGCN

    config = RecBoleConfig(model=LightGCN, dataset="ml-100k", config_dict={"state": "WARNING"})
    train_data = data_preparation(config, create_dataset(config))[0]
    adjacency = LightGCN(config, train_data._dataset).norm_adj_matrix.to_dense().numpy()
    # The same matrix built without dok_matrix: D^-1/2 [[0, R], [R^T, 0]] D^-1/2.
    interactions = train_data._dataset.inter_matrix(form="coo").astype(np.float32)
    n_users = interactions.shape[0]
    import scipy.sparse as sp

    a = sp.bmat([[None, interactions], [interactions.T, None]]).tocsr()
    a.data[:] = 1
    d = sp.diags(np.power(np.asarray(a.sum(axis=1)).ravel() + 1e-7, -0.5))
    np.testing.assert_allclose(adjacency, (d @ a @ d).toarray(), rtol=1e-5, atol=1e-7)
    assert adjacency[:n_users, :n_users].sum() == 0


def test_recbole_turns_anomaly_detection_on_at_import_and_the_fix_turns_it_off():
    code = "import torch, recbole.model.sequential_recommender; print(torch.is_anomaly_enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
    import recbole.model.sequential_recommender.sine  # noqa: F401  (imported once: its line does not run again)

    assert not torch.is_anomaly_enabled()


def test_trl_fused_lm_head_projects_only_the_labelled_rows_on_cpu(tiny_llm_dir, monkeypatch):
    import trl.trainer.utils
    from transformers import AutoModelForCausalLM
    from trl.kernels.chunked_logprob import _use_triton
    from trl.trainer.utils import add_fused_lm_head

    monkeypatch.setattr(trl.trainer.utils, "_use_triton", _use_triton)  # TRL's own rule, whatever ran before
    llm = AutoModelForCausalLM.from_pretrained(tiny_llm_dir)
    add_fused_lm_head(llm)
    projected_rows = []
    projection = trl.trainer.utils._ChunkedLogProbFunction.apply
    monkeypatch.setattr(trl.trainer.utils._ChunkedLogProbFunction, "apply",
                        lambda hidden, *args: projected_rows.append(len(hidden)) or projection(hidden, *args))
    input_ids = torch.arange(10, 30).reshape(2, 10)
    labels = input_ids.clone()
    labels[:, :7] = -100  # 3 labelled tokens per row; each predicts from the position before it

    def log_probs():
        return llm(input_ids=input_ids, labels=labels, fused_lm_head=True).log_probs

    every_row = log_probs()
    compat.fuse_lm_head_on_labelled_positions_only()
    labelled_rows = log_probs()
    assert projected_rows == [2 * 9, 2 * 3]
    torch.testing.assert_close(labelled_rows, every_row, rtol=0, atol=1e-6)
