"""Candidate lists shared by evaluation and training data: negative sampling and the seeded listing order.

A leaf module: the model and the training samples both list candidates, and must list
them the same way.
"""
import numpy as np

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(values):
    """A well-mixed 64-bit hash, vectorised: listing orders must not follow item ids."""
    with np.errstate(over="ignore"):
        z = (values + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
        return z ^ (z >> np.uint64(31))


def listing_order(seed, user_id, item_ids):
    """Seeded permutation of ``item_ids`` for one user; it depends on the candidate set only."""
    items = np.asarray(item_ids, dtype=np.uint64)
    with np.errstate(over="ignore"):
        keys = _splitmix64(_splitmix64(np.uint64(seed) * np.uint64(1_000_003) + np.uint64(user_id)) ^ items)
    return np.argsort(keys, kind="stable")


def sample_negatives(draw_item, excluded, count):
    """``count`` distinct items from repeated ``draw_item()`` calls, skipping those in ``excluded``.

    The caller's ``draw_item`` owns the random source (a numpy or a torch generator), so each
    caller's random stream stays its own. ``excluded`` is not modified.
    """
    excluded = set(excluded)
    picks = []
    while len(picks) < count:
        item = draw_item()
        if item not in excluded:
            excluded.add(item)
            picks.append(item)
    return picks
