"""Dataset converters: each source format's fixture converts to the expected atomic files; filters; output handling."""
import gzip
import hashlib
import json
import shutil

import numpy as np
import pytest
import yaml
from PIL import Image

from converters_support import FIXTURES, leftovers, read_dataset, run_convert
from recbole_mllmr1.cli import main as recbole_mllmr1_main
from recbole_mllmr1.dataset_converters.filters import filter_interactions, k_core
from recbole_mllmr1.dataset_converters.interactions import InteractionCollector

AMAZON2023 = FIXTURES / "amazon2023"
AMAZON2018 = FIXTURES / "amazon2018"
AMAZON2014 = FIXTURES / "amazon2014"
MOVIELENS = FIXTURES / "movielens"
MICROLENS = FIXTURES / "microlens"


def gzip_json_lines(path):
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        return [json.loads(line) for line in stream]


def pair_index(inter):
    return {(row["user_id"], row["item_id"]): row for row in inter}


def draw_image(path, size=(40, 30), color="red"):
    image = Image.new("RGB", size, color)
    image.save(path)
    return path


@pytest.fixture(scope="module")
def amazon2023_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "amazon-beauty"
    code = run_convert("amazon2023", "--reviews", AMAZON2023 / "Beauty.jsonl.gz",
                       "--meta", AMAZON2023 / "meta_Beauty.jsonl.gz", "--out", out, "--kcore", "2")
    assert code == 0
    return out


def test_amazon2023_interactions(amazon2023_dataset):
    inter, _, manifest = read_dataset(amazon2023_dataset)
    reviews = gzip_json_lines(AMAZON2023 / "Beauty.jsonl.gz")
    by_pair = pair_index(inter)
    first = reviews[0]
    kept = by_pair[(first["user_id"], first["parent_asin"])]
    # milliseconds become seconds; the earliest of a repeated (user, parent_asin) pair is kept
    assert float(kept["timestamp"]) == pytest.approx(first["timestamp"] / 1000)
    assert float(kept["rating"]) == first["rating"]
    assert len(by_pair) == len(inter)
    # the single-review user and the once-reviewed product fall out of the 2-core
    assert "AZZZSINGLEREVIEWERZZZZZZZZZZ" not in {row["user_id"] for row in inter}
    assert "B0BLONELY1" not in {row["item_id"] for row in inter}
    timestamps = [float(row["timestamp"]) for row in inter]
    assert timestamps == sorted(timestamps)
    counts = manifest["counts"]
    assert counts["interactions"] == {
        "read": len(reviews), "kept": len(reviews) - 3,
        "dropped": {"below_min_rating": 0, "duplicate": 1, "without_metadata": 0, "kcore": 2},
    }


def test_amazon2023_items(amazon2023_dataset):
    _, items, manifest = read_dataset(amazon2023_dataset)
    howard = items["B00YQ6X8EO"]
    assert howard["title"] == "Howard LC0008 Leather Conditioner, 8-Ounce (4-Pack)"  # tab and newline removed
    assert howard["categories"] == "Beauty_&_Personal_Care Skin_Care Face"
    assert howard["description"] == "Rich formula & gentle. Made in USA."  # HTML tag and entity resolved
    assert howard["image"] == "https://m.media-amazon.com/images/I/41qfjSfqNyL.jpg"  # the MAIN image, 'large' size
    assert items["B081TJ8YS3"]["categories"] == "All_Beauty"  # empty categories: main_category instead
    assert items["B07PNNCSP9"]["description"].split() == [f"word{index}" for index in range(50)]
    assert items["B09JS339BZ"]["title"] == '"Mineral" Powder Brush'
    assert items["B00R8DXL44"] == {"item_id": "B00R8DXL44", "title": "", "categories": "", "description": "", "image": ""}
    assert "B0NOTREVIEW" not in items
    assert manifest["counts"]["items"] == {
        "read": 7, "kept": 5, "with_metadata": 4, "without_metadata": 1, "titles_only_markup": 0,
    }


