"""A user's mistake is one ``error:`` line on stderr and exit status 2; the traceback goes to ``log/errors/``.

Every case fails before any data or model loads. Most call the console scripts' ``main(argv)`` in this
process (torch and RecBole are loaded already); one goes through the installed ``run_recbole`` script and
the light ones (``recommend``'s checks, ``--help``, ``--version``) through fresh interpreters.
"""
import json
import logging
import os
import subprocess
import sys
import time
from collections import OrderedDict
from types import SimpleNamespace

import numpy as np
import pytest

from recbole_mllmr1 import cli, recommend
from recbole_mllmr1.known_keys import UnknownKeyError
from recbole_mllmr1.quick_start import main as run_recbole_main
from recbole_mllmr1.quick_start import result_summary

BIN = os.path.dirname(sys.executable)


def assert_one_error(capsys, code, *expected):
    """Exit status 2, nothing on stdout, and on stderr only the error line (holding ``expected``) and the traceback file."""
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and out == "", (code, out, err)
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("traceback: "), err
    for text in expected:
        assert text in lines[0], lines[0]
    path = lines[1].split()[1]
    with open(path, encoding="utf-8") as file:
        assert "Traceback (most recent call last)" in file.read()
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---- A: run_recbole ---------------------------------------------------------------------------
def test_the_installed_run_recbole_reports_a_misspelled_key_in_one_line(tmp_path):
    result = subprocess.run(
        [os.path.join(BIN, "run_recbole"), "--model=MLLMRecR1", "--dataset=nowhere", f"--data_path={tmp_path}", "--stage=[]"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and result.stdout == "", result.stderr
    assert lines[0].startswith("error: unknown key [stage] in the command line; did you mean [stages]?"), result.stderr
    assert len(lines) == 2 and lines[1].startswith(f"traceback: {os.path.join('log', 'errors', '')}"), result.stderr
    assert "UnknownKeyError" in (tmp_path / lines[1].split()[1]).read_text()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--eval_user_sample=abc"], "Config key [eval_user_sample] = 'abc' is not allowed: an int >= 1"),
        (["--model=NoSuchRec"], "[NoSuchRec] is not the name of an existing model"),
        (["--eval_user_sample", "60"], "argument [--eval_user_sample] is not of the form --key=value"),
        (["--seed=1", "--seed=2"], "--seed is given twice"),
        (["--llm_path=http://host/?a=b"], "cannot hold a value with '='"),
        (["--config_files=missing.yaml"], "config file missing.yaml does not exist"),
    ],
)
def test_run_recbole_mistakes_are_one_line(workdir, capsys, argv, expected):
    assert_one_error(capsys, run_recbole_main(argv), expected)


def test_a_yaml_syntax_error_names_the_file_and_the_line(workdir, capsys):
    (workdir / "bad.yaml").write_text("stages: []\neval_user_sample: 5: 6\n")
    line = assert_one_error(capsys, run_recbole_main(["--config_files=bad.yaml"]))
    assert line.startswith("error: yaml syntax error in bad.yaml, line 2, column ") and "mapping values are not allowed" in line


def test_a_missing_or_empty_dataset_fails_before_recbole_logs_its_config(workdir, capsys):
    code = run_recbole_main(["--dataset=nowhere", f"--data_path={workdir}"])
    assert_one_error(capsys, code, "dataset [nowhere] not found", "recbole-mllmr1 convert")
    (workdir / "empty").mkdir()
    code = run_recbole_main(["--model=SASRec", "--dataset=empty", f"--data_path={workdir}"])
    assert_one_error(capsys, code, f"dataset folder {os.path.join(str(workdir), 'empty')} has no empty.inter")
    assert not (workdir / "log" / "SASRec").exists()  # RecBole's logger never started


def test_a_data_error_found_while_recbole_loads_the_data_comes_before_the_config_dump(workdir, capsys):
    (workdir / "broken").mkdir()
    (workdir / "broken" / "broken.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\nu1\ti1\t1\nu1\ti2\tyesterday\n"
    )
    load_col = "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}"
    code = run_recbole_main(["--model=SASRec", "--dataset=broken", f"--data_path={workdir}", load_col])
    assert_one_error(capsys, code, f"dataset [broken] in {workdir / 'broken'}", "timestamp:float")


