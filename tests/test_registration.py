"""Model / trainer lookup and the plugin's configuration layers."""
import pytest
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer

from recbole_mllmr1.config import Config
from recbole_mllmr1.model.sequential_recommender.mllmrecr1 import MLLMRecR1
from recbole_mllmr1.trainer import MLLMRecR1Trainer, get_trainer
from recbole_mllmr1.utils import available_models, get_model


def test_get_model_finds_the_plugin_first_then_recbole():
    assert get_model("MLLMRecR1") is MLLMRecR1
    assert get_model("SASRec") is SASRec


def test_unknown_model_error_lists_the_available_models():
    with pytest.raises(ValueError) as error:
        get_model("NoSuchRec")
    message = str(error.value)
    assert "[NoSuchRec]" in message and "MLLMRecR1" in message and "SASRec" in message and "BPR" in message


def test_available_models_covers_plugin_and_recbole():
    names = available_models()
    assert {"MLLMRecR1", "SASRec", "GRU4Rec", "Pop", "BERT4Rec"} <= set(names)


def test_get_trainer_prefers_the_plugin_trainer():
    assert get_trainer(MLLMRecR1.type, "MLLMRecR1") is MLLMRecR1Trainer
    assert get_trainer(SASRec.type, "SASRec") is Trainer


def test_config_loads_the_plugin_model_and_dataset_yaml():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING"})
    assert config["candidates_per_prompt"] == 20 and config["llm_path"] == "smollm2-135m"
    assert config["title_field"] == "movie_title"  # from properties/dataset/ml-100k.yaml
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["eval_args"]["order"] == "TO"


def test_a_partial_eval_args_override_keeps_the_leave_one_out_split():
    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"state": "WARNING", "eval_args": {"mode": "uni19"}})
    assert config["eval_args"]["mode"] == {"valid": "uni19", "test": "uni19"}
    assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["eval_args"]["order"] == "TO"


def test_config_dict_overrides_yaml(tmp_path):
    config_file = tmp_path / "over.yaml"
    config_file.write_text("candidates_per_prompt: 12\nmax_history: 3\n")
    config = Config(
        model="MLLMRecR1", dataset="ml-100k", config_file_list=[str(config_file)], config_dict={"max_history": 4, "state": "WARNING"}
    )
    assert config["candidates_per_prompt"] == 12 and config["max_history"] == 4


def test_recbole_sequential_models_run_with_ce_loss_by_default():
    config = Config(model="SASRec", dataset="ml-100k", config_dict={"state": "WARNING"})
    assert config["loss_type"] == "CE" and config["train_neg_sample_args"]["distribution"] == "none"
