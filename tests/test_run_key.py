"""The run key, which names a training's folder: what the training depends on, and nothing the test
alone depends on (the test mode), so that one training is tested in every mode."""
import torch

from recbole_mllmr1.sequential_model import cached_checkpoint_path
from recbole_mllmr1.trainer import run_key
from tests.test_settings import mllmrecr1_config


def test_the_test_mode_leaves_the_run_key_and_the_validation_mode_stays(tiny_data_path):
    uni9 = mllmrecr1_config(tiny_data_path, eval_args={"mode": "uni9"})
    tested_in_full = mllmrecr1_config(tiny_data_path, eval_args={"mode": {"valid": "uni9", "test": "full"}})
    validated_in_uni19 = mllmrecr1_config(tiny_data_path, eval_args={"mode": {"valid": "uni19", "test": "full"}})
    assert run_key(uni9) == run_key(tested_in_full) != run_key(validated_in_uni19)
    # The run's own sequential model is one cached training for both test modes too.
    assert cached_checkpoint_path(uni9) == cached_checkpoint_path(tested_in_full) != cached_checkpoint_path(validated_in_uni19)


def _write_checkpoint(path, state_dict):
    torch.save({"config": {"model": "SASRec"}, "state_dict": state_dict}, path)
    return str(path)


def test_a_retriever_checkpoint_counts_by_its_weights_not_its_path(tiny_data_path, tmp_path):
    generator = torch.Generator().manual_seed(0)
    weights = {
        "item_embedding.weight": torch.randn(40, 8, generator=generator),
        "position_embedding.weight": torch.randn(20, 8, generator=generator),
    }
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    here = _write_checkpoint(tmp_path / "a" / "model.pth", weights)
    # The same weights trained again elsewhere: another path, another time, another insertion order.
    elsewhere = _write_checkpoint(tmp_path / "b" / "model.pth", {name: weights[name].clone() for name in reversed(weights)})
    changed = {**weights, "position_embedding.weight": weights["position_embedding.weight"].clone()}
    changed["position_embedding.weight"][3, 5] += 1e-3
    other = _write_checkpoint(tmp_path / "b" / "other.pth", changed)
    as_half = _write_checkpoint(tmp_path / "b" / "half.pth", {name: tensor.half() for name, tensor in weights.items()})

    keys = [run_key(mllmrecr1_config(tiny_data_path, retriever_checkpoint=path)) for path in (here, elsewhere, other, as_half)]
    assert keys[0] == keys[1]
    assert len({keys[0], keys[2], keys[3]}) == 3
