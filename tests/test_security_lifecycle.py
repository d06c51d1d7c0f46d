"""Issue #21 points 4 and 13: spans finishing after profile() exits are recorded; a forked child never
writes into its parent's run."""

from __future__ import annotations

import multiprocessing
import os
from collections import Counter
from pathlib import Path

import pytest

from tokprof.profiler import load_run, profile, record_llm_call, span, trace
from tokprof.profiler.hooks import end_span, start_span


def test_span_finishing_after_profile_exit_is_in_the_file(tmp_path: Path) -> None:
    with profile("late", save=str(tmp_path / "runs")) as p:
        s = start_span("stream", "llm")  # e.g. a stream the agent closes later
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "q"}], output="a",
                        usage={"input_tokens": 2, "output_tokens": 1})
    end_span(s)  # .close() after the block
    back = load_run(p.path)
    late = [x for x in back.spans if x.name == "stream"]
    assert len(late) == 1 and late[0].attributes["finished_after_profile"] is True
    assert back.complete and len(back.llm_spans()) == 1 and len(back.spans) == 3


@trace
def _child_work(i: int) -> int:
    with span("inner"):
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": f"c{i}"}], output="x",
                        usage={"input_tokens": 10, "output_tokens": 1})
    return i


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
def test_forked_child_does_not_write_into_the_parents_run(tmp_path: Path) -> None:
    with profile("forky", save=str(tmp_path / "runs")) as p:
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "parent 1"}], output="x",
                        usage={"input_tokens": 5, "output_tokens": 1})
        pid = os.fork()
        if pid == 0:  # the child: records, then leaves without cleanup as fork children do
            try:
                _child_work(1)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2) as pool:
            assert pool.map(_child_work, range(4)) == [0, 1, 2, 3]
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "parent 2"}], output="x",
                        usage={"input_tokens": 7, "output_tokens": 1})
    back = load_run(p.path)
    ids = Counter(s.span_id for s in back.spans)
    assert max(ids.values()) == 1  # no duplicate span ids
    text = Path(p.path).read_text()
    assert text.count('"type":"end"') == 1
    assert [s.llm.usage.input_tokens for s in back.llm_spans()] == [5, 7]
    assert back.complete


class _BaseExcRepr:
    def __repr__(self) -> str:
        raise type("Boom", (BaseException,), {})()


def test_argument_repr_is_bounded_and_never_raises(tmp_path: Path) -> None:
    from tokprof.profiler.capture import safe_repr as _safe_repr

    big = list(range(5_000_000))
    r = _safe_repr(big)
    assert r.startswith("[0, 1, 2") and len(r) <= 250
    assert _safe_repr(_BaseExcRepr()).startswith("<unrepresentable _BaseExcRepr: Boom")

    @trace
    def f(x):  # noqa: ANN001, ANN202
        return 1

    with profile("r", save=False) as run:
        assert f(_BaseExcRepr()) == 1 and f(big) == 1
    assert len(run.spans) == 3
