"""``recbole-mllmr1 compare``: per-user metrics, the random row, significance, and the driver on a tiny dataset."""
import argparse
import csv
import glob
import json
import os
import types

import numpy as np
import pytest
import torch
from recbole.evaluator import Collector
from recbole.evaluator.collector import DataStruct
from recbole.evaluator.metrics import MRR, NDCG, Hit

from recbole_mllmr1.compare import checks, execute
from recbole_mllmr1.compare.cli import add_arguments, run, settings_from_args
from recbole_mllmr1.compare.columns import GAIN_COLUMN, GAIN_P_COLUMN, table_columns
from recbole_mllmr1.compare.plan import baseline_config_file, plan_run, protocol_config
from recbole_mllmr1.compare.records import RowSeed, is_reusable, load_record, per_user_file, row_seed
from recbole_mllmr1.compare.report import command_line
from recbole_mllmr1.compare.rows import DEFAULT_MODELS, Row, select_rows, slugify
from recbole_mllmr1.compare.settings import parse_mode, parse_overrides
from recbole_mllmr1.compare.statistics import add_gain_over_zero_shot
from recbole_mllmr1.config import Config
from recbole_mllmr1.per_user_metrics import METRICS, PerUserCollector, metrics_for_topk, metrics_from_topk, random_ranking_metrics
from recbole_mllmr1.quick_start import run_recbole
from recbole_mllmr1.significance import paired_bootstrap_p_value, significance_label
from tests.conftest import TINY_CONFIG

# `stages` is left to each MLLMRecR1 row (zero-shot rows set `stages: []` themselves).
TINY_ARGS = [f"--config={key}={json.dumps(value)}" for key, value in TINY_CONFIG.items() if key != "stages"]
SMALL_SEQUENTIAL = [
    f"--config={model}.{key}={value}"
    for model in ("GRU4Rec", "SASRec")
    for key, value in {"epochs": 1, "hidden_size": 16, "embedding_size": 16, "inner_size": 32, "n_layers": 1, "n_heads": 1}.items()
]


def compare_args(data_path, out, models, *extra):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(
        ["--dataset", "tiny", "--data-path", data_path, "--models", models, "--out", str(out), *TINY_ARGS, *SMALL_SEQUENTIAL, *extra]
    )


def read_csv(out):
    with open(os.path.join(out, "results.csv"), newline="") as file:
        reader = csv.DictReader(file)
        return reader.fieldnames, {row["row"]: row for row in reader}


def count_run_recbole_calls(monkeypatch):
    calls = []

    def counting(**kwargs):
        calls.append(kwargs["model"])
        return run_recbole(**kwargs)

    monkeypatch.setattr(execute, "run_recbole", counting)
    return calls


def per_user(run_dir, evaluation="final"):
    return np.load(per_user_file(run_dir, evaluation))


def run_dirs(out, model, **config):
    """The run folders of ``model`` (one per seed) whose config has the ``config`` values."""
    found = []
    for folder in sorted(glob.glob(os.path.join(out, "runs", f"{slugify(model)}-*", "seed*"))):
        record = json.load(open(os.path.join(folder, "result.json")))
        if all(record["config_dict"].get(key) == value for key, value in config.items()):
            found.append(folder)
    return found


# ---- metrics ---------------------------------------------------------------------------
def test_per_user_metrics_average_to_recbole_metrics():
    rng = np.random.default_rng(0)
    pos_index = rng.random((500, 10)) < 0.15  # several positives per user, as in a random split
    pos_len = pos_index.sum(axis=1) + rng.integers(0, 3, 500)  # some positives fall outside the top 10
    pos_len = np.maximum(pos_len, 1)
    struct = DataStruct()
    struct.set("rec.topk", torch.from_numpy(np.column_stack([pos_index, pos_len]).astype(np.int64)))
    recbole_config = Config(model="Pop", dataset="ml-100k", config_dict={"topk": [1, 5, 10], "metric_decimal_place": 8, "state": "WARNING"})
    expected = {}
    for metric_class in (Hit, NDCG, MRR):
        expected.update(metric_class(recbole_config).calculate_metric(struct))
    ours = metrics_from_topk(pos_index, pos_len)
    for metric in METRICS:
        assert ours[metric].shape == (500,)
        assert ours[metric].mean() == pytest.approx(expected[metric], abs=1e-7), metric


