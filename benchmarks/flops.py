"""What the benchmarks measure FLOP utilisation against: the fp32 matmul limit of this machine at
the model's shapes, and the parameters the FLOP counts use (benchmarks/ is not a package: the
benchmark scripts import this module by putting its folder on ``sys.path``)."""
import time


def matmul_limits(shapes, rows, threads, seconds=2.0):
    """Best fp32 GFLOP/s of ``rows x k @ k x n`` for the model's MLP and attention projections."""
    import torch

    torch.set_num_threads(threads)
    hidden, intermediate = shapes
    limits = []
    for m in rows:
        for k, n in ((hidden, intermediate), (intermediate, hidden), (hidden, hidden)):
            a, b = torch.randn(m, k), torch.randn(k, n)
            for _ in range(3):
                a @ b
            repeats, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / 6:
                a @ b
                repeats += 1
            limits.append({"shape": f"{m}x{k} @ {k}x{n}", "gflops": 2 * m * k * n * repeats / (time.perf_counter() - start) / 1e9})
    return limits


def limit_lines(limits, threads):
    """The limit's markdown section; its last line names the limit, the best of the shapes."""
    lines = [f"## fp32 matmul limit (torch, {threads} threads, same run)\n", "| shape | GFLOP/s |", "|---|---|"]
    lines += [f"| {entry['shape']} | {entry['gflops']:.0f} |" for entry in limits]
    return lines + [f"\nLimit: the best of these, {max(entry['gflops'] for entry in limits):.0f} GFLOP/s.\n"]


def non_embedding_parameters(module):
    """Parameters of ``module`` less the input and output embeddings and any LoRA adapter: the weights
    every token multiplies (the LM head's and the attention scores' FLOPs are not counted)."""
    embeddings = set()
    if hasattr(module, "get_input_embeddings"):
        embeddings = {id(module.get_input_embeddings().weight), id(module.get_output_embeddings().weight)}
    return sum(p.numel() for name, p in module.named_parameters() if id(p) not in embeddings and "lora_" not in name)