def test_amazon2023_manifest_and_yaml(amazon2023_dataset):
    manifest = json.loads((amazon2023_dataset / "manifest.json").read_text())
    reviews_entry = manifest["sources"][0]
    assert reviews_entry["sha256"] == hashlib.sha256((AMAZON2023 / "Beauty.jsonl.gz").read_bytes()).hexdigest()
    assert reviews_entry["compression"] == "gzip"
    assert manifest["options"]["kcore"] == 2
    config = yaml.safe_load((amazon2023_dataset / "amazon-beauty.yaml").read_text())
    assert config["field_separator"] == "\t" and config["seq_separator"] == " "
    assert config["load_col"] == {
        "inter": ["user_id", "item_id", "rating", "timestamp"],
        "item": ["item_id", "title", "categories", "description", "image"],
    }
    assert (config["title_field"], config["item_meta_fields"], config["image_field"]) == ("title", ["categories"], "image")
    for line in (amazon2023_dataset / "amazon-beauty.yaml").read_text().splitlines()[1:]:
        if not line.startswith("  "):
            assert "# (" in line, line


def test_compression_detected_from_content_not_extension(tmp_path):
    misnamed_gzip = tmp_path / "Beauty.jsonl"
    shutil.copy(AMAZON2023 / "Beauty.jsonl.gz", misnamed_gzip)
    misnamed_plain = tmp_path / "meta_Beauty.jsonl.gz"
    misnamed_plain.write_bytes(gzip.decompress((AMAZON2023 / "meta_Beauty.jsonl.gz").read_bytes()))
    out = tmp_path / "amazon-beauty"
    assert run_convert("amazon2023", "--reviews", misnamed_gzip, "--meta", misnamed_plain, "--out", out, "--kcore", "2") == 0
    inter, items, manifest = read_dataset(out)
    assert [source["compression"] for source in manifest["sources"]] == ["gzip", "plain"]
    assert len(inter) == 23 and items["B00YQ6X8EO"]["categories"] == "Beauty_&_Personal_Care Skin_Care Face"


def test_amazon2018(tmp_path):
    out = tmp_path / "amazon-beauty-2018"
    assert run_convert("amazon2018", "--reviews", AMAZON2018 / "Beauty_5.json.gz",
                       "--meta", AMAZON2018 / "meta_Beauty.json.gz", "--out", out) == 0
    inter, items, _ = read_dataset(out)
    reviews = gzip_json_lines(AMAZON2018 / "Beauty_5.json.gz")
    assert len(inter) == len(reviews)
    first = reviews[0]
    row = pair_index(inter)[(first["reviewerID"], first["asin"])]
    assert float(row["timestamp"]) == first["unixReviewTime"]  # already seconds
    aqua = items["B0000530HU"]
    assert aqua["title"] == "Aqua Velva After Shave, Classic Ice Blue, 7 Ounce"
    assert aqua["categories"] == "Beauty Skin_Care Face"
    assert aqua["description"] == "Classic Ice Blue aftershave. Made in USA"
    assert aqua["image"] == "https://images-na.ssl-images-amazon.com/images/I/71-aaa.jpg"  # high resolution first
    assert items["B00006L9LC"]["image"] == "https://images-na.ssl-images-amazon.com/images/I/41-bbb._SS40_.jpg"
    assert items["B00008JOL0"]["description"] == "Nourishing conditioner."  # a plain string description


def test_amazon2014_dict_literal_metadata(tmp_path):
    out = tmp_path / "amazon-beauty-2014"
    assert run_convert("amazon2018", "--reviews", AMAZON2014 / "reviews_Beauty_5.json.gz",
                       "--meta", AMAZON2014 / "meta_Beauty.json.gz", "--out", out) == 0
    inter, items, manifest = read_dataset(out)
    assert len(inter) == 16
    brushes = items["B0000530HU"]
    assert brushes["title"] == "Eco Friendly Ecotools Brush Set"
    assert brushes["categories"] == "Beauty Tools_&_Accessories Makeup_Brushes_&_Tools Makeup"  # paths flattened
    assert brushes["description"] == "Mineral Powder Brush--Apply powder. Concealer Brush."
    assert brushes["image"] == "http://ecx.images-amazon.com/images/I/51L%2BzYCQWSL._SX300_.jpg"
    assert items["B0000CC64W"]["title"] == "" and items["B0000CC64W"]["categories"] == "Beauty"
    assert manifest["counts"]["items"]["with_metadata"] == 4


def test_dict_literal_lines_are_never_executed(tmp_path, capsys):
    meta = tmp_path / "meta.json"
    marker = tmp_path / "executed"
    meta.write_text(f"{{'asin': 'B0000530HU', 'title': open({str(marker)!r}, 'w').name}}\n")
    out = tmp_path / "out"
    assert run_convert("amazon2018", "--reviews", AMAZON2014 / "reviews_Beauty_5.json.gz", "--meta", meta, "--out", out) == 1
    assert "line 1" in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


