"""The description cache: one JSON-lines file per dataset and backend, written one record at a time.

Each record holds the describer's identity (backend, model, sha256 of the prompt), the sha256
of the image's bytes, the item it was made for and the text. A description is reused only
when all four key fields match, so a changed image, model or prompt re-describes exactly
what it affects.

Crash safety: see :mod:`recbole_mllmr1.jsonl_store`.
"""

import os
import re

from recbole_mllmr1.jsonl_store import append_record, load_records

KEY_FIELDS = ("backend", "model", "prompt_sha256", "image_sha256")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def cache_file(cache_dir, dataset, backend):
    """``<cache_dir>/<dataset>.<backend>.jsonl``; ``dataset`` must be a plain file-name part."""
    if not _SAFE_NAME.match(str(dataset)):
        raise ValueError(
            f"dataset [{dataset}] cannot name a cache file: use letters, digits and . _ + - only "
            "(it is the RecBole dataset name, e.g. 'ml-100k')."
        )
    return os.path.join(os.path.expanduser(str(cache_dir)), f"{dataset}.{backend}.jsonl")


def record_key(record):
    return tuple(record[field] for field in KEY_FIELDS)


class DescriptionCache:
    """Load the cache file (repairing a cut-off last line) and append new records durably."""

    def __init__(self, path):
        self.path = path
        self._texts = {}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            self._load()

    def __len__(self):
        return len(self._texts)

    def get(self, key):
        return self._texts.get(key)

    def _load(self):
        def accept(record):
            self._texts[record_key(record)] = record["text"]

        load_records(self.path, "Description cache", accept)

    def append(self, record):
        """Write one record as one line and make it durable before returning."""
        append_record(self.path, record)
        self._texts[record_key(record)] = record["text"]
