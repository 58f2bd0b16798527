"""Token cost of textualized posters vs. the same posters as Qwen2-VL visual tokens, and offline throughput.

    python benchmarks/bench_textualize.py [--limit N] [--batch-size 8]

Reads the real ml-100k posters from ../shared (or $RECBOLE_MLLMR1_SHARED), describes them with
the offline backend into a fresh temporary cache (so every image is really computed), counts each
description's tokens with the default LLM's tokenizer, and compares with the visual tokens
Qwen2-VL would spend on the same image: one token per 28x28 patch after its 2x2 merge, at the
size its `smart_resize` picks (sides rounded to multiples of 28, 56*56 <= pixels <= 28*28*1280).
Writes benchmarks/results/textualize.md and textualize.csv.
"""

import argparse
import csv
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from recbole_mllmr1.llm import load_tokenizer
from recbole_mllmr1.textualize import textualize_images
from recbole_mllmr1.textualize.offline import OfflineDescriber
from recbole_mllmr1.textualize.sources import images_from_folder, shared_posters_dir

RESULTS_DIR = Path(__file__).resolve().parent / "results"
QWEN2_VL_PATCH = 28  # 14-px ViT patches, merged 2x2 into one LLM token
QWEN2_VL_MIN_PIXELS, QWEN2_VL_MAX_PIXELS = 56 * 56, 28 * 28 * 1280
TYPICAL_VLM_SIDE = 448  # square input many VLM pipelines resize to
FULL_POSTER_WIDTH = 500  # TMDB's w500 poster size: what a full-size poster of the same shape would cost
TARGET_RATIO = 10


def qwen2_vl_visual_tokens(width, height):
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize

    resized_height, resized_width = smart_resize(
        height, width, factor=QWEN2_VL_PATCH, min_pixels=QWEN2_VL_MIN_PIXELS, max_pixels=QWEN2_VL_MAX_PIXELS
    )
    return (resized_height // QWEN2_VL_PATCH) * (resized_width // QWEN2_VL_PATCH)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="Describe only the first N posters (by item id).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", help="Poster folder (default: the shared ml-100k posters).")
    return parser.parse_args()


def main():
    args = parse_args()
    folder = args.images or shared_posters_dir()
    if folder is None:
        sys.exit("No posters: set RECBOLE_MLLMR1_SHARED or put shared/ beside the checkout, or pass --images.")
    posters = dict(
        sorted(images_from_folder(folder).items(), key=lambda pair: int(pair[0]) if pair[0].isdigit() else pair[0])
    )
    if args.limit:
        posters = dict(list(posters.items())[: args.limit])

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    OfflineDescriber().describe([Image.new("RGB", (92, 138), "white")])  # loads the models
    model_load_s = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as cache_dir:
        started = time.perf_counter()
        result = textualize_images(
            posters, backend="offline", cache_dir=cache_dir, dataset="bench", batch_size=args.batch_size
        )
        describe_s = time.perf_counter() - started
    throughput = result.computed / describe_s
    # Other jobs on the machine slow the throughput, never the token counts: say how busy it was.
    load_average = f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after the run"

    tokenizer = load_tokenizer(None)
    rows = []
    for item, text in result.texts.items():
        with Image.open(posters[item]) as image:
            width, height = image.size
        rows.append(
            {
                "item_id": item,
                "width": width,
                "height": height,
                "words": len(text.split()),
                "text_tokens": len(tokenizer(text, add_special_tokens=False)["input_ids"]),
                "qwen2vl_native_tokens": qwen2_vl_visual_tokens(width, height),
                f"qwen2vl_{TYPICAL_VLM_SIDE}_tokens": qwen2_vl_visual_tokens(TYPICAL_VLM_SIDE, TYPICAL_VLM_SIDE),
                f"qwen2vl_w{FULL_POSTER_WIDTH}_tokens": qwen2_vl_visual_tokens(
                    FULL_POSTER_WIDTH, round(FULL_POSTER_WIDTH * height / width)
                ),
                "text": text,
            }
        )

    text_tokens = [row["text_tokens"] for row in rows]
    mean_text = statistics.mean(text_tokens)
    scenarios = [
        ("Qwen2-VL at the posters' own size (92 px wide; smart_resize -> mostly 84x140)", "qwen2vl_native_tokens"),
        (
            f"Qwen2-VL with posters upscaled to {TYPICAL_VLM_SIDE}x{TYPICAL_VLM_SIDE} (typical VLM pipeline)",
            f"qwen2vl_{TYPICAL_VLM_SIDE}_tokens",
        ),
        (
            f"Qwen2-VL on full-size posters of the same shape, {FULL_POSTER_WIDTH} px wide (TMDB w500)",
            f"qwen2vl_w{FULL_POSTER_WIDTH}_tokens",
        ),
    ]
    command = (
        "python benchmarks/bench_textualize.py"
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --batch-size {args.batch_size}" if args.batch_size != 8 else "")
    )
    machine = (
        f"{os.cpu_count()}-core CPU VM ({platform.machine()}), torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    lines = [
        "# Textualization token cost and throughput",
        "",
        f"Command: `{command}`  ",
        f"Machine: {machine}; {load_average}  ",
        f"Posters: {len(posters)} real ml-100k posters from shared/data/ml-100k-posters; "
        f"{result.described} described, {result.failed} failed.  ",
        "Text tokens: each offline description counted with the default LLM's tokenizer (SmolLM2-135M-Instruct), "
        "no special tokens. Visual tokens: Qwen2-VL's merged 28x28-patch tokens only (it adds 2 more, "
        "<|vision_start|> and <|vision_end|>, per image).",
        "",
        "## Tokens per item",
        "",
        "| representation | mean tokens | median | max | visual / text (mean) | >= 10x fewer? |",
        "|---|---|---|---|---|---|",
        f"| offline description ({statistics.mean(row['words'] for row in rows):.1f} words on average) | "
        f"{mean_text:.1f} | {statistics.median(text_tokens):.0f} | {max(text_tokens)} | 1.0 | |",
    ]
    for label, column in scenarios:
        values = [row[column] for row in rows]
        ratio = statistics.mean(values) / mean_text
        lines.append(
            f"| {label} | {statistics.mean(values):.1f} | {statistics.median(values):.0f} | {max(values)} | "
            f"{ratio:.2f} | {'yes' if ratio >= TARGET_RATIO else 'no'} |"
        )
    lines += [
        "",
        "## Offline backend throughput (CPU)",
        "",
        "| images | batch size | model load (s) | describe (s) | images/s |",
        "|---|---|---|---|---|",
        f"| {result.computed} | {args.batch_size} | {model_load_s:.1f} | {describe_s:.1f} | {throughput:.2f} |",
        "",
    ]
    report = "\n".join(lines)
    print(report)

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "textualize.md").write_text(report, encoding="utf-8")
    with open(RESULTS_DIR / "textualize.csv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
