"""Scorer throughput and FLOP utilisation: the title scorer one prompt at a time against packed prompts.

    python benchmarks/bench_eval.py [--users 40] [--max-history 5] [--threads 2] [--tokens-per-forward N]

The same ml-100k uni9 requests (the test positive and 9 random items per user, zero-shot, no
image text unless --image-text) are scored twice, each path in its own process so that its peak
RSS is its own: one prompt per forward (the prefix alone, then its titles on its repeated cache,
full-vocabulary logits at every title position; the scorer before batching and the reference of
tests/test_scoring_batched.py), and packed prompts (many prompts per forward, the opening all
prompts share run once, the LM head only where a title token is read). The same run measures the
fp32 matmul limit of this machine at the model's layer shapes with the same threads; achieved
GFLOP/s counts 2 x non-embedding parameters x the tokens each path runs (prompt + title tokens;
the packed path runs the shared opening once, not once per user). The two paths' scores are compared
(largest log-probability difference, identical ranks). Writes eval.md and eval.csv to --results.
"""
import argparse
import csv
import multiprocessing
import os
import platform
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from flops import limit_lines, matmul_limits, non_embedding_parameters  # noqa: E402  (benchmarks/ is not a package)

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ONE_PROMPT, PACKED = "one prompt per forward (before)", "packed prompts (after)"


def _score(path, args, queue):
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from recbole_mllmr1.config import Config
    from recbole_mllmr1.listing import listing_order
    from recbole_mllmr1.quick_start import prepare_run
    from recbole_mllmr1.sequential_model import TEXT_ONLY
    from recbole_mllmr1.scoring import TitleScorer, shared_opening_length

    config = Config(
        model="MLLMRecR1",
        dataset="ml-100k",
        config_dict={"stages": [], "state": "WARNING", "max_history": args.max_history, "use_image_text": args.image_text, **TEXT_ONLY},
    )
    model, _, _, test_data = prepare_run(config)
    model.eval()
    features = test_data._dataset.inter_feat
    rng = np.random.default_rng(0)
    # Each user's prompt as the model builds it (uni9: one prompt, its candidates in the seeded listing order).
    prompts, titles, orders = [], [], []
    for row in range(args.users + 1):
        history = model.history(features[model.ITEM_SEQ][row], features[model.ITEM_SEQ_LEN][row])
        candidates = [int(features[model.ITEM_ID][row])] + rng.choice(np.arange(1, model.n_items), 9, replace=False).tolist()
        order = listing_order(config["seed"], int(features[model.USER_ID][row]), candidates)
        listed = [candidates[j] for j in order]
        prompts.append(model.prompt(history, listed))
        titles.append([model.item_title(item) for item in listed])
        orders.append(order)
    llm = model.language_model
    scorer = TitleScorer(llm, model.tokenizer)
    if args.tokens_per_forward:
        scorer.tokens_per_forward = args.tokens_per_forward

    def score(prompts, titles):
        if path == PACKED:
            return scorer.log_probs(prompts, titles)
        with torch.no_grad():
            return [scorer.candidate_log_probs(prompt, candidate_titles) for prompt, candidate_titles in zip(prompts, titles)]

    score(prompts[:1], titles[:1])  # warm-up: first-call allocations and kernel selection
    start = time.perf_counter()
    listed_log_probs = score(prompts[1:], titles[1:])
    seconds = time.perf_counter() - start
    # Back to each user's candidate order (positive first), as predict reads them.
    results = []
    for log_probs, order in zip(listed_log_probs, orders[1:]):
        in_candidate_order = np.empty(len(order))
        in_candidate_order[order] = log_probs.double().numpy()
        results.append((in_candidate_order, order))

    tokens, prefixes = 0, []
    for prompt, candidate_titles in zip(prompts[1:], titles[1:]):
        prefix, continuations, _ = scorer.answer_ids(prompt, candidate_titles)
        tokens += len(prefix) + sum(len(c) for c in continuations)
        prefixes.append(prefix)
    # The packed path runs the opening its prompts share once (all users are one call).
    tokens_run = tokens - shared_opening_length(prefixes) * (args.users - 1) if path == PACKED else tokens
    params = non_embedding_parameters(llm)
    queue.put({"path": path, "users": args.users, "seconds": seconds, "users_per_s": args.users / seconds,
               "tokens": tokens, "tokens_run": tokens_run, "non_embedding_params": params,
               "gflops": 2 * params * tokens_run / seconds / 1e9,
               "tokens_per_forward": scorer.tokens_per_forward if path == PACKED else "",
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "shapes": (llm.config.hidden_size, llm.config.intermediate_size),
               "scores": [(log_probs.tolist(), order.tolist()) for log_probs, order in results]})


