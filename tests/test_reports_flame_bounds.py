"""Near-1e308 token counts (issue #21, minor): the report still renders, and every number the flame chart's
script gets is finite, so no box width can become ``Infinity`` or ``NaN``. The browser half of this is
``test_reports_browser.py::test_flame_widths_finite_with_near_1e308_counts``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from reports_samples import make_run
from tokprof.reports.flame import JS_MAX, js_number
from tokprof.reports.html import write_html
from tokprof.reports.model import build_report

JS_FLOAT_MAX = 1.7976931348623157e308  # beyond this JSON.parse gives Infinity


def huge_run(tokens: int = 10 ** 308):
    """``make_run`` with every LLM call billed ``tokens`` input and output tokens: the calls' sums
    (≥ 2e308) are beyond any float."""
    run = make_run(4)
    for s in run.spans:
        if s.llm is not None:
            s.llm.usage.input_tokens = tokens
            s.llm.usage.output_tokens = tokens
    return run


def report_data(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="tokprof-data">(.*?)</script>', text, re.S)
    assert m is not None
    return json.loads(m.group(1), parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))


def test_report_renders_and_flame_numbers_are_finite(tmp_path: Path) -> None:
    path = write_html(build_report(huge_run()), tmp_path / "huge.html")
    data = report_data(path)  # parse_constant: "Infinity"/"NaN" tokens fail here
    assert data["flame"], "the flame chart has nodes"
    for node in data["flame"]:
        for key, value in node.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                assert math.isfinite(float(value)) and abs(value) <= JS_MAX < JS_FLOAT_MAX, (key, value)
    # every box still has a positive size under each metric the script can pick
    roots = [n for n in data["flame"] if n["parent"] is None]
    for metric in ("tokens", "carried_tokens"):
        assert all(n[metric] > 0 for n in roots)


def test_js_number_clamps_and_keeps_exact_ints() -> None:
    assert js_number(10 ** 400) == JS_MAX and js_number(-(10 ** 400)) == -JS_MAX
    assert js_number(float("inf")) == JS_MAX and js_number(float("nan")) == 0
    assert js_number(2 ** 60 + 1) == 2 ** 60 + 1 and isinstance(js_number(7), int)
    assert js_number(1.5) == 1.5
