"""A JSON-lines store of finished work (teacher replies, scorer log-probs), one record per line.

A record is ``{"key": ..., "value": ..., **about}``; the key is the sha256 of everything
the value depends on (see :func:`content_key`), so a changed teacher, prompt or setting
misses the cache and recomputes exactly what it affects, and nothing else.

Crash safety: see :mod:`recbole_mllmr1.jsonl_store`.
"""
import hashlib
import json
import os

from tqdm.auto import tqdm

from recbole_mllmr1.jsonl_store import append_record, load_records


def content_key(*parts):
    """sha256 of the JSON of ``parts``: equal inputs give equal keys across processes and machines."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class JsonlCache:
    """Load ``path`` (repairing an interrupted last write) and append new records durably."""

    def __init__(self, path):
        self.path = path
        self._values = {}
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if os.path.exists(path):
            self._load()

    def __len__(self):
        return len(self._values)

    def __contains__(self, key):
        return key in self._values

    def get(self, key):
        return self._values.get(key)

    def _load(self):
        def accept(record):
            self._values[record["key"]] = record["value"]

        load_records(self.path, "Cache", accept)

    def put(self, key, value, **about):
        """Store ``value`` under ``key``; ``about`` adds fields for people reading the file, not for lookup."""
        append_record(self.path, {"key": key, "value": value, **about})
        self._values[key] = value

    def fill(self, keys, inputs, compute, batch_size, desc, show_progress=False, **about):
        """The value of every key, computing ``compute(list of inputs)`` only for keys the cache lacks.

        Equal keys are computed once; each batch's values are stored as soon as it returns, so
        an interrupted run keeps every finished batch.
        """
        pending = {}
        for key, item in zip(keys, inputs):
            if key not in self._values:
                pending.setdefault(key, item)
        pending = list(pending.items())
        for start in tqdm(range(0, len(pending), batch_size), desc=desc, disable=not show_progress):
            chunk = pending[start : start + batch_size]
            for (key, _), value in zip(chunk, compute([item for _, item in chunk]), strict=True):
                self.put(key, value, **about)
        return [self._values[key] for key in keys]


def write_jsonl_atomically(path, rows):
    """Write ``rows`` as JSON lines to a temporary sibling, fsync, then rename over ``path``.

    Readers see the old file or the complete new one, never a half-written file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    staging = f"{path}.tmp-{os.getpid()}"
    try:
        with open(staging, "w", encoding="utf-8") as handle:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def read_jsonl(path):
    """All rows of a JSON-lines file written by :func:`write_jsonl_atomically`."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
