"""SFT and GRPO throughput and FLOP utilisation of MLLMRecR1 with the default model, before and after issue 21.

    python benchmarks/bench_training.py [--steps 4] [--paths before,after] [--config FILE] [--out NAME]

Each stage runs once per path, each run in its own process (so that peak RSS is its own), on
ml-100k training samples with the main command's settings (properties/quick_start_config/main_cpu.yaml,
or --config; text only, SFT on answer-only samples, so that neither the sequential model nor a
teacher is timed), through the package's own stage functions (recbole_mllmr1.training.stages)
without validation or checkpoints. The "before" path is the training path before issue 21
(:func:`before_issue_21`); "after" is the package as it is. Per run: samples/s, tokens/s (prompt +
completion tokens TRL counted), achieved GFLOP/s and its share of the fp32 matmul limit that the same
run measures at the model's layer shapes (CPU only), peak RSS and, on a GPU, peak GPU memory; and how
far the two paths' per-step losses are apart. Writes benchmarks/results/training.md (or --out).
"""
import argparse
import contextlib
import multiprocessing
import os
import platform
import resource
import sys
import time
from queue import Empty
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flops import limit_lines, matmul_limits, non_embedding_parameters  # noqa: E402  (benchmarks/ is not a package)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MAIN_CPU = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "properties", "quick_start_config", "main_cpu.yaml")
PATHS = ("before", "after")

FORMULA = (
    "Achieved FLOPs count the weights every token multiplies (P: non-embedding parameters of the base model; "
    "the LM head and the attention scores are not counted, as in eval.md). Training pass over T tokens: "
    "2·P·T forward, plus 2·P_last·T backward through the last `lora_last_layers` decoder layers (P_last: "
    "their base parameters; frozen weights need only the gradient of their input, the layers below them "
    "no backward at all), plus 6·P_lora·T for the adapter (forward, input and weight gradients). GRPO adds "
    "its generation: 2·(P + P_lora) per prompt token, counted once per prompt (the group's rollouts share "
    "it), and per completion token."
)


@contextlib.contextmanager
def before_issue_21():
    """The training path before issue 21, in this process: autograd anomaly detection on (as RecBole's
    sine.py leaves it at import), TRL's fused LM head over every position on CPU (TRL's own rule) and
    GRPO rollouts that run their prompt once each (TRL's own generate call).
    tests/test_training_paths.py checks that it trains the same adapter as the package's path."""
    import torch
    import trl.trainer.utils
    from trl.kernels.chunked_logprob import _use_triton

    from recbole_mllmr1 import compat
    from recbole_mllmr1.training import rollouts

    with (
        torch.autograd.set_detect_anomaly(True),
        mock.patch.object(compat, "fuse_lm_head_on_labelled_positions_only", lambda: None),
        mock.patch.object(trl.trainer.utils, "_use_triton", _use_triton),
        mock.patch.object(rollouts, "shared_prompt_generation", lambda model: contextlib.nullcontext()),
    ):
        yield


def _parameters(config, llm, trainable):
    """(P, P_last, P_lora) of :data:`FORMULA`."""
    layers = llm.get_base_model().model.layers
    last = config["lora_last_layers"] or len(layers)
    return non_embedding_parameters(llm), sum(non_embedding_parameters(layer) for layer in layers[-last:]), trainable


def _flops(stage, config, parameters, logs):
    """FLOPs of :data:`FORMULA` for the run's tokens; ``logs`` are TRL's per-step logs."""
    p, p_last, p_lora = parameters
    tokens = logs[-1]["num_tokens"]  # cumulative
    training = (2 * p + 2 * p_last + 6 * p_lora) * tokens
    if stage == "sft":
        return training
    completion_tokens = sum(log["completions/mean_length"] for log in logs) * config["grpo_batch_size"]
    prompt_tokens_once = (tokens - completion_tokens) / config["grpo_num_generations"]
    return training + 2 * (p + p_lora) * (prompt_tokens_once + completion_tokens)


