"""A misspelled config key stops the run, naming the closest known key; the opt-out lets it through."""
import glob
import os
import subprocess
import sys

import pytest

from recbole_mllmr1.config import Config, properties_path
from recbole_mllmr1.known_keys import UnknownKeyError, known_keys
from tests.conftest import REPO_ROOT, TINY_CONFIG


def test_a_misspelled_key_in_the_config_dict_names_the_closest_known_key(tiny_data_path):
    with pytest.raises(UnknownKeyError, match=r"unknown key \[stage\] in the config dict; did you mean \[stages\]\?"):
        Config(model="MLLMRecR1", dataset="tiny", config_dict={**TINY_CONFIG, "data_path": tiny_data_path, "stage": []})


def test_a_misspelled_key_in_a_config_file_names_the_file(tiny_data_path, tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("eval_user_sampel: 2\n")
    with pytest.raises(UnknownKeyError, match=rf"\[eval_user_sampel\] in config file {config_file}; did you mean \[eval_user_sample\]"):
        Config(model="SASRec", dataset="tiny", config_file_list=[str(config_file)], config_dict={"data_path": tiny_data_path})


def test_the_opt_out_accepts_keys_of_your_own_model(tiny_data_path):
    config = Config(model="SASRec", dataset="tiny", config_dict={"data_path": tiny_data_path, "my_model_depth": 3, "allow_unknown_keys": True})
    assert config["my_model_depth"] == 3


@pytest.mark.parametrize("config_file", sorted(glob.glob(properties_path("quick_start_config", "*.yaml"))), ids=os.path.basename)
def test_every_shipped_config_file_has_known_keys_only(tiny_data_path, config_file):
    Config(model="MLLMRecR1", dataset="tiny", config_file_list=[config_file], config_dict={**TINY_CONFIG, "data_path": tiny_data_path})


def test_keys_recbole_reads_without_a_yaml_default_are_known():
    # use_filter (recbole/data/dataset) and test_neg_sample_args (Config) have no yaml default; nproc and
    # port are read from RecBole's final_config_dict for distributed runs.
    assert {"use_filter", "test_neg_sample_args", "nproc", "port", "eval_user_sample", "title_field"} <= known_keys()
    # accelerate's launch settings ship in properties/ but are no RecBole keys.
    assert "mixed_precision" not in known_keys()


def _config_in_a_process(argv, command_line):
    code = (
        f"import sys; sys.argv = {argv!r};"
        "from recbole_mllmr1.config import Config;"
        f"config = Config(model='SASRec', dataset='ml-100k', command_line={command_line});"
        "print('built', config['durations'])"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT)


def test_the_command_line_is_read_and_checked_only_when_it_is_run_recbole_s_own():
    misspelled = ["run_recbole", "--model=SASRec", "--stage=[]"]
    checked = _config_in_a_process(misspelled, command_line=True)
    assert checked.returncode != 0 and "unknown key [stage] in the command line; did you mean [stages]?" in checked.stderr
    # run_recbole's own --config_files reaches RecBole's command-line reader too.
    with_files = ["run_recbole", "--model=SASRec", f"--config_files={properties_path('quick_start_config', 'main_cpu.yaml')}"]
    assert _config_in_a_process(with_files, command_line=True).stdout.strip() == "built None"
    # Another program's flags (pytest's --durations=10, say) are not read at all.
    assert _config_in_a_process(["pytest", "--durations=10"], command_line=False).stdout.strip() == "built None"
    assert _config_in_a_process(["run_recbole", "--durations=10"], command_line=True).returncode != 0


def test_run_recbole_stops_on_a_misspelled_key_before_any_data_loads(tmp_path):
    result = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "run_recbole"), "--model=MLLMRecR1", "--dataset=nowhere",
         f"--data_path={tmp_path}", "--stage=[]"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "did you mean [stages]?" in result.stderr
    assert "nowhere" not in result.stderr.replace("--dataset=nowhere", "")  # the missing dataset was never read
