"""Is the next item readable from the frozen default model? A linear probe over candidate lines.

    python benchmarks/bench_probe.py [--prompts 300] [--held-out 0.4]

Builds training prompts exactly as SFT does (ml-100k's training split, 10 candidates, the main
command's settings), runs the frozen model once per prompt and takes the last hidden state at
the last token of each candidate line. A logistic regression fitted on the first prompts'
lines (target vs. negatives) then ranks the candidates of the held-out prompts; its HR@1 is
compared with the random floor and with the model's own zero-shot answer (the title scorer)
on the same prompts. A probe far above the floor while the answer stays at it means the
features know the answer and the answer head does not (yet). Writes benchmarks/results/probe.md.
"""
import argparse
import os
import platform

import numpy as np

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
MAIN_CPU = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "properties", "quick_start_config", "main_cpu.yaml")
SAMPLE_SEED = 7  # not the SFT seed: these prompts are not the ones the main command trains on


def line_end_features(model, sample):
    """Last hidden state at the last token of each candidate line of the sample's scoring prompt."""
    import torch

    from recbole_mllmr1.prompts import CANDIDATES_HEADER
    from recbole_mllmr1.training_samples import sample_messages

    text = model.render_prompt(sample_messages(model, sample))
    encoded = model.tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    with torch.no_grad():
        hidden = model.language_model(input_ids=torch.tensor([encoded["input_ids"]]), output_hidden_states=True).hidden_states[-1][0]
    list_start = text.index(CANDIDATES_HEADER) + len(CANDIDATES_HEADER)
    line_ends = np.cumsum([len(line) + 1 for line in text[list_start:].split("\n")[: len(sample.candidates)]]) + list_start - 1
    ends = np.array([end for _, end in encoded["offset_mapping"]])
    token_rows = [int(np.nonzero((ends <= line_end) & (ends > 0))[0].max()) for line_end in line_ends]
    return hidden[token_rows].float().numpy()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=300)
    parser.add_argument("--held-out", type=float, default=0.4, help="share of prompts the probe is tested on")
    args = parser.parse_args()

    import torch
    from sklearn.linear_model import LogisticRegression
    from tqdm import tqdm

    from recbole_mllmr1.config import Config
    from recbole_mllmr1.quick_start import prepare_run
    from recbole_mllmr1.sequential_model import TEXT_ONLY
    from recbole_mllmr1.training_samples import draw_training_samples

    config = Config(model="MLLMRecR1", dataset="ml-100k", config_file_list=[MAIN_CPU], config_dict={"state": "WARNING", "stages": [], **TEXT_ONLY})
    model, train_data, _, _ = prepare_run(config)
    model.language_model.eval()
    torch.manual_seed(0)
    samples = draw_training_samples(model, train_data._dataset, args.prompts, config["train_candidates"], SAMPLE_SEED)
    features = [line_end_features(model, sample) for sample in tqdm(samples, desc="Frozen features")]
    targets = [sample.target_index for sample in samples]
    n_fit = int(len(samples) * (1 - args.held_out))
    x = np.concatenate(features[:n_fit])
    y = np.concatenate([np.arange(len(f)) == t for f, t in zip(features[:n_fit], targets[:n_fit])])
    probe = LogisticRegression(C=0.1, max_iter=2000).fit(x, y)
    probe_hits = [int(np.argmax(probe.decision_function(f)) == t) for f, t in zip(features[n_fit:], targets[n_fit:])]
    answer_scores = model.candidate_log_probs([(s.user_id, s.history, list(s.candidates)) for s in samples[n_fit:]])
    answer_hits = [int(np.argmax(log_probs) == t) for (log_probs, _), t in zip(answer_scores, targets[n_fit:])]

    n_candidates = config["train_candidates"]
    machine = f"{os.cpu_count()}-core {platform.machine()} CPU, Python {platform.python_version()}"
    text = "\n".join([
        "# Linear probe on the frozen default model\n",
        f"Command: `python benchmarks/bench_probe.py --prompts {args.prompts} --held-out {args.held_out}`; machine: {machine}.",
        f"ml-100k training-split prompts with {n_candidates} candidates; probe fitted on {n_fit} prompts, tested on {len(samples) - n_fit}.\n",
        "| ranking of the held-out prompts' candidates | HR@1 |", "|---|---|",
        f"| random floor | {1 / n_candidates:.3f} |",
        f"| zero-shot answer (the title scorer) | {np.mean(answer_hits):.3f} |",
        f"| logistic regression on line-end hidden states | {np.mean(probe_hits):.3f} |",
    ]) + "\n"
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "probe.md"), "w", encoding="utf-8") as file:
        file.write(text)
    print(text)


if __name__ == "__main__":
    main()
