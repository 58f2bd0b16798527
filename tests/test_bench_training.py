"""The training-throughput benchmark's process handling."""
import importlib.util
import multiprocessing
import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def _bench_training():
    spec = importlib.util.spec_from_file_location("bench_training", REPOSITORY / "benchmarks" / "bench_training.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_stage_process_that_dies_before_reporting_is_an_error_not_a_hang():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=os._exit, args=(3,))
    process.start()
    with pytest.raises(RuntimeError, match="grpo benchmark process exited with code 3"):
        _bench_training()._stage_result("grpo", process, queue)


def test_a_reported_row_is_returned():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=queue.put, args=({"stage": "sft"},))
    process.start()
    assert _bench_training()._stage_result("sft", process, queue) == {"stage": "sft"}
    process.join()