def test_movielens_100k(tmp_path):
    out = tmp_path / "ml-100k-converted"
    assert run_convert("movielens", "--src", MOVIELENS / "ml-100k", "--out", out) == 0
    inter, items, manifest = read_dataset(out)
    source_lines = (MOVIELENS / "ml-100k" / "u.data").read_text().splitlines()
    assert len(inter) == len(source_lines) == 64
    user, item, rating, timestamp = source_lines[0].split("\t")
    assert pair_index(inter)[(user, item)]["timestamp"] == timestamp
    assert pair_index(inter)[(user, item)]["rating"] == rating
    assert items["12"]["title"] == "Misérables, Les (1995)"  # latin-1 in u.item
    assert items["1"]["categories"] == "Animation Children's Comedy"  # from the genre flags
    assert items["10"]["categories"] == "Drama War"
    assert manifest["options"]["layout"] == "ml-100k"


def test_movielens_1m_dat_files(tmp_path):
    out = tmp_path / "ml-1m"
    assert run_convert("movielens", "--src", MOVIELENS / "ml-1m", "--out", out, "--min-rating", "3") == 0
    inter, items, manifest = read_dataset(out)
    ratings = [line.split("::") for line in (MOVIELENS / "ml-1m" / "ratings.dat").read_text().splitlines()]
    high = [fields for fields in ratings if int(fields[2]) >= 3]
    assert len(inter) == len(high)
    assert manifest["counts"]["interactions"]["dropped"]["below_min_rating"] == len(ratings) - len(high)
    assert {(row["user_id"], row["item_id"]) for row in inter} == {(fields[0], fields[1]) for fields in high}
    assert items["73"]["title"] == "Misérables, Les (1995)"  # latin-1 in movies.dat
    assert items["6"]["categories"] == "Action Crime Thriller"


def test_movielens_csv_with_posters_and_url_template(tmp_path):
    posters = tmp_path / "posters"
    posters.mkdir()
    draw_image(posters / "862.png", size=(60, 90))  # Toy Story, named by tmdbId
    out = tmp_path / "ml-latest-small"
    assert run_convert(
        "movielens", "--src", MOVIELENS / "ml-latest-small", "--out", out, "--posters", posters,
        "--poster-key", "tmdbId", "--poster-url-template", "https://example.org/{tmdbId}.jpg",
    ) == 0
    inter, items, manifest = read_dataset(out)
    assert len(inter) == 20
    assert items["11"]["title"] == "American President, The (1995)"  # quoted CSV value with a comma
    assert items["176279"]["categories"] == ""  # '(no genres listed)'
    assert items["1"]["image"] == "images/1.jpg"
    with Image.open(out / "images" / "1.jpg") as poster:
        assert poster.format == "JPEG" and poster.size == (60, 90)
    assert items["2"]["image"] == "https://example.org/8844.jpg"
    assert items["176279"]["image"] == ""  # no tmdbId in links.csv
    assert manifest["images"]["stored"] == 1 and manifest["images"]["written_as_url"] == 3
    assert [source["role"] for source in manifest["sources"]] == ["ratings", "movies", "links"]


def test_movielens_poster_key_without_links_is_refused(tmp_path, capsys):
    assert run_convert("movielens", "--src", MOVIELENS / "ml-1m", "--out", tmp_path / "out",
                       "--poster-url-template", "https://example.org/{imdbId}.jpg") == 1
    assert "links.csv" in capsys.readouterr().err


def test_microlens_with_covers(tmp_path):
    covers = tmp_path / "covers"
    covers.mkdir()
    for item in range(1, 10):  # item 10 has no cover
        draw_image(covers / f"{item}.jpg", color=(item * 20, 0, 0))
    out = tmp_path / "microlens-100k"
    assert run_convert("microlens", "--pairs", MICROLENS / "MicroLens-100k_pairs.csv",
                       "--titles", MICROLENS / "MicroLens-100k_title_en.csv", "--covers", covers, "--out", out) == 0
    inter, items, manifest = read_dataset(out)
    pairs = (MICROLENS / "MicroLens-100k_pairs.csv").read_text().splitlines()[1:]
    assert len(inter) == len(pairs)
    user, item, timestamp_ms = pairs[0].split(",")
    row = pair_index(inter)[(user, item)]
    assert float(row["timestamp"]) == pytest.approx(int(timestamp_ms) / 1000) and row["rating"] == "1"
    assert items["3"]["title"] == "Morning routine: 5am, cold shower, coffee"  # unquoted commas
    assert items["3"]["image"] == "images/3.jpg" and (out / "images" / "3.jpg").is_file()
    assert items["10"]["image"] == ""
    assert manifest["images"]["failed"] == 0


