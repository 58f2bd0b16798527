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


def test_flops_count_the_trained_layers_backward_and_grpo_prompts_once_per_group():
    flops = load_benchmark("bench_training")._flops
    parameters = (100, 30, 2)  # P, P_last, P_lora
    sft_logs = [{"num_tokens": 50}, {"num_tokens": 100}]  # TRL's counts are cumulative
    assert flops("sft", {}, parameters, sft_logs) == (2 * 100 + 2 * 30 + 6 * 2) * 100
    # 2 steps of one prompt (100 tokens) and 4 completions of 10 tokens: 2 x 4 x 110 = 880 tokens trained on.
    grpo_logs = [{"num_tokens": 440, "completions/mean_length": 10}, {"num_tokens": 880, "completions/mean_length": 10}]
    generated = 2 * (100 + 2) * (2 * 100 + 2 * 4 * 10)
    assert flops("grpo", {"grpo_batch_size": 4, "grpo_num_generations": 4}, parameters, grpo_logs) == (2 * 100 + 2 * 30 + 6 * 2) * 880 + generated
