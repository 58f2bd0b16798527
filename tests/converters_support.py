"""Helpers shared by the dataset converter tests: running the command and reading what it wrote."""
import argparse
import csv
import json
from pathlib import Path

from recbole_mllmr1.dataset_converters import cli

FIXTURES = Path(__file__).parent / "fixtures" / "converters"


def run_convert(*argv):
    """Run ``recbole-mllmr1 convert <argv...>`` in-process (without progress bars); returns the exit code."""
    parser = argparse.ArgumentParser(prog="recbole-mllmr1 convert")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args([*map(str, argv), "--no-progress"]))


def read_atomic(path):
    """Rows of a RecBole atomic file as dicts keyed by field name (without the ``:type`` suffix)."""
    with open(path, encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream, delimiter="\t"))
    names = [column.split(":")[0] for column in rows[0]]
    return [dict(zip(names, row)) for row in rows[1:]]


def read_dataset(out_dir):
    """``(inter rows, {item_id: item row}, manifest)`` of a converted dataset folder."""
    out_dir = Path(out_dir)
    name = out_dir.name
    inter = read_atomic(out_dir / f"{name}.inter")
    items = {row["item_id"]: row for row in read_atomic(out_dir / f"{name}.item")}
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    return inter, items, manifest


def leftovers(parent):
    """Hidden staging folders or temporary files left next to an output folder."""
    return sorted(path.name for path in Path(parent).iterdir() if path.name.startswith("."))
