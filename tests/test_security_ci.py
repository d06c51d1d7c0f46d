"""Issue #21 "Also": under CI=true a missing corpus or Chromium fails instead of skipping."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INNER = """
import pytest

def test_needs_corpus():
    pytest.skip("corpus not found at /nowhere")

def test_needs_chromium():
    pytest.skip("chromium is not installed (apt-get install chromium)")

def test_other_skip():
    pytest.skip("not on this platform")
"""


@pytest.mark.parametrize("ci,expect", [("true", {"failed": 2, "skipped": 1}), ("", {"skipped": 3})])
def test_missing_prerequisites_fail_under_ci(pytester: pytest.Pytester, monkeypatch, ci, expect) -> None:
    shutil.copy(Path(__file__).with_name("conftest.py"), pytester.path / "conftest.py")
    pytester.makepyfile(test_inner=INNER)
    monkeypatch.setenv("CI", ci)
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:benchmark")
    result.assert_outcomes(**expect)