def _run(path, args):
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_score, args=(path, args, queue))
    process.start()
    row = queue.get()
    process.join()
    return row


def agreement(before, after):
    """Largest log-probability difference and whether every user's ranking is the same."""
    import numpy as np

    from recbole_mllmr1.model.sequential_recommender.mllmrecr1 import strict_rank_scores

    largest, same_ranks = 0.0, True
    for (old, order), (new, _) in zip(before["scores"], after["scores"]):
        largest = max(largest, float(np.max(np.abs(np.subtract(old, new)))))
        same_ranks &= bool(np.array_equal(strict_rank_scores(old, np.array(order)), strict_rank_scores(new, np.array(order))))
    return largest, same_ranks


def write(rows, limits, args):
    limit = max(entry["gflops"] for entry in limits)
    for row in rows:
        row["limit_gflops"] = limit
        row["utilisation"] = row["gflops"] / limit
    largest, same_ranks = agreement(*rows)
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU, {args.threads} torch threads, Python {platform.python_version()}"
    lines = [
        "# Scorer throughput and FLOP utilisation\n",
        f"Command: `python benchmarks/bench_eval.py {' '.join(sys.argv[1:])}`; machine: {machine}.\n",
        f"ml-100k, {args.users} users, uni9 (10 candidates each), max_history {args.max_history}, "
        f"{'with' if args.image_text else 'no'} image text, zero-shot; {rows[0]['non_embedding_params'] / 1e6:.1f}M "
        f"non-embedding parameters, {rows[0]['tokens']} prompt + title tokens.\n",
        *limit_lines(limits, args.threads),
    ]

    def per_forward(row):
        return f", <= {row['tokens_per_forward']} tokens per forward" if row["tokens_per_forward"] else ""

    lines += [
        "## Scoring\n",
        "| path | users/s | seconds | tokens run | GFLOP/s | of limit | peak RSS MiB |", "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['path']}{per_forward(r)} | {r['users_per_s']:.2f} | {r['seconds']:.1f} | {r['tokens_run']} | {r['gflops']:.0f} | "
        f"{r['utilisation']:.0%} | {r['peak_rss_mib']:.0f} |"
        for r in rows
    ]
    lines += [
        f"\nSpeed-up: {rows[1]['users_per_s'] / rows[0]['users_per_s']:.2f}x. Agreement: largest log-probability "
        f"difference {largest:.2e}, ranks {'identical' if same_ranks else 'DIFFERENT'} for every user.",
    ]
    text = "\n".join(lines) + "\n"
    os.makedirs(args.results, exist_ok=True)
    with open(os.path.join(args.results, "eval.md"), "w") as file:
        file.write(text)
    fields = ["path", "users", "seconds", "users_per_s", "tokens", "tokens_run", "gflops", "limit_gflops", "utilisation", "tokens_per_forward", "peak_rss_mib"]
    with open(os.path.join(args.results, "eval.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=40)
    parser.add_argument("--max-history", type=int, default=5)
    parser.add_argument("--image-text", action="store_true", help="list each item's image description (textualized first)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens-per-forward", type=int, default=None, help="the packed path's batch size (default: the scorer's)")
    parser.add_argument("--results", default=RESULTS, help="folder for eval.md and eval.csv")
    args = parser.parse_args()
    rows = [_run(path, args) for path in (ONE_PROMPT, PACKED)]
    rows_per_forward = rows[1]["tokens_per_forward"]
    limits = matmul_limits(rows[0]["shapes"], sorted({400, rows_per_forward}), args.threads)
    write(rows, limits, args)


if __name__ == "__main__":
    main()
