"""What a run folder holds and what a row reads from it: the run's record, its per-user files,
whether it can be reused, and one row's result for one seed."""
import json
import os
from dataclasses import dataclass

from .plan import RunSpec


def load_record(run_dir):
    path = os.path.join(run_dir, "result.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def per_user_file(run_dir, evaluation="final"):
    return os.path.join(run_dir, "per_user.npz" if evaluation == "final" else f"per_user-{evaluation}.npz")


def is_reusable(record, spec):
    """A finished, error-free run; for a reranker, one made with the retriever as it is now."""
    if record is None or record["error"]:
        return False
    if spec.retriever is None:
        return True
    retriever_record = load_record(spec.retriever.run_dir)
    return retriever_record is not None and record.get("retriever_finished_at") == retriever_record["finished_at"]


@dataclass
class RowSeed:
    """What one row reports for one seed: its run's final test evaluation, or one training stage's."""

    seed: int
    spec: RunSpec
    record: dict
    metrics: dict = None
    per_user_file: str = None
    error: str = ""


def row_seed(row, spec, record):
    if record["error"]:
        return RowSeed(spec.seed, spec, record, error=record["error"])
    if row.stage is None:
        return RowSeed(spec.seed, spec, record, record["metrics"], per_user_file(spec.run_dir))
    if row.stage not in record["stage_metrics"]:
        tested = ", ".join(record["stage_metrics"]) or "none"
        return RowSeed(spec.seed, spec, record, error=f"the run tested no stage [{row.stage}] (tested: {tested}): add it to `stages`.")
    return RowSeed(spec.seed, spec, record, record["stage_metrics"][row.stage], per_user_file(spec.run_dir, row.stage))
