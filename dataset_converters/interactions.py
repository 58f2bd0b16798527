"""Compact storage of interactions while a dump is streamed.

Each interaction costs 24 bytes in typed arrays (user and item as int32 indices, rating and
timestamp as float64) plus one dictionary entry per distinct user and item, instead of a Python
object per line; this is what lets a 29M-review dump be filtered in memory.
"""
from array import array
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InteractionTable:
    """Interactions as numpy columns; ``users`` / ``items`` index into ``user_ids`` / ``item_ids``."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray
    user_ids: list
    item_ids: list

    def __len__(self):
        return len(self.users)


class InteractionCollector:
    """Appends interactions one by one, mapping user and item ids to dense integer indices."""

    def __init__(self):
        self._user_index = {}
        self._item_index = {}
        self._users = array("i")
        self._items = array("i")
        self._ratings = array("d")
        self._timestamps = array("d")

    def __len__(self):
        return len(self._users)

    def add(self, user_id, item_id, rating, timestamp):
        """Record one interaction (timestamp in seconds)."""
        self._users.append(self._user_index.setdefault(user_id, len(self._user_index)))
        self._items.append(self._item_index.setdefault(item_id, len(self._item_index)))
        self._ratings.append(rating)
        self._timestamps.append(timestamp)

    def count_timestamps_between(self, low, high):
        """How many of the timestamps collected so far are at least ``low`` and below ``high``."""
        # The numpy view is dropped on return: the array cannot grow while a view of it exists.
        timestamps = np.frombuffer(self._timestamps, dtype=np.float64)
        return int(np.count_nonzero((timestamps >= low) & (timestamps < high)))

    def to_table(self):
        """The collected interactions as an :class:`InteractionTable` (the arrays are shared, not copied)."""
        return InteractionTable(
            users=np.frombuffer(self._users, dtype=np.int32),
            items=np.frombuffer(self._items, dtype=np.int32),
            ratings=np.frombuffer(self._ratings, dtype=np.float64),
            timestamps=np.frombuffer(self._timestamps, dtype=np.float64),
            user_ids=list(self._user_index),
            item_ids=list(self._item_index),
        )
