"""Small JSON files written atomically: run records that a crash must never leave half-written."""
import json
import os


def write_json_atomically(path, value, indent):
    """Write ``value`` as JSON (``indent`` spaces; other objects as ``str``) to a sibling file, then rename it over ``path``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    staging = f"{path}.tmp"
    with open(staging, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=indent, default=str)
    os.replace(staging, path)