@pytest.mark.parametrize("n_candidates", [10, 100, 1682])
def test_random_row_matches_a_simulated_random_scorer(n_candidates):
    rng = np.random.default_rng(n_candidates)
    users = 200_000
    # A random scorer: independent uniform scores; the positive is candidate 0.
    scores = rng.random((users, n_candidates)) if n_candidates <= 100 else None
    ranks = (scores > scores[:, :1]).sum(axis=1) + 1 if scores is not None else rng.integers(1, n_candidates + 1, users)
    simulated = {
        "hit@1": np.mean(ranks <= 1), "hit@5": np.mean(ranks <= 5), "hit@10": np.mean(ranks <= 10),
        "ndcg@5": np.mean(np.where(ranks <= 5, 1 / np.log2(ranks + 1), 0)),
        "ndcg@10": np.mean(np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0)),
        "mrr@10": np.mean(np.where(ranks <= 10, 1 / ranks, 0)),
    }
    analytic = random_ranking_metrics(n_candidates)
    for metric in METRICS:
        assert analytic[metric] == pytest.approx(simulated[metric], abs=4e-3), metric
    assert analytic["hit@5"] == pytest.approx(min(5, n_candidates) / n_candidates)


def test_significance_on_crafted_vectors():
    rng = np.random.default_rng(1)
    baseline = rng.random(300)
    p_identical = paired_bootstrap_p_value(baseline, baseline)
    assert p_identical == 1.0 and significance_label(p_identical) == "n.s."
    better = baseline + 0.05 + rng.normal(0, 0.02, 300)
    p_better = paired_bootstrap_p_value(better, baseline)
    assert p_better < 0.05 and significance_label(p_better) == "p<0.05"
    noise = baseline + rng.normal(0, 0.3, 300)  # no shift: noise only
    assert paired_bootstrap_p_value(noise - (noise - baseline).mean(), baseline) > 0.5
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_p_value(baseline, baseline[:10])


def test_each_tested_stage_gets_its_own_per_user_metrics():
    """MLLMRecR1's trainer tests every stage's best adapter and returns the best one's result."""
    config = Config(model="Pop", dataset="ml-100k", config_dict={"topk": [1, 5, 10], "state": "WARNING"})
    collector = PerUserCollector(config)
    users = np.array([3, 1, 2])
    hits_at = {"validation": [1, 2, 3], "zero-shot": [0, 0, 0], "sft": [1, 0, 0], "grpo": [0, 1, 1]}  # rank - 1 of the positive
    for ranks in hits_at.values():
        topk = np.zeros((3, 11), dtype=np.int64)
        topk[np.arange(3), ranks] = 1
        topk[:, -1] = 1
        collector.evaluations.append((users, topk))
    stage_results = {
        stage: {metric: round(float(values.mean()), 4) for metric, values in collector.per_user(index)[1].items()}
        for index, stage in zip((1, 2, 3), ("zero-shot", "sft", "grpo"))
    }
    trainer = types.SimpleNamespace(eval_collector=collector, stage_results=stage_results)
    evaluations = checks.per_user_test_evaluations(trainer, dict(stage_results["sft"]), METRICS)
    assert set(evaluations) == {"zero-shot", "sft", "grpo", "final"}
    assert list(evaluations["grpo"][1]["hit@1"]) == [1, 0, 0] and list(evaluations["zero-shot"][1]["hit@1"]) == [1, 1, 1]
    assert evaluations["final"] is evaluations["sft"]
    with pytest.raises(RuntimeError, match="matches none of the stage results"):
        checks.per_user_test_evaluations(trainer, {"hit@1": 0.5}, METRICS)
    record = {"error": None, "metrics": {}, "stage_metrics": {"zero-shot": {}}}
    missing = row_seed(Row("x", "MLLMRecR1", stage="grpo"), types.SimpleNamespace(seed=0, run_dir="d"), record)
    assert "tested no stage [grpo] (tested: zero-shot)" in missing.error


