"""Durable JSON-lines files for the caches of expensive stages (image descriptions, teacher replies, scores).

A record is one complete line, appended, flushed and fsynced before the next one starts, so a
process killed mid-write leaves at most one partial last line; loading cuts it off, and the
file stays a sequence of complete records that a rerun resumes from.
"""
import json
import os
from logging import getLogger


def append_record(path, record):
    """Write ``record`` as one line of ``path`` and make it durable before returning."""
    line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
    with open(path, "ab") as handle:
        handle.write(line.encode("utf-8"))
        handle.flush()
        os.fsync(handle.fileno())


def load_records(path, label, accept):
    """Call ``accept(record)`` for each record of ``path``, repairing an interrupted last write.

    A line that is not JSON, or that ``accept`` rejects with KeyError / TypeError / ValueError,
    is logged (with ``label``, the file and the line number) and skipped: its work is redone.
    """
    logger = getLogger()
    with open(path, "rb") as handle:
        content = handle.read()
    complete_length = content.rfind(b"\n") + 1
    if complete_length < len(content):
        logger.warning(
            f"{label} {path} ends in a partial record (an interrupted write): "
            f"dropping its last {len(content) - complete_length} bytes."
        )
        with open(path, "r+b") as handle:
            handle.truncate(complete_length)
            handle.flush()
            os.fsync(handle.fileno())
    for number, line in enumerate(content[:complete_length].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            accept(json.loads(line))
        except (ValueError, KeyError, TypeError):
            logger.warning(f"{label} {path} line {number} is not a valid record: ignored (it will be recomputed).")
