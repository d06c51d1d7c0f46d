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


def _render(template: str, task) -> str:  # type: ignore[no-untyped-def]
    import jinja2
    env = jinja2.Environment()
    env.filters["tojson"] = lambda v: __import__("json").dumps(v)
    text = (REPO / "benchmarks" / "local_llm" / template).read_text()
    return env.from_string(text).render(messages=task.messages, tools=task.tools, add_generation_prompt=True)


def test_tool_output_is_a_user_turn_with_the_question_restated() -> None:
    # SmolLM2 echoed tool output wrapped in <tool_response> and copied the agent's own tool-call turns; the
    # template shows each output as a user turn naming the call, and restates the question after the last one.
    for t in suite()[:3]:
        prompt = _render("chatml_tools.jinja", t)
        question = t.messages[1]["content"]
        last_output = t.messages[-1]["content"]
        assert "<tool_response>" not in prompt
        assert prompt.index(question, prompt.index(last_output)) > prompt.index(last_output)
        assert prompt.endswith("<|im_start|>assistant\n")
        assert 'Result of the tool call search {"query":' in prompt
        if t.kind == "multistep":
            assert '"name": "get_orders"' in prompt  # the tools are listed in the system turn
        gemma = _render("gemma_tools.jinja", t)
        assert gemma.endswith("<start_of_turn>model\n") and question in gemma[gemma.index(last_output):]


def test_questions_ask_for_the_value_only_and_still_need_the_tool_output() -> None:
    for t in suite():
        q = t.messages[1]["content"]
        assert "only" in q
        assert t.expected not in q and t.expected not in t.messages[0]["content"]  # the answer is in the outputs
        if t.kind != "multistep":  # a multistep answer is in the get_orders output the model must ask for
            assert any(t.expected in m["content"] for m in t.messages if m["role"] == "tool")