def test_trained_stages_are_tested_against_the_zero_shot_model_of_their_run(tmp_path):
    rng = np.random.default_rng(0)
    users = np.arange(1, 301)
    zero_shot = rng.random(300)
    per_stage = {"zero-shot": zero_shot, "sft": zero_shot + 0.1 + rng.normal(0, 0.02, 300), "grpo": zero_shot + rng.normal(0, 0.3, 300)}
    run_dir = tmp_path / "run" / "seed0"
    run_dir.mkdir(parents=True)
    for stage, ndcg in per_stage.items():
        np.savez(per_user_file(str(run_dir), stage), user_ids=users, **{"ndcg@10": ndcg})
    spec = types.SimpleNamespace(run_dir=str(run_dir))
    rows = [Row("trained (SFT)", "MLLMRecR1", stage="sft"), Row("trained (SFT+GRPO)", "MLLMRecR1", stage="grpo"),
            Row("untrained", "MLLMRecR1")]
    results = {row.name: [RowSeed(0, spec, {}, per_user_file=per_user_file(str(run_dir), row.stage or "zero-shot"))]
               for row in rows}
    entries = [{GAIN_COLUMN: np.nan, GAIN_P_COLUMN: np.nan} for _ in rows]
    add_gain_over_zero_shot(rows, entries, results)
    sft, grpo, untrained = entries
    assert sft[GAIN_COLUMN] == pytest.approx((per_stage["sft"] - zero_shot).mean()) and sft[GAIN_P_COLUMN] < 0.05
    assert abs(grpo[GAIN_COLUMN]) < 0.05 and grpo[GAIN_P_COLUMN] > 0.05
    assert np.isnan(untrained[GAIN_COLUMN])  # not a trained stage


