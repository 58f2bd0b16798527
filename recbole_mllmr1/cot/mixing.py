"""Mixed-grained augmentation: every plain (answer-only) row, plus reliable CoT rows at a set ratio.

The paper keeps the standard samples so the model still learns to answer directly, and
injects the confidence-filtered CoT samples so it also learns to reason first. ``cot_ratio``
is CoT rows per plain row; when fewer CoT samples are reliable, all of them go in.
With ``cot_placement: input`` (the official code) no row is added: a share of the samples
with a reliable rationale show it in their prompt (:func:`choose_share`).
"""
import math

import numpy as np

# Independent seeded streams: changing one step's draws never shifts another's.
COT_SUBSET_STREAM, INJECTION_STREAM, SHUFFLE_STREAM, SFT_REFERENCE_STREAM, GRPO_REFERENCE_STREAM = 1, 2, 3, 4, 5


def injection_count(n_plain, n_reliable, ratio):
    """``round(ratio * n_plain)`` CoT rows, capped by how many are reliable."""
    if ratio < 0:
        raise ValueError(f"cot_ratio [{ratio}] must be >= 0 (CoT rows per plain row, e.g. 0.25).")
    return min(n_reliable, math.floor(ratio * n_plain + 0.5))


def choose_injected(n_plain, n_reliable, ratio, seed):
    """Sorted indices of the reliable CoT rows that go into the training file, a seeded draw."""
    count = injection_count(n_plain, n_reliable, ratio)
    rng = np.random.default_rng([seed, INJECTION_STREAM])
    return sorted(int(i) for i in rng.choice(n_reliable, size=count, replace=False))


def mix(plain_rows, reliable_cot_rows, ratio, seed):
    """``(training rows, injected indices into reliable_cot_rows)``: all plain rows plus the chosen CoT rows, shuffled (seeded)."""
    injected = choose_injected(len(plain_rows), len(reliable_cot_rows), ratio, seed)
    rows = list(plain_rows) + [reliable_cot_rows[i] for i in injected]
    order = np.random.default_rng([seed, SHUFFLE_STREAM]).permutation(len(rows))
    return [rows[i] for i in order], injected


def choose_share(count, share, seed, stream):
    """Sorted indices of ``round(share * count)`` of ``count`` items, a seeded draw on its own ``stream``."""
    chosen = math.floor(share * count + 0.5)
    return sorted(int(i) for i in np.random.default_rng([seed, stream]).choice(count, size=chosen, replace=False))
