"""What real dumps hold and the fixtures did not: 2018 ``image`` lists, files cut inside their last line,
items absent from the metadata, titles that are HTML fragments, and why a dict-literal line is rejected."""
import json
import shutil

import pytest

from converters_support import FIXTURES, leftovers, read_dataset, run_convert
from recbole_mllmr1.dataset_converters.cut_lines import CutTimestampCheck
from recbole_mllmr1.dataset_converters.errors import RecordError
from recbole_mllmr1.dataset_converters.interactions import InteractionCollector

MOVIELENS = FIXTURES / "movielens"
MICROLENS = FIXTURES / "microlens"
AMAZON2014 = FIXTURES / "amazon2014"

# A meta_Gift_Cards line of Amazon 2018: its pictures are in "image", with no imageURL / imageURLHighRes.
GIFT_CARD_IMAGES = [f"https://images-na.ssl-images-amazon.com/images/I/{stem}._SX38_SY50_CR,0,0,38,50_.jpg"
                    for stem in ("51nRvQHZ2BL", "41qiR4kBdLL", "51rH5Hk1yYL", "41m3JdEaLeL",
                                 "51u8HVc2xYL", "41eQeDA7k0L", "51vWbdzxXeL", "41Q3ZgyeDCL")]
GIFT_CARD = {
    "category": ["Gift Cards", "Gift Cards"], "tech1": "",
    "description": ["Amazon.com Gift Cards are the perfect way to give them exactly what they're hoping for."],
    "fit": "", "title": "Amazon.com Gift Card in a Greeting Card (Various Designs)", "also_buy": ["B00ADR2LV6"],
    "image": GIFT_CARD_IMAGES, "tech2": "", "brand": "Amazon", "feature": [], "rank": "[\"Gift Cards\"]",
    "also_view": [], "details": {}, "main_cat": "Gift Cards", "similar_item": "", "date": "", "price": "",
    "asin": "B004LLIKVU",
}
# 52 of 60 lines of a real Amazon 2018 Magazine_Subscriptions meta file had this title.
SPAN_TITLE = '<span class="a-size-medium a-color-secondary"'


