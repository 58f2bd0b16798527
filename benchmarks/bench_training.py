"""SFT and GRPO throughput of MLLMRecR1 with the default model on CPU (or GPU when present).

    python benchmarks/bench_training.py [--steps 4] [--config FILE] [--out NAME]

Each stage runs in its own process (so peak RSS is its own) on ml-100k training samples with
the main command's settings (properties/quick_start_config/main_cpu.yaml, or --config; SFT on
answer-only samples, so that no teacher generation is timed), through the package's own stage
functions (recbole_mllmr1.training.stages) without validation or checkpoints:
samples/s, tokens/s (prompt + completion tokens TRL counted), peak RSS and, on a GPU, peak GPU
memory. Writes benchmarks/results/training.md (or --out).
"""
import argparse
import multiprocessing
import os
import platform
import resource
import time
from queue import Empty

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MAIN_CPU = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "properties", "quick_start_config", "main_cpu.yaml")


def _run_stage(stage, steps, config_file, queue):
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
    stages.attach_lora(config, model)
    tokens = []

    class CountTokensWithoutCheckpoints(TrainerCallback):
        """Counts the tokens TRL trained on; cancels checkpoints, whose writing is not training."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "num_tokens" in logs:
                tokens.append(float(logs["num_tokens"]))

        def on_step_end(self, args, state, control, **kwargs):
            control.should_save = False
            return control

    output_dir = f"/tmp/bench_training/{stage}-{time.time_ns()}"
    if stage == "sft":
        records = stages.sft_records(config, model, train_data._dataset)
        run_stage = stages.run_sft
        batch = config["sft_batch_size"]
    else:
        records = stages.grpo_records(config, model, train_data._dataset)
        run_stage = stages.run_grpo
        batch = config["grpo_batch_size"]  # completions per step
    on_cuda = torch.device(config["device"]).type == "cuda"
    start = time.perf_counter()
    run_stage(config, model, records, output_dir, callbacks=[CountTokensWithoutCheckpoints()])
    seconds = time.perf_counter() - start
    queue.put({"stage": stage, "steps": steps, "seconds": seconds, "samples_per_s": steps * batch / seconds,
               "tokens_per_s": (tokens[-1] if tokens else float("nan")) / seconds,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20 if on_cuda else None,
               "device": torch.cuda.get_device_name() if on_cuda else "cpu"})


def _stage_result(stage, process, queue):
    """The stage's row; a stage process that dies before reporting is an error, not a silent hang."""
    while True:
        try:
            return queue.get(timeout=5)
        except Empty:
            if not process.is_alive():
                raise RuntimeError(f"The {stage} benchmark process exited with code {process.exitcode} before reporting: its traceback is above.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--config", default=MAIN_CPU, help="MLLMRecR1 config file (default: main_cpu.yaml)")
    parser.add_argument("--out", default="training.md", help="results file name under benchmarks/results/")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    rows = []
    for stage in ("sft", "grpo"):
        queue = context.Queue()
        process = context.Process(target=_run_stage, args=(stage, args.steps, args.config, queue))
        process.start()
        rows.append(_stage_result(stage, process, queue))
        process.join()
    machine = f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}"
    config_name = os.path.basename(args.config)
    command = f"python benchmarks/bench_training.py --steps {args.steps}" + ("" if args.config == MAIN_CPU else f" --config {os.path.relpath(args.config)}")
    lines = [f"# Training throughput (default model, {config_name} settings)\n\nCommand: `{command}`; machine: {machine}.\n",
             "| stage | device | steps | samples/s | tokens/s | peak RSS MiB | peak GPU MiB |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        gpu_memory = "" if r["peak_gpu_mib"] is None else f"{r['peak_gpu_mib']:.0f}"
        lines.append(f"| {r['stage']} | {r['device']} | {r['steps']} | {r['samples_per_s']:.2f} | {r['tokens_per_s']:.0f} | {r['peak_rss_mib']:.0f} | {gpu_memory} |")
    lines.append("\nsamples = SFT samples, or GRPO completions (prompts x generations); tokens = what TRL counted (prompt + completion).")
    text = "\n".join(lines) + "\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, args.out), "w") as file:
        file.write(text)
    print(text)


if __name__ == "__main__":
    main()
