"""Bad input: a clear error naming file and line, or (with --skip-bad-lines) a counted skip; never partial output."""
import gzip
import json

import pytest

from converters_support import FIXTURES, leftovers, read_dataset, run_convert

AMAZON2023 = FIXTURES / "amazon2023"
GOOD_REVIEWS = gzip.decompress((AMAZON2023 / "Beauty.jsonl.gz").read_bytes()).splitlines(keepends=True)
META = AMAZON2023 / "meta_Beauty.jsonl.gz"
REVIEW_WITHOUT_TIMESTAMP = json.dumps({"rating": 5.0, "parent_asin": "B00YQ6X8EO", "user_id": "AGKHLEW2SOWHNMFQIJGBECAF7INQ"})

# (reason, the bad line inserted as line 3 of the reviews)
BAD_LINES = {
    "malformed_line": b'{"rating": 5.0, "parent_asin": "B00YQ6X8EO", "user_id": \n',
    "missing_field": REVIEW_WITHOUT_TIMESTAMP.encode() + b"\n",
    "non_utf8": b'{"rating": 5.0, "title": "caf\xe9", "parent_asin": "B00YQ6X8EO", "user_id": "A1", "timestamp": 1}\n',
    "bad_value": b'{"rating": "five", "parent_asin": "B00YQ6X8EO", "user_id": "A1", "timestamp": 1}\n',
}


def reviews_with_bad_line(folder, bad_line):
    path = folder / "reviews.jsonl"
    path.write_bytes(b"".join(GOOD_REVIEWS[:2] + [bad_line] + GOOD_REVIEWS[2:]))
    return path


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_bad_line_stops_the_conversion_with_file_and_line(tmp_path, capsys, reason):
    reviews = reviews_with_bad_line(tmp_path, BAD_LINES[reason])
    out = tmp_path / "out"
    assert run_convert("amazon2023", "--reviews", reviews, "--meta", META, "--out", out) == 1
    error = capsys.readouterr().err
    assert f"{reviews}, line 3:" in error and reason in error and "--skip-bad-lines" in error
    assert not out.exists() and leftovers(tmp_path) == []


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_bad_line_is_skipped_and_counted(tmp_path, capsys, reason):
    reviews = reviews_with_bad_line(tmp_path, BAD_LINES[reason])
    out = tmp_path / "out"
    assert run_convert("amazon2023", "--reviews", reviews, "--meta", META, "--out", out, "--skip-bad-lines") == 0
    inter, _, manifest = read_dataset(out)
    assert manifest["counts"]["bad_lines_skipped"] == {reason: 1}
    assert manifest["sources"][0]["bad_lines"] == {reason: 1}
    assert manifest["sources"][0]["records"] == len(GOOD_REVIEWS)
    assert manifest["bad_line_examples"][0]["line"] == 3 and manifest["bad_line_examples"][0]["file"] == str(reviews)
    assert manifest["counts"]["interactions"]["read"] == len(GOOD_REVIEWS)
    assert f"bad lines skipped: 1 {reason}" in capsys.readouterr().out


def test_empty_file_is_an_error(tmp_path, capsys):
    empty_meta = tmp_path / "meta.jsonl"
    empty_meta.write_bytes(b"")
    out = tmp_path / "out"
    assert run_convert("amazon2023", "--reviews", AMAZON2023 / "Beauty.jsonl.gz", "--meta", empty_meta, "--out", out) == 1
    error = capsys.readouterr().err
    assert f"{empty_meta}, line 1:" in error and "empty_file" in error and "--skip-bad-lines" in error
    assert not out.exists() and leftovers(tmp_path) == []


