"""End to end: the console scripts run plugin and RecBole models through RecBole's protocols."""
import glob
import os
import re
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)
TINY_ARGS = [
    "--dataset=tiny",
    "--load_col={'inter': ['user_id', 'item_id', 'rating', 'timestamp'], 'item': ['item_id', 'title', 'genre']}",
    "--item_meta_fields=['genre']",
    "--show_progress=False",
    "--stages=[]",
]


def run_cli(args, cwd):
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return output


def parse_test_result(output):
    match = re.search(r"test result.*?: OrderedDict\((.*)\)", output)
    assert match, output[-2000:]
    return dict(re.findall(r"\('([\w@]+)', (?:np\.float64\()?([\d.]+)", match.group(1)))


@pytest.mark.slow
def test_run_recbole_evaluates_mllmrecr1_with_recbole_metrics(tiny_data_path, default_llm_dir, tmp_path):
    output = run_cli(
        [os.path.join(BIN, "run_recbole"), "--model=MLLMRecR1", *TINY_ARGS, f"--data_path={tiny_data_path}",
         "--eval_args={'mode': 'uni9'}"],
        cwd=tmp_path,
    )
    metrics = parse_test_result(output)
    assert {"hit@1", "hit@5", "hit@10", "ndcg@5", "mrr@10"} <= set(metrics)
    assert float(metrics["hit@10"]) == 1.0  # 10 candidates: the positive is always in the top 10
    assert "zero-shot evaluation" in output


@pytest.mark.slow
def test_recbole_models_run_unchanged_and_serve_as_full_sort_retriever(tiny_data_path, default_llm_dir, tmp_path):
    saved = tmp_path / "saved"
    output = run_cli(
        [sys.executable, "-m", "recbole_mllmr1", "--model=SASRec", *TINY_ARGS, f"--data_path={tiny_data_path}",
         "--epochs=1", "--hidden_size=16", "--inner_size=32", "--n_layers=1", "--n_heads=1", f"--checkpoint_dir={saved}"],
        cwd=tmp_path,
    )
    assert "hit@10" in parse_test_result(output)
    checkpoint = glob.glob(str(saved / "SASRec-*.pth"))[0]
    output = run_cli(
        [os.path.join(BIN, "run_recbole"), "--model=MLLMRecR1", *TINY_ARGS, f"--data_path={tiny_data_path}",
         "--eval_args={'mode': 'full'}", f"--retriever_checkpoint={checkpoint}", "--rerank_topk=5"],
        cwd=tmp_path,
    )
    assert "hit@10" in parse_test_result(output)


def test_unknown_model_on_the_command_line_lists_the_models(tmp_path):
    result = subprocess.run(
        [os.path.join(BIN, "run_recbole"), "--model=NoSuchRec", "--dataset=ml-100k"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0 and "[NoSuchRec] is not the name of an existing model" in result.stderr
    assert "MLLMRecR1" in result.stderr and "SASRec" in result.stderr


def test_topk_three_five_ten_runs_and_the_stage_table_follows_it(tiny_data_path, tiny_llm_dir, tmp_path):
    from recbole_mllmr1.quick_start import run_recbole, stage_metrics, stage_table
    from recbole_mllmr1.sequential_model import TEXT_ONLY
    from tests.conftest import TINY_CONFIG

    assert stage_metrics({f"{m}@{k}": 0 for m in ("hit", "ndcg", "mrr") for k in (1, 5, 10)}) == ["hit@1", "hit@5", "ndcg@5", "mrr@10"]
    config = {**TINY_CONFIG, **TEXT_ONLY, "stages": [], "topk": [3, 5, 10], "eval_args": {"mode": "uni9"},
              "data_path": tiny_data_path, "checkpoint_dir": str(tmp_path), "llm_path": tiny_llm_dir}
    result = run_recbole("MLLMRecR1", "tiny", config_dict=config, saved=False)
    assert {"hit@3", "ndcg@3", "mrr@10"} <= set(result["test_result"]) and "hit@1" not in result["test_result"]
    header = stage_table({"zero-shot": result["test_result"]}).splitlines()[0]
    assert header == "| stage | hit@3 | hit@5 | ndcg@5 | mrr@10 | fusion weight |"
