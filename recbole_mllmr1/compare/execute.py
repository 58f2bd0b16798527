"""Running the planned runs through run_recbole: each run's folder, and every (row, seed) of a comparison."""
import gc
import os
import shutil
import traceback
from datetime import datetime, timezone

import numpy as np

from recbole_mllmr1.json_files import write_json_atomically
from recbole_mllmr1.per_user_metrics import PerUserCollector
from recbole_mllmr1.quick_start import run_recbole

from .checks import per_user_test_evaluations
from .columns import SIGNIFICANCE_METRIC, metric_label
from .plan import plan_run
from .records import is_reusable, load_record, per_user_file, row_seed
from .rows import LLM_MODEL, RETRIEVER_MODEL


def _count_parameters(model):
    parameters = list(model.parameters())
    return sum(p.numel() for p in parameters if p.requires_grad), sum(p.numel() for p in parameters)


def execute_run(spec, settings):
    """Run ``spec`` through run_recbole and write its folder; a failure becomes the record's error.

    The folder is kept between attempts (MLLMRecR1's trainer resumes an interrupted training
    from it) unless ``--force``.
    """
    if settings.force:
        shutil.rmtree(spec.run_dir, ignore_errors=True)
    os.makedirs(spec.run_dir, exist_ok=True)
    for stale in ("result.json", "error.txt"):
        if os.path.exists(os.path.join(spec.run_dir, stale)):
            os.remove(os.path.join(spec.run_dir, stale))
    record = {
        "model": spec.model,
        "seed": spec.seed,
        "dataset": settings.dataset,
        "config_hash": spec.config_hash,
        "config_files": spec.config_files,
        "config_dict": spec.config_dict,
        "error": None,
    }
    trainers = []

    def keep_per_user_metrics(trainer):
        trainer.eval_collector = PerUserCollector(trainer.config)
        trainers.append(trainer)

    try:
        if spec.retriever is not None:
            retriever_record = load_record(spec.retriever.run_dir)
            if retriever_record is None or retriever_record["error"]:
                raise RuntimeError(f"the retriever {spec.retriever.model} failed for seed {spec.seed}: see its row.")
            record["retriever_finished_at"] = retriever_record["finished_at"]
        result = run_recbole(
            model=spec.model,
            dataset=settings.dataset,
            config_file_list=spec.config_files,
            config_dict={**spec.config_dict, "checkpoint_dir": spec.checkpoint_dir},
            saved=True,
            trainer_hook=keep_per_user_metrics,
        )
        trainer = trainers[0]
        evaluations = per_user_test_evaluations(trainer, result["test_result"], settings.metrics)
        for name, (user_ids, per_user) in evaluations.items():
            np.savez(per_user_file(spec.run_dir, name), user_ids=user_ids, **per_user)
        means = {name: {metric: float(values.mean()) for metric, values in per_user.items()} for name, (_, per_user) in evaluations.items()}
        # A fixed name, so that MLLMRecR1 can find the retriever of its seed.
        if os.path.isfile(trainer.saved_model_file):
            os.replace(trainer.saved_model_file, os.path.join(spec.run_dir, "model.pth"))
        trainable, total = _count_parameters(trainer.model)
        n_items = getattr(trainer.model, "n_items", None)
        record.update(
            metrics=means.pop("final"),
            stage_metrics=means,
            recbole_test_result=dict(result["test_result"]),
            best_valid_result=dict(result["best_valid_result"] or {}),
            train_time_s=result["train_time_s"],
            test_time_s=result["test_time_s"],
            fusion_weights=result["fusion_weights"],
            grpo_hit_spread=result["grpo_hit_spread"],
            params_trainable=trainable,
            params_total=total,
            n_users=len(evaluations["final"][0]),
            n_items=None if n_items is None else n_items - 1,  # id 0 is RecBole's padding item
        )
        write_json_atomically(os.path.join(spec.run_dir, "config.json"), trainer.config.final_config_dict, indent=2)
    except Exception as error:  # one model's crash must not stop the comparison
        record["error"] = f"{type(error).__name__}: {error}"
        with open(os.path.join(spec.run_dir, "error.txt"), "w", encoding="utf-8") as file:
            file.write(traceback.format_exc())
    finally:
        trainers.clear()
        gc.collect()  # MLLMRecR1 runs each hold an LLM: free it before the next run
    record["finished_at"] = datetime.now(timezone.utc).isoformat()
    write_json_atomically(os.path.join(spec.run_dir, "result.json"), record, indent=2)
    return record


def run_all(rows, settings):
    """``{row name: [RowSeed per seed]}``; the retriever runs before the rows that rerank it, and
    rows with the same model and config share one run. With ``force``, MLLMRecR1 trains again:
    the trainings folder (``--trainings``) is emptied first."""
    if settings.force and any(row.model == LLM_MODEL for row in rows):
        shutil.rmtree(settings.trainings, ignore_errors=True)
    retriever_row = next((row for row in rows if row.model == RETRIEVER_MODEL), None)
    order = ([retriever_row] if retriever_row else []) + [row for row in rows if row is not retriever_row]
    retrievers, records = {}, {}
    results = {row.name: [] for row in rows}
    total, done = len(order) * len(settings.seeds), 0
    for row in order:
        for seed in settings.seeds:
            done += 1
            retriever = retrievers.get(seed) if row.model == LLM_MODEL else None
            spec = plan_run(row.model, row.overrides, seed, settings, retriever)
            if row is retriever_row:
                retrievers[seed] = spec
            label = f"[{done}/{total}] {row.name}, seed {seed} [{spec.config_hash}]"
            if spec.run_dir in records:
                print(f"{label}: same run as an earlier row", flush=True)
            elif not settings.force and is_reusable(load_record(spec.run_dir), spec):
                records[spec.run_dir] = load_record(spec.run_dir)
                print(f"{label}: finished earlier, reused ({spec.run_dir})", flush=True)
            else:
                print(f"{label}: running...", flush=True)
                record = records[spec.run_dir] = execute_run(spec, settings)
                outcome = record["error"] or (
                    f"{metric_label(SIGNIFICANCE_METRIC)} {record['metrics'][SIGNIFICANCE_METRIC]:.4f}, "
                    f"train {record['train_time_s']:.0f} s, test {record['test_time_s']:.0f} s"
                )
                print(f"{label}: {'FAILED: ' if record['error'] else ''}{outcome}", flush=True)
            results[row.name].append(row_seed(row, spec, records[spec.run_dir]))
    return results