# ---- configuration ---------------------------------------------------------------------
def test_rows_overrides_and_modes_are_validated():
    rows = select_rows(["Pop", "MLLMRecR1"], "full")
    assert [row.name for row in rows][:4] == ["SASRec", "Pop", "MLLMRecR1 (zero-shot)", "MLLMRecR1 (zero-shot, no image text)"]
    assert rows[3].overrides == {"stages": [], "item_tokens": False, "fusion_weight": 0, "use_image_text": False}
    assert {row.stage for row in rows if row.model == "MLLMRecR1"} == {None, "sft", "grpo", "grpo (LLM alone)"}
    # Rows using item tokens say "hybrid"; the text-only and fusion rows are two stages of one run.
    assert all(("hybrid" in row.name) == row.overrides.get("item_tokens", True) for row in rows if row.model == "MLLMRecR1" and row.stage)
    text_only, fusion = (next(row for row in rows if row.slug == slug) for slug in ("mllmrecr1-text-only-sft-grpo", "mllmrecr1-fusion-sft-grpo"))
    assert text_only.overrides == fusion.overrides and (text_only.stage, fusion.stage) == ("grpo (LLM alone)", "grpo")
    # MLLMRecR1 reads SASRec in every mode: its row comes first.
    rows = select_rows(["Pop", "mllmrecr1-zero-shot", "MLLMRecR1 (hybrid+fusion, SFT+GRPO)", "Pop"], "uni9")
    assert [row.name for row in rows] == ["SASRec", "Pop", "MLLMRecR1 (zero-shot)", "MLLMRecR1 (hybrid+fusion, SFT+GRPO)"]
    common, per_model = parse_overrides(["epochs=2", "SASRec.hidden_size=16", "eval_args={'mode': 'uni9'}"])
    assert common == {"epochs": 2, "eval_args": {"mode": "uni9"}} and per_model == {"SASRec": {"hidden_size": 16}}
    with pytest.raises(ValueError, match=r"\[epochs\] is not KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(ValueError, match=r"unknown key \[epoch\] in --config \[SASRec.epoch=2\]; did you mean \[epochs\]"):
        parse_overrides(["SASRec.epoch=2"])
    assert parse_mode("uni99") == 100 and parse_mode("full") is None
    with pytest.raises(ValueError, match=r"--mode \[uni\] is not an evaluation mode"):
        parse_mode("uni")


def test_every_baseline_has_a_commented_yaml_that_recbole_reads():
    for model in DEFAULT_MODELS[:-1]:
        path = baseline_config_file(model)
        assert path, model
        lines = open(path).read().splitlines()
        assert lines[0].startswith(f"# {model} baseline") and "RecBole" in "".join(lines[:8])
        keys = [line for line in lines if line and not line.startswith((" ", "#"))]
        assert all("# (" in line for line in keys), path
        config = Config(model=model, dataset="ml-100k", config_file_list=[path], config_dict={"state": "WARNING"})
        assert config["epochs"] <= 30


def test_test_candidates_are_identical_across_models(tiny_data_path):
    """BPR's training draws negatives from numpy's RNG; the test negatives must not depend on it."""

    class CandidateRecorder(Collector):
        def eval_batch_collect(self, scores_tensor, interaction, positive_u, positive_i):
            super().eval_batch_collect(scores_tensor, interaction, positive_u, positive_i)
            self.candidates.append(interaction["item_id"].clone())

        def get_data_struct(self):
            self.last, self.candidates = self.candidates, []
            return super().get_data_struct()

    settings = settings_from_args(compare_args(tiny_data_path, "unused", "Pop,BPR", "--mode", "uni9"))
    tested = {}
    for model in ("Pop", "BPR"):
        def record(trainer, model=model):
            trainer.eval_collector = CandidateRecorder(trainer.config)
            trainer.eval_collector.candidates = []
            tested[model] = trainer.eval_collector

        run_recbole(model=model, dataset="tiny", saved=False, trainer_hook=record, config_dict={
            **protocol_config(settings, seed=0), **TINY_CONFIG, "epochs": 2,
        })
    pop, bpr = (np.concatenate([c.numpy() for c in tested[m].last]) for m in ("Pop", "BPR"))
    assert len(pop) == 30 * 10 and np.array_equal(pop, bpr)


def test_topk_sets_every_rows_cut_offs_and_the_tables_metrics(tiny_data_path, tmp_path):
    assert metrics_for_topk([10, 3, 5]) == ("hit@3", "hit@5", "hit@10", "ndcg@3", "ndcg@5", "ndcg@10", "mrr@10")
    assert metrics_for_topk((1, 5, 10)) == METRICS
    settings = settings_from_args(compare_args(tiny_data_path, tmp_path, "Pop", "--topk", "3,5,10"))
    assert settings.topk == (3, 5, 10) and plan_run("Pop", {}, 0, settings).config_dict["topk"] == [3, 5, 10]
    default = settings_from_args(compare_args(tiny_data_path, tmp_path, "Pop"))
    assert plan_run("Pop", {}, 0, default).config_hash != plan_run("Pop", {}, 0, settings).config_hash
    assert settings_from_args(compare_args(tiny_data_path, tmp_path, "Pop", "--config", "topk=[3,5,10]")).topk == (3, 5, 10)
    for bad in ("3,5", "0,10", "a,b"):
        with pytest.raises(ValueError, match="must be positive cut-offs that include 10"):
            settings_from_args(compare_args(tiny_data_path, tmp_path, "Pop", "--topk", bad))
    out = tmp_path / "cmp"
    assert run(compare_args(tiny_data_path, out, "Pop", "--mode", "uni9", "--topk", "3,5,10")) == 0
    columns, rows = read_csv(out)
    assert columns == table_columns(metrics_for_topk((3, 5, 10))) and "HR@1" not in columns
    assert float(rows["random"]["HR@3"]) == pytest.approx(0.3)
    assert "--topk 3,5,10" in (out / "results.md").read_text()


# ---- the driver ------------------------------------------------------------------------
def test_compare_writes_the_table_survives_a_failing_model_and_resumes(tiny_data_path, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    assert run(compare_args(tiny_data_path, out, "Pop,GRU4Rec,NoSuchRec", "--mode", "uni9", "--seeds", "0,1")) == 0

    columns, rows = read_csv(out)
    assert columns == table_columns()
    assert list(rows) == ["random", "Pop", "GRU4Rec", "NoSuchRec"]
    assert float(rows["random"]["HR@1"]) == pytest.approx(0.1) and float(rows["random"]["HR@10"]) == 1.0
    assert float(rows["Pop"]["HR@10"]) == 1.0  # 10 candidates: always in the top 10
    assert rows["Pop"]["seeds"] == "2" and rows["Pop"]["HR@1 std"] != "" and rows["Pop"]["users"] == "30"
    assert 0 <= float(rows["GRU4Rec"]["NDCG@10"]) <= 1 and float(rows["GRU4Rec"]["params total"]) > 0
    assert rows["GRU4Rec"]["config"].startswith("GRU4Rec.yaml + ") and "epochs=1" in rows["GRU4Rec"]["config"]
    assert "[NoSuchRec] is not the name of an existing model" in rows["NoSuchRec"]["error"]
    assert rows["NoSuchRec"]["HR@1"] == "" and rows["Pop"]["error"] == ""
    best = max(("Pop", "GRU4Rec"), key=lambda row: float(rows[row]["NDCG@10"]))
    other = "GRU4Rec" if best == "Pop" else "Pop"
    assert rows[best]["vs best baseline"] == "best baseline" and 0 < float(rows[other]["p (NDCG@10)"]) <= 1

    markdown = (out / "results.md").read_text()
    assert "| random |" in markdown and "recbole-mllmr1 compare --dataset tiny --mode uni9" in markdown
    for image in ("metrics.png", "time.png"):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    gru_dirs = run_dirs(out, "GRU4Rec")
    assert len(gru_dirs) == 2 and {os.path.basename(folder) for folder in gru_dirs} == {"seed0", "seed1"}
    for run_dir in gru_dirs:
        record = json.load(open(os.path.join(run_dir, "result.json")))
        for metric in METRICS:  # per-user vectors average to RecBole's own (rounded) numbers
            assert record["metrics"][metric] == pytest.approx(record["recbole_test_result"][metric], abs=1e-4)
        assert len(per_user(run_dir)["ndcg@10"]) == 30 and os.path.isfile(os.path.join(run_dir, "model.pth"))
        assert json.load(open(os.path.join(run_dir, "config.json")))["model"] == "GRU4Rec"

    # Same users and candidates for every model of a seed: the paired test is paired.
    pop_users, gru_users = (per_user(run_dirs(out, row)[0])["user_ids"] for row in ("Pop", "GRU4Rec"))
    assert np.array_equal(pop_users, gru_users)

    calls = count_run_recbole_calls(monkeypatch)
    run(compare_args(tiny_data_path, out, "Pop,GRU4Rec,NoSuchRec", "--mode", "uni9", "--seeds", "0,1"))
    assert calls == ["NoSuchRec", "NoSuchRec"]  # finished rows are reused; failed ones are retried
    assert read_csv(out)[1]["Pop"] == rows["Pop"]
    run(compare_args(tiny_data_path, out, "Pop", "--mode", "uni9", "--seeds", "0", "--force"))
    assert calls[2:] == ["Pop"]


def test_changing_a_row_config_reruns_only_that_row(tiny_data_path, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    run(compare_args(tiny_data_path, out, "Pop,GRU4Rec", "--mode", "uni9"))
    calls = count_run_recbole_calls(monkeypatch)
    run(compare_args(tiny_data_path, out, "Pop,GRU4Rec", "--mode", "uni9", "--config", "GRU4Rec.dropout_prob=0.1"))
    assert calls == ["GRU4Rec"]
    assert len(run_dirs(out, "GRU4Rec")) == 2  # both configs are kept, each under its own hash


def test_mllmrecr1_runs_share_the_comparisons_trainings_and_force_retrains(tiny_data_path, tmp_path, monkeypatch):
    settings = settings_from_args(compare_args(tiny_data_path, tmp_path / "cmp", "Pop", "--mode", "uni9"))
    likelihood = plan_run("MLLMRecR1", {"stages": ["sft"]}, 0, settings)
    generative = plan_run("MLLMRecR1", {"stages": ["sft"], "eval_scoring": "generative"}, 0, settings)
    pop = plan_run("Pop", {}, 0, settings)
    # Two rows, two result folders, one folder of trainings (the trainer's run key tells them apart).
    assert likelihood.run_dir != generative.run_dir
    assert likelihood.checkpoint_dir == generative.checkpoint_dir == os.path.join(settings.out, "trainings")
    assert pop.checkpoint_dir == pop.run_dir

    trained = os.path.join(settings.out, "trainings", "MLLMRecR1-tiny-0123456789")
    os.makedirs(trained)
    monkeypatch.setattr(execute, "execute_run", lambda spec, settings: {"error": "not run here"})
    row = Row("MLLMRecR1 (likelihood)", "MLLMRecR1", {"stages": ["sft"]})
    execute.run_all([row], settings)
    assert os.path.isdir(trained)  # reused
    execute.run_all([row], settings_from_args(compare_args(tiny_data_path, tmp_path / "cmp", "Pop", "--mode", "uni9", "--force")))
    assert not os.path.exists(trained)


def test_valid_mode_validates_every_row_in_its_mode_and_one_mode_stays_a_string(tiny_data_path, tmp_path):
    plain = settings_from_args(compare_args(tiny_data_path, tmp_path / "cmp", "Pop", "--mode", "uni9"))
    same = settings_from_args(compare_args(tiny_data_path, tmp_path / "cmp", "Pop", "--mode", "uni9", "--valid-mode", "uni9"))
    assert plan_run("Pop", {}, 0, same).config_dict["eval_args"]["mode"] == "uni9"
    # A comparison without --valid-mode keeps its config hashes, hence its finished runs.
    assert plan_run("Pop", {}, 0, same).config_hash == plan_run("Pop", {}, 0, plain).config_hash
    split = settings_from_args(compare_args(tiny_data_path, tmp_path / "cmp", "Pop", "--mode", "full", "--valid-mode", "uni9"))
    for model, overrides in (("Pop", {}), ("SASRec", {}), ("MLLMRecR1", {"stages": ["sft"]})):
        assert plan_run(model, overrides, 0, split).config_dict["eval_args"]["mode"] == {"valid": "uni9", "test": "full"}
    assert plan_run("Pop", {}, 0, split).config_hash != plan_run("Pop", {}, 0, plain).config_hash
    assert "--valid-mode uni9" in command_line(split) and "--valid-mode" not in command_line(same)
    with pytest.raises(ValueError, match=r"--valid-mode \[uni\] is not an evaluation mode: use full, uniN or popN"):
        settings_from_args(compare_args(tiny_data_path, tmp_path / "cmp", "Pop", "--valid-mode", "uni"))


def test_trainings_puts_every_mllmrecr1_run_in_one_shared_folder_that_force_empties(tiny_data_path, tmp_path, monkeypatch):
    shared = tmp_path / "shared-trainings"
    per_mode = [
        settings_from_args(
            compare_args(tiny_data_path, tmp_path / mode, "Pop", "--mode", mode, "--valid-mode", "uni9", "--trainings", str(shared))
        )
        for mode in ("uni9", "full")
    ]
    specs = [plan_run("MLLMRecR1", overrides, 0, settings) for settings in per_mode for overrides in ({"stages": ["sft"]}, {"stages": []})]
    assert {spec.checkpoint_dir for spec in specs} == {str(shared)}
    assert plan_run("Pop", {}, 0, per_mode[1]).checkpoint_dir == plan_run("Pop", {}, 0, per_mode[1]).run_dir

    trained = shared / "MLLMRecR1-tiny-0123456789"
    trained.mkdir(parents=True)
    monkeypatch.setattr(execute, "execute_run", lambda spec, settings: {"error": "not run here"})
    row = Row("MLLMRecR1 (likelihood)", "MLLMRecR1", {"stages": ["sft"]})
    execute.run_all([row], per_mode[1])
    assert trained.is_dir()  # reused
    forced = compare_args(tiny_data_path, tmp_path / "full", "Pop", "--mode", "full", "--trainings", str(shared), "--force")
    execute.run_all([row], settings_from_args(forced))
    assert not shared.exists()


@pytest.mark.slow
def test_compare_mllmrecr1_zero_shot_rows_against_baselines(tiny_data_path, default_llm_dir, tmp_path):
    out = tmp_path / "cmp"
    run(compare_args(tiny_data_path, out, "Pop,mllmrecr1-zero-shot,mllmrecr1-zero-shot-no-image-text", "--mode", "uni9",
                     "--eval-user-sample", "4"))
    _, rows = read_csv(out)
    assert list(rows) == ["random", "SASRec", "Pop", "MLLMRecR1 (zero-shot)", "MLLMRecR1 (zero-shot, no image text)"]
    for name in ("MLLMRecR1 (zero-shot)", "MLLMRecR1 (zero-shot, no image text)"):
        row = rows[name]
        assert row["error"] == "" and row["users"] == "4" and float(row["HR@10"]) == 1.0
        assert float(row["params total"]) > 1e8 and 0 < float(row["p (NDCG@10)"]) <= 1
    assert "use_image_text=False" in rows["MLLMRecR1 (zero-shot, no image text)"]["config"]
    assert "best baseline" in (rows["Pop"]["vs best baseline"], rows["SASRec"]["vs best baseline"])


@pytest.mark.slow
def test_full_ranking_reranks_the_sasrec_of_the_same_run(tiny_data_path, default_llm_dir, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    args = ("--mode", "full", "--eval-user-sample", "3", "--rerank-topk", "5")
    run(compare_args(tiny_data_path, out, "mllmrecr1-zero-shot", *args))
    _, rows = read_csv(out)
    assert list(rows) == ["random", "SASRec", "MLLMRecR1 (zero-shot)"]
    assert rows["random"]["config"].endswith("among 40 candidates")
    assert all(row["error"] == "" for row in rows.values())
    sasrec_dir, = run_dirs(out, "SASRec")
    llm_dir, = run_dirs(out, "MLLMRecR1")
    record = json.load(open(os.path.join(llm_dir, "result.json")))
    assert record["config_dict"]["retriever_checkpoint"] == os.path.join(sasrec_dir, "model.pth")
    assert record["config_dict"]["rerank_topk"] == 5 and "reranks SASRec" in rows["MLLMRecR1 (zero-shot)"]["config"]
    # The LLM only reorders SASRec's top 5 and keeps its order below: HR@5 and HR@10 are SASRec's, user by user.
    sasrec, llm = per_user(sasrec_dir), per_user(llm_dir)
    assert np.array_equal(sasrec["user_ids"], llm["user_ids"])
    assert np.array_equal(sasrec["hit@5"], llm["hit@5"]) and np.array_equal(sasrec["hit@10"], llm["hit@10"])

    calls = count_run_recbole_calls(monkeypatch)
    run(compare_args(tiny_data_path, out, "mllmrecr1-zero-shot", *args))
    assert calls == []
    run(compare_args(tiny_data_path, out, "SASRec", *args, "--force"))
    assert calls == ["SASRec"]
    # A retrained retriever makes its reranker stale.
    settings = settings_from_args(compare_args(tiny_data_path, out, "mllmrecr1-zero-shot", *args))
    sasrec_row, llm_row = select_rows(["mllmrecr1-zero-shot"], "full")
    retriever = plan_run(sasrec_row.model, sasrec_row.overrides, 0, settings)
    llm_spec = plan_run(llm_row.model, llm_row.overrides, 0, settings, retriever)
    assert llm_spec.run_dir == llm_dir and not is_reusable(load_record(llm_dir), llm_spec)
