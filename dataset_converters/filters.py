"""Interaction filters: minimum rating, duplicate removal, items without metadata, k-core, chronological order.

They run in this order: a low rating is dropped before duplicates are resolved (so a later high
rating of the same item survives), and duplicates and the interactions of items without metadata
are removed before k-core (so neither counts towards the core). Each filter takes and returns row
numbers of the :class:`InteractionTable`.
"""
from dataclasses import dataclass

import numpy as np


@dataclass
class FilterResult:
    """The kept rows in chronological order, and how many rows each filter dropped."""

    rows: np.ndarray
    dropped: dict
    kcore_passes: int


def filter_interactions(table, min_rating=None, keep_duplicates=False, kcore=0, items_with_metadata=None):
    """Apply the enabled filters to ``table`` and order what is left by time.

    ``items_with_metadata`` (a boolean per item index), when given, drops the interactions of items without.
    """
    rows = np.arange(len(table))
    dropped = {"below_min_rating": 0, "duplicate": 0, "without_metadata": 0, "kcore": 0}
    kcore_passes = 0
    if min_rating is not None:
        kept = drop_below_min_rating(table.ratings, rows, min_rating)
        dropped["below_min_rating"], rows = len(rows) - len(kept), kept
    if not keep_duplicates:
        kept = drop_repeated_pairs(table.users, table.items, table.timestamps, rows)
        dropped["duplicate"], rows = len(rows) - len(kept), kept
    if items_with_metadata is not None:
        kept = rows[items_with_metadata[table.items[rows]]]
        dropped["without_metadata"], rows = len(rows) - len(kept), kept
    if kcore > 1:
        kept, kcore_passes = k_core(table.users, table.items, rows, kcore)
        dropped["kcore"], rows = len(rows) - len(kept), kept
    return FilterResult(rows=chronological(table.timestamps, rows), dropped=dropped, kcore_passes=kcore_passes)


def drop_below_min_rating(ratings, rows, min_rating):
    """Rows whose rating is at least ``min_rating``."""
    return rows[ratings[rows] >= min_rating]


def drop_repeated_pairs(users, items, timestamps, rows):
    """One row per (user, item): the earliest; among equal timestamps the first in the input."""
    if len(rows) == 0:
        return rows
    order = np.lexsort((rows, timestamps[rows], items[rows], users[rows]))
    by_pair = rows[order]
    pair_users, pair_items = users[by_pair], items[by_pair]
    first_of_pair = np.ones(len(by_pair), dtype=bool)
    first_of_pair[1:] = (pair_users[1:] != pair_users[:-1]) | (pair_items[1:] != pair_items[:-1])
    return np.sort(by_pair[first_of_pair])


def k_core(users, items, rows, k):
    """The largest subset of ``rows`` in which every user and every item has at least ``k`` rows.

    Removing a sparse item can push a user below ``k`` and vice versa, so counting repeats until a
    pass removes nothing. Returns the rows and the number of passes that removed something.
    """
    passes = 0
    while len(rows):
        row_users, row_items = users[rows], items[rows]
        user_counts = np.bincount(row_users)
        item_counts = np.bincount(row_items)
        dense = (user_counts[row_users] >= k) & (item_counts[row_items] >= k)
        if dense.all():
            break
        rows = rows[dense]
        passes += 1
    return rows, passes


def chronological(timestamps, rows):
    """``rows`` ordered by timestamp; equal timestamps keep their input order."""
    return rows[np.argsort(timestamps[rows], kind="stable")]
