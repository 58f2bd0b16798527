"""The training-throughput benchmark's process handling."""
import multiprocessing
import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT, load_benchmark


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: the script would run the benchmarks")
def test_the_gpu_benchmarks_script_refuses_a_machine_without_cuda():
    script = os.path.join(REPO_ROOT, "scripts", "gpu_benchmarks.sh")
    result = subprocess.run(["bash", script], env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True)
    assert result.returncode != 0 and "No CUDA device" in result.stderr