def write_lines(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def amazon2018_reviews(path, asins, users=("A1", "A2")):
    """One 2018 review line per (user, asin)."""
    return write_lines(path, [
        {"overall": 5.0, "verified": True, "reviewerID": user, "asin": asin, "unixReviewTime": 1500000000 + 86400 * n}
        for n, (user, asin) in enumerate((user, asin) for user in users for asin in asins)
    ])


def test_amazon2018_image_list_gives_the_first_url(tmp_path):
    meta = write_lines(tmp_path / "meta_Gift_Cards.json", [GIFT_CARD, {**GIFT_CARD, "asin": "B00NOIMAGE", "image": []}])
    reviews = amazon2018_reviews(tmp_path / "Gift_Cards.json", ["B004LLIKVU", "B00NOIMAGE"])
    out = tmp_path / "gift-cards"
    assert run_convert("amazon2018", "--reviews", reviews, "--meta", meta, "--out", out) == 0
    _, items, manifest = read_dataset(out)
    assert items["B004LLIKVU"]["image"] == GIFT_CARD_IMAGES[0]
    assert items["B00NOIMAGE"]["image"] == ""
    assert manifest["images"]["written_as_url"] == 1 and manifest["images"]["without_image_source"] == 1


def cut_inside_last_timestamp(path, separator, keep_digits=4):
    """Drop the file's final newline and all but the first digits of its last line's timestamp."""
    lines = path.read_text(encoding="utf-8").splitlines()
    *fields, timestamp = lines[-1].split(separator)
    lines[-1] = separator.join([*fields, timestamp[:keep_digits]])
    path.write_text("\n".join(lines), encoding="utf-8")
    return len(lines)


# (format, arguments, interactions file to cut, its field separator), one per delimited format.
DELIMITED = {
    "ml-100k": ("movielens", ("--src", "{src}"), "u.data", "\t"),
    "ml-1m": ("movielens", ("--src", "{src}"), "ratings.dat", "::"),
    "ml-latest-small": ("movielens", ("--src", "{src}"), "ratings.csv", ","),
    "microlens": ("microlens", ("--pairs", "{src}/MicroLens-100k_pairs.csv", "--titles",
                                "{src}/MicroLens-100k_title_en.csv"), "MicroLens-100k_pairs.csv", ","),
}


@pytest.mark.parametrize("release", sorted(DELIMITED))
def test_delimited_file_cut_inside_its_last_timestamp(tmp_path, capsys, release):
    source_format, arguments, interactions, separator = DELIMITED[release]
    src = tmp_path / release
    shutil.copytree(MOVIELENS / release if source_format == "movielens" else MICROLENS, src)
    argv = [source_format, *(argument.format(src=src) for argument in arguments)]
    path = src / interactions
    intact = path.read_text(encoding="utf-8")
    path.write_text(intact.rstrip("\n"), encoding="utf-8")  # a whole last line without its newline is fine
    assert run_convert(*argv, "--out", tmp_path / "whole") == 0
    whole = read_dataset(tmp_path / "whole")[2]["counts"]["interactions"]["read"]

    last_line = cut_inside_last_timestamp(path, separator)
    out = tmp_path / "out"
    assert run_convert(*argv, "--out", out) == 1
    error = capsys.readouterr().err
    assert f"{path}, line {last_line}:" in error and "(cut_line)" in error
    assert "no line ending" in error and "before 1990-01-01" in error
    assert not out.exists() and leftovers(tmp_path) == []
    assert run_convert(*argv, "--out", out, "--skip-bad-lines") == 0
    manifest = read_dataset(out)[2]
    assert manifest["counts"]["bad_lines_skipped"] == {"cut_line": 1}
    assert manifest["counts"]["interactions"]["read"] == whole - 1


def collector_with_timestamps(timestamps):
    collector = InteractionCollector()
    for index, timestamp in enumerate(timestamps):
        collector.add(f"u{index}", "i", 1.0, float(timestamp))
    return collector


def test_cut_check_needs_a_date_between_1990_and_now_and_the_file_s_digit_count():
    check = CutTimestampCheck(collector_with_timestamps([1_600_000_000 + n for n in range(200)]))
    check(("u", "i", 1.0, 1_650_000_000.0))  # like the others
    for timestamp, problem in ((9791.0, "before 1990-01-01"), (4_102_444_800.0, "after the time of conversion"),
                               (999_999_999.0, "has 9 digits before the decimal point, like only 0 of the file's 200")):
        with pytest.raises(RecordError, match=problem) as raised:
            check(("u", "i", 1.0, timestamp))
        assert raised.value.reason == "cut_line"
    # 2 of 200 (1%) with 9 digits: a 9-digit last line is as common as that, so it passes.
    CutTimestampCheck(collector_with_timestamps([999_999_990, 999_999_991] + [1_600_000_000] * 198))(
        ("u", "i", 1.0, 999_999_999.0)
    )


def microlens_files(folder, titled_items):
    """Pairs in which u4 reaches the 2-core only through i3; ``titled_items`` get a title."""
    pairs = [("u1", "i1"), ("u1", "i2"), ("u2", "i1"), ("u2", "i2"), ("u3", "i1"), ("u3", "i2"), ("u3", "i3"),
             ("u4", "i1"), ("u4", "i3")]
    (folder / "pairs.csv").write_text(
        "user,item,timestamp\n" + "".join(f"{u},{i},{1_662_000_000_000 + 1000 * n}\n" for n, (u, i) in enumerate(pairs))
    )
    (folder / "titles.csv").write_text("".join(f"{item},Video {item}\n" for item in titled_items))
    return ["microlens", "--pairs", folder / "pairs.csv", "--titles", folder / "titles.csv", "--kcore", "2"]


def test_items_without_metadata_warn_or_drop_or_fail(tmp_path, capsys):
    argv = microlens_files(tmp_path, ["i1", "i2"])  # i3 has no title line
    assert run_convert(*argv, "--out", tmp_path / "default") == 0
    inter, items, manifest = read_dataset(tmp_path / "default")
    warning = f"items without metadata in {tmp_path / 'titles.csv'}: 1 of the 3 kept (33.3%)"
    assert f"warning: {warning}" in capsys.readouterr().err
    assert manifest["warnings"][0].startswith(warning) and items["i3"]["title"] == ""
    assert manifest["counts"]["items"]["without_metadata"] == 1

    assert run_convert(*argv, "--out", tmp_path / "failed", "--require-meta", "fail") == 1
    error = capsys.readouterr().err
    assert warning in error and "e.g. i3" in error and not (tmp_path / "failed").exists()

    assert run_convert(*argv, "--out", tmp_path / "dropped", "--require-meta", "drop") == 0
    inter, items, manifest = read_dataset(tmp_path / "dropped")
    assert "warning" not in capsys.readouterr().err and manifest["warnings"] == []
    # i3's interactions go before the 2-core, which then drops u4 (left with i1 only).
    assert sorted((row["user_id"], row["item_id"]) for row in inter) == [
        (user, item) for user in ("u1", "u2", "u3") for item in ("i1", "i2")
    ]
    dropped = manifest["counts"]["interactions"]["dropped"]
    assert dropped["without_metadata"] == 2 and dropped["kcore"] == 1
    assert manifest["counts"]["items"]["without_metadata"] == 0 and sorted(items) == ["i1", "i2"]
    assert manifest["options"]["require_meta"] == "drop"


def test_html_fragment_titles_are_treated_as_missing_and_counted(tmp_path, capsys):
    titles = {"B01": SPAN_TITLE, "B02": "Wired <i>UK</i> &amp; US edition <b", "B03": "Maths: a < b, b > c", "B04": SPAN_TITLE,
              "B05": "Size S<M Shirt", "B06": "Cats <Dogs edition", "B07": "x<y"}
    meta = write_lines(tmp_path / "meta_Magazine_Subscriptions.json", [
        {"asin": asin, "title": title, "category": ["Magazine Subscriptions"], "image": []} for asin, title in titles.items()
    ])
    reviews = amazon2018_reviews(tmp_path / "Magazine_Subscriptions.json", sorted(titles))
    out = tmp_path / "magazines"
    assert run_convert("amazon2018", "--reviews", reviews, "--meta", meta, "--out", out) == 0
    _, items, manifest = read_dataset(out)
    assert [items[asin]["title"] for asin in sorted(titles)] == [
        "", "Wired UK & US edition", "Maths: a < b, b > c", "", "Size S<M Shirt", "Cats <Dogs edition", "x<y"]
    assert manifest["counts"]["items"]["titles_only_markup"] == 2
    assert "has no text once its HTML markup is removed" in capsys.readouterr().err
    assert "2 of the 7 kept (28.6%)" in manifest["warnings"][0]


def test_rejected_dict_literal_line_says_why_it_is_not_a_literal(tmp_path, capsys):
    meta = tmp_path / "meta_Beauty.json"
    meta.write_text("{'asin': 'B0000530HU', 'title': 'Eco Friendly Ecotools\n{'asin': 'B00006L9LC', 'title': Brush}\n")
    arguments = ("amazon2018", "--reviews", AMAZON2014 / "reviews_Beauty_5.json.gz", "--meta", meta)
    assert run_convert(*arguments, "--out", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert f"{meta}, line 1: neither JSON (Expecting property name enclosed in double quotes" in error
    assert "nor a Python dict literal (unterminated string literal (detected at line 1) at column 33)" in error
    assert run_convert(*arguments, "--out", tmp_path / "out", "--skip-bad-lines") == 0
    examples = read_dataset(tmp_path / "out")[2]["bad_line_examples"]
    assert [example["line"] for example in examples] == [1, 2]
    assert "'Brush' at column 33 is not a literal" in examples[1]["detail"]
