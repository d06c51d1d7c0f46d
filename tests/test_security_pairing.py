"""Issue #21 point 14: compare pairs calls by call order within the same call path, not by span ids
(which restart in every process)."""

from __future__ import annotations

from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.pairing import pair_calls


def _run(run_id: str, order: list[tuple[str, str]], first_id: int) -> Run:
    """LLM calls named by (parent step, prompt), in ``order``; span ids start at ``first_id``."""
    run = Run(run_id=run_id)
    n = first_id
    steps: dict[str, Span] = {}
    for t, (step, prompt) in enumerate(order):
        if step not in steps:
            steps[step] = Span(str(n), None, run_id, "function", step, t * 10, t * 10, t * 10 + 9)
            run.spans.append(steps[step])
            n += 1
        s = Span(str(n), steps[step].span_id, run_id, "llm", "chat", t * 10 + 1, t * 10 + 1, t * 10 + 2)
        s.llm = LLMCall(model="gpt-4o", messages=[{"role": "user", "content": prompt}], usage=Usage())
        run.spans.append(s)
        n += 1
    return run


def test_separate_recordings_pair_by_path_and_order_not_id():
    calls = [("plan", "p1"), ("act", "a1"), ("plan", "p2"), ("act", "a2")]
    a = _run("A", calls, first_id=1)
    # the same agent, another process: a thread ran "act" first, so the ids fall differently
    b = _run("B", [calls[1], calls[0], calls[3], calls[2]], first_id=1)
    pairs = pair_calls(a, b)
    assert len(pairs) == 4
    assert all(x.llm.messages == y.llm.messages for x, y in pairs)
    same_id = {s.span_id: s for s in b.llm_spans()}
    # the old pairing by id would have matched different prompts
    assert any(same_id[s.span_id].llm.messages != s.llm.messages for s in a.llm_spans() if s.span_id in same_id)


def test_fidelity_of_two_identical_separate_runs_is_full():
    from tokprof.profiler.pairing import pair_calls as _paired_calls

    calls = [("plan", "p1"), ("act", "a1"), ("plan", "p2")]
    a, b = _run("A", calls, 1), _run("B", [calls[1], calls[0], calls[2]], 1)
    assert all(x.llm.messages == y.llm.messages for x, y in _paired_calls(a, b))


def test_derived_runs_pair_by_id():
    calls = [("plan", "p1"), ("plan", "p2")]
    a = _run("A", calls, 1)
    b = a.copy()
    b.llm_spans()[0].llm.messages = [{"role": "user", "content": "compressed"}]
    pairs = pair_calls(a, b)
    assert [(x.span_id, y.span_id) for x, y in pairs] == [(s.span_id, s.span_id) for s in a.llm_spans()]
