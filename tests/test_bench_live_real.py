"""Issue #20: the pure parts of the live-real benchmark (no model server): the statistics the default-set rule
and the fidelity correlation rest on, against hand arithmetic; strict grading; and that each pass's own
threshold is crossed on some task instances (the passes fire), so the run measures them."""

from __future__ import annotations

import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.local_llm.analysis import agrees, pearson, wilson  # noqa: E402
from benchmarks.local_llm.tasks import suite  # noqa: E402

from tokprof.optimizers.live import LIVE_PASS_OPTIONS, compress_messages  # noqa: E402


def test_wilson_interval_by_hand() -> None:
    # p = 1: the lower bound has the closed form n / (n + z^2) = 4 / 7.8416 = 0.5101
    lo, hi = wilson(4, 4)
    assert math.isclose(lo, 4 / (4 + 1.96 ** 2), rel_tol=1e-9) and hi == 1.0
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and math.isclose(hi, 1.96 ** 2 / (10 + 1.96 ** 2), rel_tol=1e-9)
    assert wilson(0, 0) == (0.0, 1.0)


def test_pearson_point_biserial_by_hand() -> None:
    # x = 1, 1, 0.5, 0.5; y = 1, 1, 0, 0: perfectly separated -> r = 1
    assert math.isclose(pearson([1, 1, 0.5, 0.5], [1, 1, 0, 0]) or 0, 1.0)
    # x = 1, 2, 3; y = 0, 1, 0: covariance 0 -> r = 0
    assert math.isclose(pearson([1, 2, 3], [0, 1, 0]) or 0, 0.0, abs_tol=1e-12)
    assert pearson([1, 1, 1], [0, 1, 0]) is None  # constant fidelity: no correlation to report


def test_agreement_is_answer_and_tool_calls() -> None:
    a = {"answer": " B11 ", "calls": [["get_orders", {"customer_id": "C-1"}]]}
    assert agrees(a, {"answer": "B11", "calls": [["get_orders", {"customer_id": "C-1"}]]})
    assert not agrees(a, {"answer": "B11", "calls": []})
    assert not agrees(a, {"answer": "b11", "calls": a["calls"]})


def test_suite_is_24_instances_of_3_types_and_deterministic() -> None:
    tasks = suite()
    assert len(tasks) == 24 and {t.kind for t in tasks} == {"lookup", "multistep", "longlog"}
    assert [t.messages for t in tasks] == [t.messages for t in suite()]


def test_strict_grading_rejects_an_echoed_table() -> None:
    t = next(t for t in suite() if t.kind == "lookup" and t.distractors)
    assert t.grade_strict(f"It is {t.expected}.", [])
    echo = f"{t.expected} {t.distractors[0]}"
    assert t.grade(echo, []) and not t.grade_strict(echo, [])


def test_each_message_pass_fires_on_some_instances() -> None:
    fired: dict[str, set[str]] = {}
    for t in suite():
        for p in ("minify", "truncate-outputs", "dedupe", "observation-mask"):
            if compress_messages(t.messages, [p], model="smollm2-135m", options=LIVE_PASS_OPTIONS) != t.messages:
                fired.setdefault(p, set()).add(t.task_id)
    assert fired["minify"] == {t.task_id for t in suite() if t.kind in ("lookup", "multistep")}
    assert fired["dedupe"] == fired["observation-mask"] == {"lookup-00", "lookup-02", "lookup-04", "lookup-06"}
    assert fired["truncate-outputs"] == {"longlog-00"}
    # and the cut removes the line the question needs (the lossy case the benchmark is built to show)
    t = next(t for t in suite() if t.task_id == "longlog-00")
    assert t.expected not in compress_messages(t.messages, ["truncate-outputs"])[-1]["content"]