def test_kcore_needs_several_passes_to_reach_its_fixed_point(tmp_path):
    # With k=2 each pass exposes the next sparse node: i4, then u4, then i3, then u3.
    pairs = tmp_path / "pairs.csv"
    rows = [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i2"), ("u3", "i3"), ("u4", "i3"), ("u4", "i4")]
    pairs.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{1000 * n}\n" for n, (u, i) in enumerate(rows)))
    titles = tmp_path / "titles.csv"
    titles.write_text("i1,One\ni2,Two\n")
    out = tmp_path / "core"
    assert run_convert("microlens", "--pairs", pairs, "--titles", titles, "--out", out, "--kcore", "2") == 0
    inter, items, manifest = read_dataset(out)
    assert sorted((row["user_id"], row["item_id"]) for row in inter) == rows[:4]
    assert manifest["counts"]["kcore_passes"] == 4
    assert manifest["counts"]["interactions"]["dropped"]["kcore"] == 4


def test_kcore_result_is_a_fixed_point():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 60, 600).astype(np.int32)
    items = rng.zipf(1.6, 600).astype(np.int32) % 80
    rows, _ = k_core(users, items, np.arange(600), 4)
    assert 0 < len(rows) < 600
    assert np.all(np.bincount(users[rows])[np.unique(users[rows])] >= 4)
    assert np.all(np.bincount(items[rows])[np.unique(items[rows])] >= 4)
    again, extra_passes = k_core(users, items, rows, 4)
    assert extra_passes == 0 and np.array_equal(again, rows)


def test_duplicates_keep_the_earliest_and_can_be_kept():
    collector = InteractionCollector()
    for user, item, rating, timestamp in [("a", "x", 5, 30), ("a", "x", 2, 10), ("a", "y", 4, 20), ("a", "x", 3, 10)]:
        collector.add(user, item, float(rating), float(timestamp))
    table = collector.to_table()
    deduplicated = filter_interactions(table)
    assert table.ratings[deduplicated.rows].tolist() == [2.0, 4.0]  # earliest; first in input among ties
    assert deduplicated.dropped["duplicate"] == 2
    assert len(filter_interactions(table, keep_duplicates=True).rows) == 4
    high = filter_interactions(table, min_rating=3)
    assert table.ratings[high.rows].tolist() == [3.0, 4.0]  # x: its earliest rating of at least 3


def test_reconversion_replaces_the_dataset_and_keeps_other_files(tmp_path):
    out = tmp_path / "ml-1m"
    assert run_convert("movielens", "--src", MOVIELENS / "ml-1m", "--out", out) == 0
    (out / "notes.txt").write_text("kept")
    first = (out / "ml-1m.inter").read_bytes()
    assert run_convert("movielens", "--src", MOVIELENS / "ml-1m", "--out", out, "--min-rating", "4") == 0
    assert (out / "notes.txt").read_text() == "kept"
    assert len((out / "ml-1m.inter").read_bytes()) < len(first)
    assert json.loads((out / "manifest.json").read_text())["options"]["min_rating"] == 4
    assert leftovers(tmp_path) == []


def test_conversion_is_deterministic(tmp_path):
    outputs = []
    for run in ("first", "second"):
        out = tmp_path / run / "beauty"
        assert run_convert("amazon2023", "--reviews", AMAZON2023 / "Beauty.jsonl.gz",
                           "--meta", AMAZON2023 / "meta_Beauty.jsonl.gz", "--out", out) == 0
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["options"]["out"] = None
        outputs.append([(out / f"beauty.{ext}").read_bytes() for ext in ("inter", "item", "yaml")] + [manifest])
    assert outputs[0] == outputs[1]


def test_named_dataset_through_the_project_command(tmp_path, capsys):
    out = tmp_path / "folder"
    code = recbole_mllmr1_main(["convert", "movielens", "--src", str(MOVIELENS / "ml-1m"), "--out", str(out),
                                "--name", "ml-1m-small", "--no-progress"])
    assert code == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == ["manifest.json", "ml-1m-small.inter", "ml-1m-small.item", "ml-1m-small.yaml"]
    summary = capsys.readouterr().out
    assert "interactions: 24 read, 24 kept" in summary