def test_debug_reraises_with_the_traceback_and_argv_is_restored(workdir):
    argv = list(sys.argv)
    with pytest.raises(UnknownKeyError, match="did you mean"):
        run_recbole_main(["--debug", "--stage=[]"])
    assert sys.argv == argv


def test_bugs_in_training_keep_their_traceback():
    """The rule: ValueError / KeyError / OSError are user errors while the run is set up, bugs inside a trainer's fit."""
    namespace = {"__name__": "recbole_mllmr1.trainer"}
    exec("def fit():\n    raise ValueError('shape mismatch')\n", namespace)
    try:
        namespace["fit"]()
    except ValueError as error:
        in_training = error
    assert not cli.is_user_error(in_training) and cli.is_user_error(ValueError("bad value"))
    assert not cli.is_user_error(TypeError("'>=' not supported"))
    assert cli.is_user_error(FileNotFoundError("no such file")) and cli.is_user_error(KeyError("model need to be specified"))
    assert cli.error_message(KeyError("timestamp")) == "missing key [timestamp]"


def test_a_subcommand_reports_its_config_files_in_one_line(workdir, capsys):
    (workdir / "bad.yaml").write_text("stages: [sft\n")
    code = cli.main(["build-cot", "--dataset", "tiny", "--config_files", "bad.yaml"])
    assert_one_error(capsys, code, "yaml syntax error in bad.yaml, line ")
    code = cli.main(["build-cot", "--dataset", "tiny", "--config_files", "missing.yaml"])
    assert_one_error(capsys, code, "config file missing.yaml does not exist")


# ---- A2: the subcommands take run_recbole's command line -------------------------------------
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["compare", "--eval_user_sampel=3"], "unknown key [eval_user_sampel] in the command line; did you mean [eval_user_sample]?"),
        (["build-cot", "--dataset", "tiny", "--cot_ratoi=0.5"], "unknown key [cot_ratoi] in the command line; did you mean [cot_ratio]?"),
        (["textualize", "--dataset", "toy", "--image_dri=img"], "unknown key [image_dri] in the command line; did you mean [image_dir]?"),
        (["recommend", "--checkpoint", "run", "--user", "1", "--stage=[]"], "unknown key [stage] in the command line; did you mean [stages]?"),
        (["compare", "--eval_user_sample", "3"], "argument [--eval_user_sample] is not of the form --key=value"),
        (["build-cot", "--dataset", "tiny", "--ratio", "0.5", "--cot_ratio=0.3"], "[cot_ratio] is given twice"),
        (["textualize", "--dataset", "toy", "--epochs=3"], "textualize does not read [epochs]"),
        (["textualize", "--textualizer=clip", "--dataset=toy"], "textualizer [clip] is not a backend"),
        (["compare", "--config_files=missing.yaml"], "config file missing.yaml does not exist"),
    ],
)
def test_subcommands_take_config_keys_as_run_recbole_does_and_report_mistakes_in_one_line(workdir, capsys, argv, expected):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert code == 2 and out == "" and lines[0].startswith("error: ") and expected in lines[0], (code, out, err)
    assert len(lines) <= 2, err


