"""The training-throughput benchmark's process handling."""
import multiprocessing
import os

import pytest

from tests.conftest import load_benchmark


def test_a_stage_process_that_dies_before_reporting_is_an_error_not_a_hang():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=os._exit, args=(3,))
    process.start()
    with pytest.raises(RuntimeError, match="grpo benchmark process exited with code 3"):
        load_benchmark("bench_training")._stage_result("grpo", process, queue)


def test_a_reported_row_is_returned():
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=queue.put, args=({"stage": "sft"},))
    process.start()
    assert load_benchmark("bench_training")._stage_result("sft", process, queue) == {"stage": "sft"}
    process.join()
