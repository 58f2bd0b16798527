"""Streaming review reader vs. pandas.read_json(lines=True): rows/s and peak memory on one large file.

    python benchmarks/bench_converters.py [--lines 2000000] [--seed 0]

Generates an Amazon-Reviews-2023-style reviews file (JSON lines with the real field names and
review texts of realistic length) in a temporary folder, then reads it in a fresh subprocess per
reader: the converters' streaming reader (``Amazon2023Source.read_interactions``, which keeps
compact per-interaction arrays) and a naive ``pandas.read_json(path, lines=True)``. Peak RSS is
the child's ``ru_maxrss`` (from ``os.wait4``); each reader's import-only baseline is measured the
same way. Writes benchmarks/results/converters.md and converters.csv.
"""
import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "benchmarks" / "results"
WORDS = (
    "great product love this works well would buy again skin hair smell scent soft price quality size small large "
    "bottle cream easy use daily recommend perfect not bad good nice after weeks results dry oily sensitive gift "
    "arrived quickly package broken cheap expensive value color light strong fresh clean gentle face body"
).split()
READERS = ("streaming", "pandas")
DEFAULT_LINES = 2_000_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES, help="reviews in the generated file (default: 2,000,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=READERS + tuple(f"{reader}-imports" for reader in READERS), help=argparse.SUPPRESS)
    parser.add_argument("path", nargs="?", help=argparse.SUPPRESS)
    return parser.parse_args()


def generate_reviews(path, lines, seed):
    """Write ``lines`` Amazon-2023-style review lines; about 5 reviews per user and 20 per product."""
    rng = random.Random(seed)
    timestamp = 1_500_000_000_000
    with open(path, "w", encoding="utf-8") as stream:
        for _ in range(lines):
            timestamp += rng.randint(0, 60_000)
            item = f"B{rng.randrange(max(1, lines // 20)):09d}"
            stream.write(json.dumps({
                "rating": float(rng.randint(1, 5)),
                "title": " ".join(rng.choices(WORDS, k=rng.randint(2, 8))),
                "text": " ".join(rng.choices(WORDS, k=rng.randint(10, 120))),
                "images": [],
                "asin": item,
                "parent_asin": item,
                "user_id": f"AG{rng.randrange(max(1, lines // 5)):026d}",
                "timestamp": timestamp,
                "helpful_vote": rng.randint(0, 5),
                "verified_purchase": rng.random() < 0.9,
            }) + "\n")


def run_worker(reader, path):
    """Inside the child: read ``path`` with ``reader`` (or only import it) and print rows and seconds."""
    if reader.startswith("streaming"):
        # As installed; importing recbole_mllmr1 loads neither torch nor RecBole, so the baseline is the converters'.
        from recbole_mllmr1.dataset_converters.amazon2023 import Amazon2023Source
        from recbole_mllmr1.dataset_converters.bad_lines import BadLineLog
        from recbole_mllmr1.dataset_converters.interactions import InteractionCollector
        from recbole_mllmr1.dataset_converters.records import RecordReader
    else:
        import pandas as pd
    if reader.endswith("-imports"):
        print(json.dumps({"rows": 0, "seconds": 0.0}))
        return
    started = time.perf_counter()
    if reader == "streaming":
        collector = InteractionCollector()
        Amazon2023Source(path, path).read_interactions(collector, RecordReader(BadLineLog(skip_bad_lines=False)))
        rows = len(collector.to_table())
    else:
        frame = pd.read_json(path, lines=True)[["user_id", "parent_asin", "rating", "timestamp"]]
        rows = len(frame)
    print(json.dumps({"rows": rows, "seconds": time.perf_counter() - started}))


def measure(reader, path):
    """Run one worker in a subprocess; its result plus peak RSS in MiB."""
    child = subprocess.Popen([sys.executable, __file__, "--worker", reader, str(path)], stdout=subprocess.PIPE, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"worker {reader} failed with exit code {child.returncode}")
    result = json.loads(output)
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # Linux reports kilobytes
    return result


def write_results(rows, file_bytes, lines, command):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fields = ["reader", "rows", "seconds", "rows_per_s", "peak_rss_mib", "import_baseline_rss_mib", "rss_above_baseline_mib"]
    with open(RESULTS_DIR / "converters.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    streaming, pandas_row = rows
    speedup = streaming["rows_per_s"] / pandas_row["rows_per_s"]
    memory_ratio = pandas_row["rss_above_baseline_mib"] / streaming["rss_above_baseline_mib"]
    import pandas as pd

    with open("/proc/cpuinfo") as cpuinfo:
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), platform.processor())
    lines_md = [
        "# Dataset converter: streaming reader vs. pandas.read_json",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()}-core CPU VM ({cpu}), Python {platform.python_version()}, pandas {pd.__version__}  ",
        f"Input: {lines:,} generated Amazon-Reviews-2023-style review lines, "
        f"{file_bytes / 2**20:,.0f} MiB of plain JSON lines.  ",
        "Each reader runs in its own subprocess; peak RSS is that process's `ru_maxrss`, and the baseline is the "
        "same process after its imports only.",
        "",
        "| reader | rows | seconds | rows/s | peak RSS (MiB) | import baseline (MiB) | RSS above baseline (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"streaming": "streaming reader (`Amazon2023Source.read_interactions`)", "pandas": "`pandas.read_json(lines=True)`"}
    for row in rows:
        lines_md.append(
            f"| {labels[row['reader']]} | {row['rows']:,} | {row['seconds']:.1f} | {row['rows_per_s']:,.0f} | "
            f"{row['peak_rss_mib']:,.0f} | {row['import_baseline_rss_mib']:,.0f} | {row['rss_above_baseline_mib']:,.0f} |"
        )
    lines_md += [
        "",
        f"Streaming reader vs. pandas: **{speedup:.2f}x** the rows/s, "
        f"**{memory_ratio:.1f}x** less memory above the import baseline.",
        "",
    ]
    (RESULTS_DIR / "converters.md").write_text("\n".join(lines_md))
    print("\n".join(lines_md))


def main():
    args = parse_args()
    if args.worker:
        run_worker(args.worker, args.path)
        return
    command = "python benchmarks/bench_converters.py"
    command += f" --lines {args.lines}" if args.lines != DEFAULT_LINES else ""
    command += f" --seed {args.seed}" if args.seed else ""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reviews.jsonl"
        print(f"generating {args.lines:,} review lines ...", flush=True)
        generate_reviews(path, args.lines, args.seed)
        rows = []
        for reader in READERS:
            baseline = measure(f"{reader}-imports", path)
            print(f"reading with {reader} ...", flush=True)
            result = measure(reader, path)
            rows.append({
                "reader": reader,
                "rows": result["rows"],
                "seconds": round(result["seconds"], 2),
                "rows_per_s": round(result["rows"] / result["seconds"]),
                "peak_rss_mib": round(result["peak_rss_mib"], 1),
                "import_baseline_rss_mib": round(baseline["peak_rss_mib"], 1),
                "rss_above_baseline_mib": round(result["peak_rss_mib"] - baseline["peak_rss_mib"], 1),
            })
        write_results(rows, path.stat().st_size, args.lines, command)


if __name__ == "__main__":
    main()