def test_empty_file_is_skipped_and_counted(tmp_path):
    empty_meta = tmp_path / "meta.jsonl.gz"
    empty_meta.write_bytes(gzip.compress(b"\n\n"))  # blank lines only: no data either
    out = tmp_path / "out"
    assert run_convert("amazon2023", "--reviews", AMAZON2023 / "Beauty.jsonl.gz", "--meta", empty_meta,
                       "--out", out, "--skip-bad-lines") == 0
    _, items, manifest = read_dataset(out)
    assert manifest["counts"]["bad_lines_skipped"] == {"empty_file": 1}
    assert manifest["sources"][1]["blank_lines"] == 2
    assert manifest["counts"]["items"]["with_metadata"] == 0 and all(row["title"] == "" for row in items.values())


def test_empty_interactions_file_leaves_nothing_to_convert(tmp_path, capsys):
    empty_reviews = tmp_path / "reviews.jsonl"
    empty_reviews.write_bytes(b"")
    out = tmp_path / "out"
    assert run_convert("amazon2023", "--reviews", empty_reviews, "--meta", META, "--out", out, "--skip-bad-lines") == 1
    assert "no interactions could be read" in capsys.readouterr().err
    assert not out.exists()


def test_csv_header_without_data_is_an_empty_file(tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item,timestamp\n")
    titles = tmp_path / "titles.csv"
    titles.write_text("1,A title\n")
    assert run_convert("microlens", "--pairs", pairs, "--titles", titles, "--out", tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert f"{pairs}, line 1:" in error and "header but no data lines" in error


def test_csv_missing_column_names_the_header(tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,video,timestamp\n1,2,3\n")
    titles = tmp_path / "titles.csv"
    titles.write_text("2,A title\n")
    assert run_convert("microlens", "--pairs", pairs, "--titles", titles, "--out", tmp_path / "out") == 1
    assert "lacks the column(s) item" in capsys.readouterr().err


def test_delimited_line_with_wrong_field_count(tmp_path, capsys):
    src = tmp_path / "ml-1m"
    src.mkdir()
    (src / "movies.dat").write_bytes((FIXTURES / "movielens" / "ml-1m" / "movies.dat").read_bytes())
    ratings = (FIXTURES / "movielens" / "ml-1m" / "ratings.dat").read_text().splitlines()
    (src / "ratings.dat").write_text("\n".join(ratings[:4] + ["1::2::5"] + ratings[4:]) + "\n")
    out = tmp_path / "out"
    assert run_convert("movielens", "--src", src, "--out", out) == 1
    error = capsys.readouterr().err
    assert "ratings.dat, line 5:" in error and "expected 4 '::'-separated fields" in error
    assert run_convert("movielens", "--src", src, "--out", out, "--skip-bad-lines") == 0
    assert read_dataset(out)[2]["counts"]["bad_lines_skipped"] == {"malformed_line": 1}


def test_truncated_gzip_names_the_file(tmp_path, capsys):
    truncated = tmp_path / "reviews.jsonl.gz"
    data = (AMAZON2023 / "Beauty.jsonl.gz").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    assert run_convert("amazon2023", "--reviews", truncated, "--meta", META, "--out", out, "--skip-bad-lines") == 1
    error = capsys.readouterr().err
    assert str(truncated) in error and "truncated or corrupt" in error
    assert not out.exists() and leftovers(tmp_path) == []


def test_failed_reconversion_leaves_the_previous_dataset_untouched(tmp_path):
    out = tmp_path / "beauty"
    assert run_convert("amazon2023", "--reviews", AMAZON2023 / "Beauty.jsonl.gz", "--meta", META, "--out", out) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    broken_meta = tmp_path / "meta.jsonl"
    broken_meta.write_bytes(gzip.decompress(META.read_bytes()) + b"{not json\n")
    assert run_convert("amazon2023", "--reviews", AMAZON2023 / "Beauty.jsonl.gz", "--meta", broken_meta, "--out", out) == 1
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert leftovers(tmp_path) == []


def test_missing_input_file(tmp_path, capsys):
    assert run_convert("amazon2023", "--reviews", tmp_path / "nope.jsonl", "--meta", META, "--out", tmp_path / "out") == 1
    assert "reviews file not found" in capsys.readouterr().err
