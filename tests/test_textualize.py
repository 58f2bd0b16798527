"""Offline textualization: what the descriptions say, bad files, the crash-safe cache, determinism, the CLI.

Images are drawn here with PIL; the real-poster test uses ../shared and skips without it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from PIL import Image, ImageDraw, ImageFont

from recbole_mllmr1.textualize import BACKENDS, pipeline, textualize_images
from recbole_mllmr1.textualize.cache import DescriptionCache
from recbole_mllmr1.textualize.offline import MAX_DESCRIPTION_WORDS, OfflineDescriber, compose_description
from recbole_mllmr1.textualize.sources import shared_posters_dir

COLOURS = {
    "1": (205, 25, 30),
    "2": (25, 60, 200),
    "3": (30, 150, 60),
    "4": (240, 200, 40),
    "5": (120, 70, 30),
    "6": (90, 90, 90),
}


def _mostly(colour, size=(120, 180)):
    """A flat image with a small white corner, so 'mostly' is tested rather than 'only'."""
    image = Image.new("RGB", size, colour)
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 4, size[1] // 6), fill="white")
    return image


def _word_image(word):
    image = Image.new("RGB", (480, 200), "white")
    ImageDraw.Draw(image).text((25, 40), word, fill="black", font=ImageFont.load_default(size=110))
    return image


def _save_all(folder, images):
    paths = {}
    for item, image in images.items():
        paths[item] = folder / f"{item}.png"
        image.save(paths[item])
    return paths


@pytest.fixture
def colour_images(tmp_path):
    return _save_all(tmp_path, {item: _mostly(colour) for item, colour in COLOURS.items()})


def _describe(paths, cache_dir, **kwargs):
    return textualize_images(paths, cache_dir=cache_dir, show_progress=False, **kwargs)


def _records(cache_path):
    with open(cache_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_offline_names_dominant_colours(tmp_path):
    paths = _save_all(tmp_path, {"red": _mostly((210, 30, 35)), "blue": _mostly((30, 60, 210))})
    result = _describe(paths, tmp_path / "cache")
    assert re.search(r"\bred\b", result.texts["red"].lower()) and "blue" not in result.texts["red"].lower()
    assert re.search(r"\bblue\b", result.texts["blue"].lower()) and not re.search(
        r"\bred\b", result.texts["blue"].lower()
    )


def test_offline_reads_printed_text(tmp_path):
    paths = _save_all(tmp_path, {"hello": _word_image("HELLO"), "stop": _word_image("STOP")})
    result = _describe(paths, tmp_path / "cache", batch_size=2)
    assert "hello" in result.texts["hello"].lower()
    assert "stop" in result.texts["stop"].lower()


def test_descriptions_stay_within_the_word_budget(colour_images, tmp_path):
    result = _describe(colour_images, tmp_path / "cache")
    assert all(0 < len(text.split()) <= MAX_DESCRIPTION_WORDS for text in result.texts.values())
    crowded = compose_description(
        "Dark, high-contrast, vivid image, mostly black, red and orange.",
        ["product packet / packaging", "comic book", "dust jacket"],
        " ".join(f"word{index}" for index in range(60)),
    )
    assert len(crowded.split()) == MAX_DESCRIPTION_WORDS
    assert crowded.startswith("Dark, high-contrast") and crowded.endswith('".')


def test_bad_files_are_recorded_with_reasons_and_the_rest_described(colour_images, tmp_path):
    jpeg = tmp_path / "good.jpg"
    _mostly((200, 30, 30), size=(200, 300)).save(jpeg, quality=95)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg.read_bytes()[: jpeg.stat().st_size // 2])
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("this is not a picture\n")
    images = {
        **colour_images,
        "10": truncated,
        "11": not_an_image,
        "12": tmp_path / "missing.jpg",
        "13": None,
        "14": tmp_path,
    }

    result = _describe(images, tmp_path / "cache")

    assert result.failures == {
        "10": "truncated image",
        "11": "not an image",
        "12": "missing file",
        "13": "no image",
        "14": "a folder, not a file",
    }
    assert set(result.texts) == set(colour_images)
    assert (result.described, result.failed, result.not_described, result.total) == (6, 5, 5, 11)
    assert len(_records(result.cache_path)) == 6  # failures are not cached: a fixed file is described next run


def test_counts_are_logged(colour_images, tmp_path, caplog):
    images = {**colour_images, "9": tmp_path / "missing.jpg"}
    with caplog.at_level("INFO"):
        _describe(images, tmp_path / "cache")
        _describe(images, tmp_path / "cache")
    messages = [record.getMessage() for record in caplog.records]
    assert any("6 described (0 reused from cache, 6 new), 1 failed" in message for message in messages)
    assert any("6 described (6 reused from cache, 0 new), 1 failed" in message for message in messages)
    assert any("missing file: 1" in message and "missing.jpg" in message for message in messages)


class _Crash(RuntimeError):
    pass


def test_resume_after_a_crash_redoes_nothing(colour_images, tmp_path, monkeypatch):
    described = []
    crash_after = [3]
    original = OfflineDescriber.describe

    def counting_describe(self, images):
        if len(described) == crash_after[0]:
            raise _Crash("simulated kill")
        described.extend(images)
        return original(self, images)

    monkeypatch.setattr(OfflineDescriber, "describe", counting_describe)
    with pytest.raises(_Crash):
        _describe(colour_images, tmp_path / "cache", batch_size=1)
    cache_path = tmp_path / "cache" / "ml-100k.offline.jsonl"
    assert len(_records(cache_path)) == 3

    described.clear()
    crash_after[0] = None
    resumed = _describe(colour_images, tmp_path / "cache", batch_size=1)

    assert len(described) == len(colour_images) - 3
    assert (resumed.reused, resumed.computed) == (3, len(colour_images) - 3)
    records = _records(cache_path)
    assert sorted(record["item"] for record in records) == sorted(colour_images)
    assert resumed.texts == _describe(colour_images, tmp_path / "fresh").texts


def test_a_killed_process_leaves_a_valid_cache_that_resumes(colour_images, tmp_path):
    """A real SIGKILL in the middle of a run (slowed down so the kill lands mid-way)."""
    cache_dir = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import time
        from recbole_mllmr1.textualize import textualize_images
        from recbole_mllmr1.textualize.offline import OfflineDescriber
        original = OfflineDescriber.describe
        def slow(self, images):
            time.sleep(0.3)
            return original(self, images)
        OfflineDescriber.describe = slow
        paths = {json.dumps({item: str(path) for item, path in colour_images.items()})}
        textualize_images(paths, cache_dir={str(cache_dir)!r}, batch_size=1, show_progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    cache_path = cache_dir / "ml-100k.offline.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if cache_path.exists() and cache_path.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    finished = cache_path.read_bytes().count(b"\n")
    assert 2 <= finished < len(colour_images), "the kill should land mid-way"

    resumed = _describe(colour_images, cache_dir)

    assert resumed.reused >= finished and resumed.reused + resumed.computed == len(colour_images)
    assert len(_records(cache_path)) == len(colour_images)


def test_truncated_last_cache_line_is_dropped_and_repaired(colour_images, tmp_path):
    first = _describe(colour_images, tmp_path / "cache")
    cache_path = first.cache_path
    with open(cache_path, "ab") as handle:
        handle.write(b'{"backend": "offline", "image_sha256": "ab')  # a write cut off by a kill

    second = _describe(colour_images, tmp_path / "cache")

    assert (second.reused, second.computed) == (len(colour_images), 0)
    assert second.texts == first.texts
    with open(cache_path, "rb") as handle:
        assert handle.read().endswith(b"\n")
    assert len(_records(cache_path)) == len(colour_images)


def test_cache_loads_around_a_corrupt_middle_line(tmp_path):
    path = tmp_path / "c.jsonl"
    good = {"backend": "b", "model": "m", "prompt_sha256": "p", "image_sha256": "i", "item": "1", "text": "t"}
    path.write_text(json.dumps(good) + "\nnot json\n" + json.dumps({**good, "image_sha256": "j"}) + "\n")
    cache = DescriptionCache(str(path))
    assert len(cache) == 2 and cache.get(("b", "m", "p", "j")) == "t"


class _EchoDescriber:
    """Stands in for a model: its text shows which model and prompt made it."""

    backend = "vlm"

    def __init__(self, model, prompt, calls):
        self.model, self.prompt, self.calls = model or "default-model", prompt or "default prompt", calls

    def describe(self, images):
        self.calls.extend(images)
        return [f"{self.model} / {self.prompt} / {image.getpixel((60, 90))}" for image in images]


@pytest.fixture
def echo_backend(monkeypatch):
    calls = []
    monkeypatch.setattr(
        pipeline, "make_describer", lambda backend, model=None, prompt=None: _EchoDescriber(model, prompt, calls)
    )
    return calls


def test_changed_prompt_or_model_redescribes_everything(colour_images, tmp_path, echo_backend):
    cache = tmp_path / "cache"
    _describe(colour_images, cache, backend="vlm")
    assert len(echo_backend) == len(colour_images)
    for kwargs in ({}, {"prompt": "Another prompt."}, {"model": "other/model"}):
        echo_backend.clear()
        result = _describe(colour_images, cache, backend="vlm", **kwargs)
        assert len(echo_backend) == (0 if not kwargs else len(colour_images))
        assert all(text.startswith(kwargs.get("model", "default-model")) for text in result.texts.values())


def test_changed_image_bytes_redescribe_only_that_image(colour_images, tmp_path, echo_backend):
    cache = tmp_path / "cache"
    first = _describe(colour_images, cache, backend="vlm")
    _mostly((255, 128, 0)).save(colour_images["3"])
    echo_backend.clear()

    second = _describe(colour_images, cache, backend="vlm")

    assert len(echo_backend) == 1 and second.computed == 1
    assert second.texts["3"] != first.texts["3"]
    assert {item: text for item, text in second.texts.items() if item != "3"} == {
        item: text for item, text in first.texts.items() if item != "3"
    }


def test_items_sharing_one_image_are_described_once(tmp_path, echo_backend):
    _mostly((200, 0, 0)).save(tmp_path / "shared.png")
    result = _describe({"1": tmp_path / "shared.png", "2": tmp_path / "shared.png"}, tmp_path / "cache", backend="vlm")
    assert len(echo_backend) == 1 and result.texts["1"] == result.texts["2"] and result.computed == 2


def test_offline_runs_are_deterministic(colour_images, tmp_path):
    words = _save_all(tmp_path, {"w": _word_image("STOP")})
    first = _describe({**colour_images, **words}, tmp_path / "a", batch_size=3)
    second = _describe({**colour_images, **words}, tmp_path / "b", batch_size=3)
    assert first.texts == second.texts


def test_none_backend_describes_nothing_and_writes_no_cache(colour_images, tmp_path):
    result = _describe(colour_images, tmp_path / "cache", backend="none")
    assert result.texts == {} and result.not_described == len(colour_images) and result.cache_path is None
    assert not (tmp_path / "cache").exists()


def test_bad_arguments_name_the_problem(colour_images, tmp_path):
    assert BACKENDS == ("offline", "vlm", "vllm", "none")
    with pytest.raises(ValueError, match=r"backend \[clip\] is not one of offline, vlm, vllm, none"):
        _describe(colour_images, tmp_path, backend="clip")
    with pytest.raises(ValueError, match="takes no model or prompt"):
        _describe(colour_images, tmp_path, backend="offline", prompt="Describe.")
    with pytest.raises(ValueError, match=r"dataset \[../x\] cannot name a cache file"):
        _describe(colour_images, tmp_path, dataset="../x")


def test_cli_describes_a_folder_of_item_images(colour_images, tmp_path, capsys):
    from recbole_mllmr1.cli import main

    (colour_images["1"].parent / "readme.txt").write_text("not an item")
    exit_code = main(
        [
            "textualize",
            "--dataset",
            "toy",
            "--images",
            str(colour_images["1"].parent),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--data-path",
            str(tmp_path / "no-dataset"),
        ]
    )
    assert exit_code == 0
    assert f"{len(colour_images)}/{len(colour_images)} items described" in capsys.readouterr().out
    assert sorted(record["item"] for record in _records(tmp_path / "cache" / "toy.offline.jsonl")) == sorted(
        colour_images
    )


def test_cli_reads_the_item_file_image_column(tmp_path, capsys):
    from recbole_mllmr1.cli import main

    dataset_dir = tmp_path / "data" / "toy"
    (dataset_dir / "img").mkdir(parents=True)
    _mostly((200, 0, 0)).save(dataset_dir / "img" / "a.png")
    _mostly((0, 0, 200)).save(dataset_dir / "img" / "b.png")
    (dataset_dir / "toy.item").write_text(
        "item_id:token\ttitle:token_seq\tposter:token\n7\tRed one\timg/a.png\n8\tBlue one\timg/b.png\n9\tNo picture\t\n"
    )
    exit_code = main(
        [
            "textualize",
            "--dataset",
            "toy",
            "--data-path",
            str(tmp_path / "data"),
            "--image-field",
            "poster",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert exit_code == 0
    assert "2/2 items described" in capsys.readouterr().out
    texts = {record["item"]: record["text"] for record in _records(tmp_path / "cache" / "toy.offline.jsonl")}
    assert set(texts) == {"7", "8"} and "red" in texts["7"] and "blue" in texts["8"]


def test_cli_takes_run_config_keys_and_files_as_run_recbole_does(colour_images, tmp_path, capsys):
    """The keys of a run's yaml (image_dir, textualizer, textualize_cache_dir, ...) drive textualize,
    from --config_files or as --key=value; other keys of a run's yaml are left to the run."""
    from recbole_mllmr1.cli import main

    folder = colour_images["1"].parent
    run_yaml = tmp_path / "run.yaml"
    run_yaml.write_text(
        f"image_dir: {folder}\ntextualizer: offline\ntextualize_cache_dir: {tmp_path / 'from-yaml'}\n"
        f"data_path: {tmp_path / 'no-dataset'}\nepochs: 2\n"
    )
    assert main(["textualize", "--dataset=toy", f"--config_files={run_yaml}"]) == 0
    assert f"{len(colour_images)}/{len(colour_images)} items described" in capsys.readouterr().out
    assert (tmp_path / "from-yaml" / "toy.offline.jsonl").is_file()
    # A key on the command line wins over the yaml.
    assert main(["textualize", "--dataset=toy", f"--config_files={run_yaml}", f"--textualize_cache_dir={tmp_path / 'from-key'}"]) == 0
    assert (tmp_path / "from-key" / "toy.offline.jsonl").is_file()


def test_real_posters(tmp_path):
    folder = shared_posters_dir()
    if folder is None:
        pytest.skip("real posters not found: set RECBOLE_MLLMR1_SHARED or put shared/ beside the checkout")
    from recbole_mllmr1.textualize.sources import images_from_folder

    posters = dict(sorted(images_from_folder(folder).items(), key=lambda pair: int(pair[0]))[:20])
    result = _describe(posters, tmp_path / "cache")
    assert set(result.texts) == set(posters) and not result.failures
    assert all(0 < len(text.split()) <= MAX_DESCRIPTION_WORDS for text in result.texts.values())
    assert sum('Text: "' in text for text in result.texts.values()) >= 10  # posters print their titles
    assert "goldeneye" in result.texts["2"].lower()