def test_the_installed_subcommand_script_reports_a_misspelled_key_in_one_line(tmp_path):
    result = subprocess.run(
        [os.path.join(BIN, "recbole-mllmr1"), "compare", "--eval_user_sampel=3"], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and result.stdout == "" and len(lines) == 2, result.stderr
    assert lines[0] == "error: unknown key [eval_user_sampel] in the command line; did you mean [eval_user_sample]? (keys of your own model: set allow_unknown_keys=True)"


def test_a_dash_flag_is_not_abbreviated_when_every_key_value_is_a_config_key(workdir, capsys):
    # --data=x would pass for --data-path=x with argparse's abbreviations; here it is an unknown key.
    code = cli.main(["compare", "--data=elsewhere"])
    assert code == 2 and "unknown key [data] in the command line" in capsys.readouterr().err


def test_compare_reads_config_files_and_key_values_for_every_row(workdir):
    import argparse

    from recbole_mllmr1.compare.cli import add_arguments, settings_from_args
    from recbole_mllmr1.compare.plan import plan_run

    (workdir / "mine.yaml").write_text("epochs: 3\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cli.add_config_files_argument(parser)
    args = parser.parse_args(["--models", "Pop", "--config_files=mine.yaml"])
    args.config_dict = cli.config_arguments(["--learning_rate=0.01"], "compare")
    settings = settings_from_args(args)
    assert settings.overrides == {"learning_rate": 0.01} and settings.config_files == [str(workdir / "mine.yaml")]
    with_file = plan_run("Pop", {}, 0, settings)
    assert with_file.config_files[-1] == str(workdir / "mine.yaml") and with_file.config_dict["learning_rate"] == 0.01
    args.config_files = None
    assert plan_run("Pop", {}, 0, settings_from_args(args)).config_hash != with_file.config_hash  # the file is part of the row


# ---- B: --help and --version ------------------------------------------------------------------
def _light_process(code, cwd):
    script = code + "\nimport sys, json\nprint(json.dumps([m for m in ('torch', 'recbole', 'transformers') if m in sys.modules]))\n"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cwd, timeout=120)
    return result, json.loads(result.stdout.splitlines()[-1])


def test_run_recbole_help_shows_defaults_and_points_to_the_key_reference(tmp_path):
    code = "from recbole_mllmr1.cli import run_recbole_main\ntry:\n    run_recbole_main(['--help'])\nexcept SystemExit:\n    pass"
    result, heavy = _light_process(code, tmp_path)
    assert heavy == [] and result.stdout.startswith("usage: run_recbole"), result.stdout + result.stderr
    for text in ("(default: MLLMRecR1)", "(default: ml-100k)", "--key=value", "docs/configuration.md",
                 "--stages=['sft', 'grpo']", "--eval_user_sample=None", "--data_path=dataset/", "--debug"):
        assert text in " ".join(result.stdout.split()), text  # argparse wraps at the terminal's width


def test_version_of_both_console_scripts(tmp_path):
    from importlib.metadata import version

    expected = version("recbole-mllmr1")
    code = ("from recbole_mllmr1.cli import main, run_recbole_main\nfor entry in (main, run_recbole_main):\n"
            "    try:\n        entry(['--version'])\n    except SystemExit:\n        pass")
    result, heavy = _light_process(code, tmp_path)
    assert heavy == [] and result.stdout.splitlines()[:2] == [f"recbole-mllmr1 {expected}", f"run_recbole {expected}"]


# ---- C: the summary a finished run prints ------------------------------------------------------
def test_the_summary_is_plain_numbers_and_ends_with_the_run_folder(tmp_path):
    test_result = OrderedDict([("hit@1", np.float64(0.1333)), ("hit@5", np.float64(0.6))])
    result = {"best_valid_result": OrderedDict([("hit@1", 0.2)]), "test_result": test_result, "eval_user_sample": 60,
              "stage_results": None, "fusion_weights": None}
    run_dir = tmp_path / "saved" / "MLLMRecR1-tiny-abc"
    run_dir.mkdir(parents=True)
    handler = logging.FileHandler(tmp_path / "run.log")
    logging.getLogger().addHandler(handler)
    try:
        lines = result_summary(result, SimpleNamespace(run_dir=str(run_dir))).splitlines()
        # A zero-shot run writes no run folder: the log file is the last line.
        zero_shot = result_summary({**result, "eval_user_sample": None}, SimpleNamespace(run_dir=str(tmp_path / "none")))
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert lines[0] == "best valid (sampled: 60 users): hit@1 0.2000"
    assert lines[1] == "test result (sampled: 60 users): hit@1 0.1333  hit@5 0.6000"
    assert lines[2].startswith("log: ") and lines[2].endswith("run.log")
    assert lines[-1].startswith("run folder: ") and lines[-1].endswith("MLLMRecR1-tiny-abc")
    assert "np.float64" not in "\n".join(lines) and "OrderedDict" not in "\n".join(lines)
    assert zero_shot.splitlines()[1] == "test result: hit@1 0.1333  hit@5 0.6000"
    assert zero_shot.splitlines()[-1].startswith("log: ") and zero_shot.splitlines()[-1].endswith("run.log")


# ---- E: recommend ----------------------------------------------------------------------------
def fake_run_folder(folder, data_path, best=None):
    """A finished run's files as recommend reads them (no adapter weights: nothing loads them here)."""
    os.makedirs(os.path.join(folder, "best_adapter"), exist_ok=True)
    with open(os.path.join(folder, "run_config.json"), "w") as file:
        json.dump({"dataset": "tiny", "data_path": data_path}, file)
    if best is not None:
        with open(os.path.join(folder, "progress.json"), "w") as file:
            json.dump({"best": best, "stage_best": {}}, file)
    return folder


def test_recommend_names_the_adapter_it_uses(tmp_path):
    assert recommend.adapter_description(str(tmp_path)).startswith("best_adapter/ of the run (no readable progress.json")
    fake_run_folder(str(tmp_path), "unused", best=[0.41, "sft", 40, {}])
    assert recommend.adapter_description(str(tmp_path)) == "stage sft, step 40 (the run's best validation score, 0.4100)"
    fake_run_folder(str(tmp_path), "unused", best=[0.3, "zero-shot", 0, {}])
    assert recommend.adapter_description(str(tmp_path)).startswith("zero-shot (no training)")


def test_recommend_file_names_match_the_trainer():
    from recbole_mllmr1 import trainer

    assert (recommend.RUN_CONFIG_FILE, recommend.ZERO_SHOT_STAGE) == (trainer.RUN_CONFIG, trainer.ZERO_SHOT)


def test_closest_user_ids_by_number_or_by_spelling():
    assert recommend.closest_ids("950", {str(i) for i in range(1, 944)}, count=3) == ["943", "942", "941"]
    assert recommend.closest_ids("u31", {"u3", "u13", "x1"}, count=2) == ["u3", "u13"]


def test_recommend_output_marks_the_held_out_item():
    text = recommend.format_recommendation({
        "user": "u1", "adapter": "stage grpo, step 8 (...)", "held_out": ("i7", "Blue Star 7"),
        "history": [("i3", "Red City 3"), ("i7", "Blue Star 7")], "candidates": [("i9", "Lost King 9")],
        "reasoning": "", "ranking": [("i9", "Lost King 9", 0.9)],
    }).splitlines()
    assert text[0] == "Adapter: stage grpo, step 8 (...)"
    assert text[3] == "  [i7] Blue Star 7   <- held-out test item"
    assert text[-2].startswith("Held-out test item") and text[-1] == "  [i7] Blue Star 7"


def test_recommend_says_when_the_reasoning_only_repeats_the_prompt():
    prompt = "History:\n1. Star Wars (1977)\n2. Fargo (1996)\nCandidates:\n1. Heat (1995)"
    assert recommend.repeats_prompt("2. Fargo (1996)\n 1.  Heat (1995)", prompt)
    assert not recommend.repeats_prompt("The user likes crime films, so Heat fits.", prompt)
    assert not recommend.repeats_prompt("", prompt)
    text = recommend.format_recommendation({
        "user": "u1", "adapter": "zero-shot", "held_out": ("i7", "Blue Star 7"), "history": [("i3", "Red City 3")],
        "candidates": [("i7", "Blue Star 7")], "reasoning": "1. Red City 3", "reasoning_repeats_prompt": True,
        "ranking": [("i7", "Blue Star 7", 1.0)], "evaluation": "rank 1 of 1", "fusion_weight": 0.9,
    })
    assert "only repeats the prompt" in text and "Fusion weight: 0.9" in text
    assert "  1. [i7] Blue Star 7  p=1.000   <- held-out test item" in text and text.endswith("[i7] Blue Star 7: rank 1 of 1")


def test_recommend_rejects_an_unknown_user_before_anything_loads(tmp_path, tiny_data_path):
    run = fake_run_folder(str(tmp_path / "run"), tiny_data_path)
    code = ("import sys\nfrom recbole_mllmr1.cli import main\n"
            f"sys.stderr.write('exit %s' % main(['recommend', '--checkpoint', {run!r}, '--user', 'u99']))")
    start = time.perf_counter()
    result, heavy = _light_process(code, tmp_path)
    assert time.perf_counter() - start < 60 and heavy == [], result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: user [u99] is not in ") and "(30 users); closest ids: " in lines[0], result.stderr
    assert lines[1].startswith("traceback: ") and lines[-1].endswith("exit 2"), result.stderr
    # A folder that is not a finished run fails the same way.
    code = code.replace(repr(run), repr(str(tmp_path)))
    result, heavy = _light_process(code, tmp_path)
    assert heavy == [] and "is not a finished MLLMRecR1 run folder" in result.stderr.splitlines()[0], result.stderr
