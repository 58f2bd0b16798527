"""Scorer throughput: MLLMRecR1's shared-prompt title scorer against a naive per-candidate `generate`.

    python benchmarks/bench_eval.py [--throughput-users 10]

Users/s of the scorer that runs each prompt once and scores every candidate's title on its
shared key/value cache, against a
naive scorer that calls `generate` once per candidate (yes/no), on the same users, each in its
own process so peak RSS is its own. Ranking quality against SASRec and the random floor (uni9,
uni19, full) comes from `benchmarks/bench_compare.py`, which runs every row through one protocol.
Writes benchmarks/results/eval.md and .csv.
"""
import argparse
import csv
import multiprocessing
import os
import platform
import resource
import sys
import time

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def _throughput(method, n_users, queue):
    import numpy as np
    import torch

    import recbole_mllmr1  # noqa: F401
    from recbole_mllmr1.config import Config
    from recbole_mllmr1.quick_start import prepare_run

    config = Config(model="MLLMRecR1", dataset="ml-100k", config_dict={"stages": [], "state": "WARNING"})
    model, _, _, test_data = prepare_run(config)
    features = test_data._dataset.inter_feat
    rng = np.random.default_rng(0)
    requests = []
    for row in range(n_users):
        history = model.history(features[model.ITEM_SEQ][row], features[model.ITEM_SEQ_LEN][row])
        candidates = [int(features[model.ITEM_ID][row])] + rng.choice(np.arange(1, model.n_items), 9, replace=False).tolist()
        requests.append((int(features[model.USER_ID][row]), history, candidates))
    start = time.perf_counter()
    if method == "one prompt pass per user":
        model.candidate_log_probs(requests)
    else:
        yes = model.tokenizer(" yes", add_special_tokens=False)["input_ids"][0]
        for _, history, candidates in requests:
            for item in candidates:
                messages = model.messages(history, [item])
                messages[-1]["content"] += " Answer yes or no."
                text = model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                batch = model.tokenizer(text, return_tensors="pt", add_special_tokens=False)
                with torch.no_grad():
                    out = model.language_model.generate(**batch, max_new_tokens=8, do_sample=False, output_scores=True,
                                             return_dict_in_generate=True, pad_token_id=model.tokenizer.pad_token_id)
                torch.log_softmax(out.scores[0][0], -1)[yes].item()
    seconds = time.perf_counter() - start
    queue.put({"method": method, "users": n_users, "seconds": seconds, "users_per_s": n_users / seconds,
               "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def throughput_rows(n_users):
    context = multiprocessing.get_context("spawn")
    rows = []
    for method in ("one prompt pass per user", "naive generate per candidate"):
        queue = context.Queue()
        process = context.Process(target=_throughput, args=(method, n_users, queue))
        process.start()
        rows.append(queue.get())
        process.join()
    rows[0]["speedup"] = rows[0]["users_per_s"] / rows[1]["users_per_s"]
    rows[1]["speedup"] = 1.0
    return rows


def write(throughput, args):
    os.makedirs(RESULTS, exist_ok=True)
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU, {platform.python_version()}"
    lines = [f"# Scorer throughput benchmark\n\nCommand: `python benchmarks/bench_eval.py {' '.join(sys.argv[1:])}`; machine: {machine}.\n",
             f"## Scorer throughput ({args.throughput_users} users, uni9: 10 candidates each)\n",
             "| method | users/s | speed-up | peak RSS MiB |", "|---|---|---|---|"]
    lines += [f"| {r['method']} | {r['users_per_s']:.3f} | {r['speedup']:.1f}x | {r['peak_rss_mib']:.0f} |" for r in throughput]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "eval.md"), "w") as file:
        file.write(text)
    with open(os.path.join(RESULTS, "eval.csv"), "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["method", "users", "seconds", "users_per_s", "speedup", "peak_rss_mib"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(throughput)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput-users", type=int, default=10)
    args = parser.parse_args()
    throughput = throughput_rows(args.throughput_users)
    write(throughput, args)


if __name__ == "__main__":
    main()
