"""The user documentation matches the software: every key of MLLMRecR1.yaml is documented with
its default (and nothing else is), the README stays short, and relative links resolve.

Reads text files only: no model, no RecBole, no torch.
"""
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODEL_YAML = ROOT / "properties" / "model" / "MLLMRecR1.yaml"
CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"
README_MAX_LINES = 300
KEY_TABLE_HEADER = ["key", "default", "meaning"]
HISTORY = re.compile(r"commit [0-9a-f]{7}|this session|earlier session|CI test run shared", re.IGNORECASE)


def _cells(line):
    """The cells of one markdown table row; `\\|` inside a cell is not a separator."""
    body = line.strip()
    if not (body.startswith("|") and body.endswith("|")):
        return None
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body[1:-1])]


def key_tables(text):
    """``[(key, default text), ...]`` from every table whose header is ``| key | default | meaning |``."""
    rows, in_table = [], False
    for line in text.splitlines():
        cells = _cells(line)
        if cells is None:
            in_table = False
        elif cells == KEY_TABLE_HEADER:
            in_table = True
        elif in_table and not set("".join(cells)) <= set("-: "):
            rows.append((cells[0], cells[1]))
    return rows


def _code(cell):
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"{cell!r} is not one `code` span"
    return match.group(1)


def documented_defaults(text):
    """``{key: default}`` as the key tables state them, each default read as YAML."""
    documented = {}
    for key_cell, default_cell in key_tables(text):
        key = _code(key_cell)
        assert key not in documented, f"docs/configuration.md lists {key} twice"
        documented[key] = yaml.safe_load(_code(default_cell))
    return documented


def model_defaults():
    return yaml.safe_load(MODEL_YAML.read_text(encoding="utf-8"))


def test_every_yaml_key_is_documented_with_its_default():
    documented = documented_defaults(CONFIGURATION.read_text(encoding="utf-8"))
    for key, default in model_defaults().items():
        assert key in documented, f"{key} (MLLMRecR1.yaml) is missing from docs/configuration.md"
        assert documented[key] == default, (
            f"docs/configuration.md gives {key} the default {documented[key]!r}; MLLMRecR1.yaml has {default!r}"
        )


def test_every_documented_key_exists_in_the_yaml():
    defaults = model_defaults()
    documented = documented_defaults(CONFIGURATION.read_text(encoding="utf-8"))
    assert documented, "docs/configuration.md has no | key | default | meaning | table"
    for key, default in documented.items():
        assert key in defaults, f"docs/configuration.md documents {key}, which MLLMRecR1.yaml does not have"
        assert defaults[key] == default, (
            f"docs/configuration.md gives {key} the default {default!r}; MLLMRecR1.yaml has {defaults[key]!r}"
        )


def test_key_table_parser_catches_a_wrong_default():
    text = "| key | default | meaning |\n|---|---|---|\n| `stages` | `['sft']` | stages |\n"
    assert documented_defaults(text) == {"stages": ["sft"]}
    assert documented_defaults(text) != {"stages": model_defaults()["stages"]}


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; keep it at most {README_MAX_LINES} (reference goes to docs/)"


def _documents():
    return [README, ROOT / "benchmarks" / "results" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _anchors(markdown_file):
    """GitHub's anchors for the headings of ``markdown_file``."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", markdown_file.read_text(encoding="utf-8"), flags=re.MULTILINE):
        anchors.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("document", _documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_relative_links_resolve(document):
    text = document.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue  # a URL
        file_part, _, anchor = target.partition("#")
        path = (document.parent / file_part).resolve() if file_part else document
        assert path.exists(), f"{document.relative_to(ROOT)} links to {target}, which does not exist"
        if anchor and path.suffix == ".md":
            assert anchor in _anchors(path), f"{document.relative_to(ROOT)} links to {target}: no such heading"


@pytest.mark.parametrize("document", _documents(), ids=lambda path: str(path.relative_to(ROOT)))
def test_documents_describe_the_software_not_its_history(document):
    for number, line in enumerate(document.read_text(encoding="utf-8").splitlines(), 1):
        assert not HISTORY.search(line), f"{document.relative_to(ROOT)}:{number} narrates history: {line.strip()}"
