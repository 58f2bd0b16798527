"""Paired significance of a metric difference between two models evaluated on the same users."""
import numpy as np

ALPHA = 0.05


def paired_bootstrap_p_value(values, reference, n_resamples=10_000, seed=0):
    """Two-sided p-value of ``mean(values - reference) != 0`` by a paired bootstrap over users.

    The per-user differences are centred (the null hypothesis: no mean difference) and
    resampled with replacement; the p-value is the share of resampled means at least as far
    from zero as the observed one, with the +1 correction so it is never exactly 0.
    Identical vectors give p = 1.

    >>> paired_bootstrap_p_value([1, 1, 0, 1], [1, 1, 0, 1])
    1.0
    """
    values, reference = np.asarray(values, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if values.shape != reference.shape or values.ndim != 1 or len(values) == 0:
        raise ValueError(
            f"paired vectors must be 1-d, non-empty and of the same length; got shapes {values.shape} and {reference.shape}."
        )
    differences = values - reference
    observed = abs(differences.mean())
    centred = differences - differences.mean()
    rng = np.random.default_rng(seed)
    resampled_means = np.empty(n_resamples)
    # Chunks keep memory at ~8 MB whatever the number of users.
    chunk = max(1, 1_000_000 // len(centred))
    for start in range(0, n_resamples, chunk):
        stop = min(start + chunk, n_resamples)
        picks = rng.integers(0, len(centred), size=(stop - start, len(centred)))
        resampled_means[start:stop] = centred[picks].mean(axis=1)
    # A tolerance so that rounding noise around an exact tie does not count as "farther".
    extreme = np.count_nonzero(np.abs(resampled_means) >= observed - 1e-12)
    return float((extreme + 1) / (n_resamples + 1))


def significance_label(p_value, alpha=ALPHA):
    """``"p<0.05"``-style label, or ``"n.s."`` when the difference is not significant at ``alpha``."""
    return f"p<{alpha:g}" if p_value < alpha else "n.s."