def _run_stage(stage, path, steps, config_file, queue):
    import torch
    from transformers import TrainerCallback

    from recbole_mllmr1.config import Config
    from recbole_mllmr1.quick_start import prepare_run
    from recbole_mllmr1.sequential_model import TEXT_ONLY
    from recbole_mllmr1.training import stages

    config = Config(model="MLLMRecR1", dataset="ml-100k", config_file_list=[config_file],
                    config_dict={"state": "WARNING", "stages": [stage], "sft_data": "plain", f"{stage}_steps": steps,
                                 "show_progress": False, **TEXT_ONLY})
    model, train_data, _, _ = prepare_run(config)
    trainable, _ = stages.attach_lora(config, model)
    step_logs = []

    class LogsWithoutCheckpoints(TrainerCallback):
        """Keeps TRL's step logs (tokens, losses); cancels checkpoints, whose writing is not training."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                step_logs.append(dict(logs))

        def on_step_end(self, args, state, control, **kwargs):
            control.should_save = False
            return control

    output_dir = f"/tmp/bench_training/{stage}-{path}-{time.time_ns()}"
    if stage == "sft":
        records = stages.sft_records(config, model, train_data._dataset)
        run_stage = stages.run_sft
        batch = config["sft_batch_size"]
    else:
        records = stages.grpo_records(config, model, train_data._dataset)
        run_stage = stages.run_grpo
        batch = config["grpo_batch_size"]  # completions per step
    on_cuda = torch.device(config["device"]).type == "cuda"
    with before_issue_21() if path == "before" else contextlib.nullcontext():
        start = time.perf_counter()
        run_stage(config, model, records, output_dir, callbacks=[LogsWithoutCheckpoints()])
        seconds = time.perf_counter() - start
    llm = model.language_model
    parameters = _parameters(config, llm, trainable)
    flops = _flops(stage, config, parameters, step_logs)
    queue.put({"stage": stage, "path": path, "steps": steps, "seconds": seconds, "samples_per_s": steps * batch / seconds,
               "tokens_per_s": step_logs[-1]["num_tokens"] / seconds, "gflops": flops / seconds / 1e9,
               "losses": [log["loss"] for log in step_logs],
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None,
               "device": torch.cuda.get_device_name() if on_cuda else "cpu", "threads": torch.get_num_threads(),
               "shapes": (llm.config.hidden_size, llm.config.intermediate_size), "parameters": parameters})


def _stage_result(stage, process, queue):
    """The stage's row; a stage process that dies before reporting is an error, not a silent hang."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not process.is_alive():
                raise RuntimeError(f"The {stage} benchmark process exited with code {process.exitcode} before reporting: its traceback is above.")


def _run(stage, path, args):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_run_stage, args=(stage, path, args.steps, args.config, queue))
    process.start()
    row = _stage_result(stage, process, queue)
    process.join()
    return row


def _comparison(rows):
    """Per stage with both paths: the speed-up and the largest per-step loss difference."""
    lines = []
    for stage in ("sft", "grpo"):
        paths = {r["path"]: r for r in rows if r["stage"] == stage}
        if set(paths) == set(PATHS):
            before, after = paths["before"], paths["after"]
            difference = max(abs(a - b) for a, b in zip(after["losses"], before["losses"]))
            lines.append(f"- {stage}: {after['samples_per_s'] / before['samples_per_s']:.2f}x the samples/s; "
                         f"largest per-step loss difference {difference:.1e}.")
    return lines


def write(rows, limits, args):
    on_cpu = rows[0]["device"] == "cpu"
    limit = max(entry["gflops"] for entry in limits) if on_cpu else None
    machine = f"{os.cpu_count()}-core {platform.machine()}, {rows[0]['threads']} torch threads, Python {platform.python_version()}"
    lines = [f"# Training throughput and FLOP utilisation (default model, {os.path.basename(args.config)} settings)\n",
             f"Command: `python benchmarks/bench_training.py {' '.join(sys.argv[1:])}`; machine: {machine}.\n"]
    if on_cpu:
        lines += limit_lines(limits, rows[0]["threads"])
    lines += ["## Training\n",
              "| stage | path | device | steps | samples/s | tokens/s | GFLOP/s | of limit | peak RSS MiB | peak GPU MiB |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        share = f"{r['gflops'] / limit:.0%}" if on_cpu else ""
        gpu_memory = "" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:.0f}"
        lines.append(f"| {r['stage']} | {r['path']} | {r['device']} | {r['steps']} | {r['samples_per_s']:.2f} | {r['tokens_per_s']:.0f} | "
                     f"{r['gflops']:.0f} | {share} | {r['peak_rss_mib']:.0f} | {gpu_memory} |")
    lines += ["", *_comparison(rows), "",
              "samples = SFT samples, or GRPO completions (prompts x generations); tokens = what TRL counted (prompt + completion). "
              "before = autograd anomaly detection on, TRL's LM head over every position and GRPO rollouts that each run their prompt; "
              "after = the package's path.",
              "", FORMULA + " Here P = {:.1f}M, P_last = {:.1f}M, P_lora = {:.2f}M.".format(*(n / 1e6 for n in rows[0]["parameters"]))]
    text = "\n".join(lines) + "\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, args.out), "w") as file:
        file.write(text)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--paths", default=",".join(PATHS), help="the paths to run, comma-separated: before, after")
    parser.add_argument("--config", default=MAIN_CPU, help="MLLMRecR1 config file (default: main_cpu.yaml)")
    parser.add_argument("--out", default="training.md", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    paths = args.paths.split(",")
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"--paths {sorted(unknown)}: choose from {', '.join(PATHS)}")
    rows = [_run(stage, path, args) for stage in ("sft", "grpo") for path in paths]
    tokens_per_step = sorted({round(r["tokens_per_s"] * r["seconds"] / r["steps"], -2) for r in rows})
    limits = matmul_limits(rows[0]["shapes"], [int(m) for m in tokens_per_step], rows[0]["threads"]) if rows[0]["device"] == "cpu" else []
    write(rows, limits, args)


if __name__ == "__main__":
    main()
