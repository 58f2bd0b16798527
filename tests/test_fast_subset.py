"""The fast subset (``-m "not slow"``) never loads the real 135M model: tests/conftest.py refuses it.

A test outside the ``slow`` marker that asks for ``default_llm_dir``, or that resolves ``smollm2-135m``
(an empty ``llm_path`` too) in its body or in any fixture it sets up, fails with a message that says
to use ``tiny_llm_dir`` or mark the test slow.
"""
import os

import pytest

from recbole_mllmr1 import llm
from tests.conftest import REPO_ROOT

pytest_plugins = ["pytester"]


def test_this_fast_test_cannot_resolve_the_default_model():
    for name in ("smollm2-135m", None, ""):
        with pytest.raises(RuntimeError, match=r"not marked slow but resolves the default 135M model"):
            llm.resolve_llm_path(name)
    with pytest.raises(RuntimeError, match=r"test_this_fast_test_cannot_resolve_the_default_model is not marked slow"):
        llm.load_tokenizer(None)  # what MLLMRecR1 does with the yaml's default llm_path


def test_other_paths_still_resolve(tiny_llm_dir):
    assert llm.resolve_llm_path(tiny_llm_dir) == tiny_llm_dir
    assert llm.resolve_llm_path("org/model") == "org/model"


INNER_TESTS = '''
import pytest
from recbole_mllmr1 import llm
from recbole_mllmr1.llm import load_tokenizer  # bound before the guard: still guarded


def test_fast_with_the_default_fixture(default_llm_dir):
    pass


@pytest.fixture(scope="module")
def model_of_the_yaml_default():
    return load_tokenizer("smollm2-135m")


def test_fast_with_a_module_fixture_on_the_default(model_of_the_yaml_default):
    pass


def test_fast_on_its_own_model():
    assert llm.resolve_llm_path("org/model") == "org/model"


@pytest.mark.slow
def test_slow_is_free_to_use_it(request):
    assert getattr(llm.resolve_llm_path, "refusing_for", None) != request.node.nodeid
'''


def test_a_fast_test_on_the_default_model_fails_and_says_what_to_do(pytester):
    with open(os.path.join(REPO_ROOT, "tests", "conftest.py")) as conftest:
        pytester.makeconftest(conftest.read())
    with open(os.path.join(REPO_ROOT, "pytest.ini")) as ini:
        pytester.makeini(ini.read())
    pytester.makepyfile(test_inner=INNER_TESTS)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    failed = {report.nodeid.split("::")[-1] for report in result.reprec.getreports("pytest_runtest_logreport") if report.failed}
    assert failed == {"test_fast_with_the_default_fixture", "test_fast_with_a_module_fixture_on_the_default"}
    result.stdout.fnmatch_lines(["*test_fast_with_the_default_fixture is not marked slow but resolves the default 135M model*",
                                 "*test_fast_with_a_module_fixture_on_the_default is not marked slow*tiny_llm_dir*"])
