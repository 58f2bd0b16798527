"""The dataset converters and every command's ``--help`` load neither torch nor RecBole (nor transformers).

Each case runs in a fresh interpreter (this one has both loaded by conftest) and reports which of
the heavy packages are in ``sys.modules`` afterwards. ``convert --help`` used to take 8 s and 400 MB
because ``import recbole_mllmr1`` applied the RecBole compat fixes and listing the commands imported
``recbole_mllmr1.cot``, which pulls in the model.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "converters"
HEAVY = ("torch", "recbole", "transformers")
# ``--help`` of the command list and of every command (convert: of one of its formats).
HELP_COMMANDS = (
    ["--help"],
    ["convert", "--help"],
    ["convert", "movielens", "--help"],
    ["textualize", "--help"],
    ["build-cot", "--help"],
    ["compare", "--help"],
    ["recommend", "--help"],
)

CASES = {
    "import every converter module": (
        "import pkgutil, importlib, recbole_mllmr1.dataset_converters as package\n"
        "for module in pkgutil.iter_modules(package.__path__):\n"
        "    importlib.import_module(f'{package.__name__}.{module.name}')\n"
    ),
    **{
        " ".join(["recbole-mllmr1", *argv]): (
            f"from recbole_mllmr1.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        )
        for argv in HELP_COMMANDS
    },
    "recbole-mllmr1 convert (a whole conversion)": (
        "import sys\nfrom recbole_mllmr1.cli import main\n"
        "assert main(['convert', 'movielens', '--src', sys.argv[1], '--out', sys.argv[2], '--no-progress']) == 0\n"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_converters_and_help_load_neither_torch_nor_recbole(case, tmp_path):
    code = CASES[case] + f"import sys, json\nprint(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
    result = subprocess.run(
        [sys.executable, "-c", code, str(FIXTURES / "movielens" / "ml-1m"), str(tmp_path / "ml-1m")],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    assert json.loads(result.stdout.splitlines()[-1]) == [], case
    if case.endswith("--help"):
        assert result.stdout.startswith("usage: recbole-mllmr1"), result.stdout
