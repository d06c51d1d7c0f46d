"""Red team 6: the live profiler after ``with profile(...)`` ends. A task created inside the profile
(``asyncio.create_task``, ``ThreadPoolExecutor.submit``, a thread whose target is wrapped with
``run_in_context``: each runs in a copy of the profile's context) that
makes its LLM call after the block exits used to lose that call: ``current_span()`` stepped past the
finished root to "no profile", so the span was never recorded, neither in the run file nor in memory, and
the run's tokens and cost were short. Such a span is now the run's, appended after the end line and marked
``finished_after_profile`` like a span that started inside and finished late (tests/test_security_lifecycle.py)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from concurrent.futures import ThreadPoolExecutor

from tokprof.profiler import load_run, profile, record_llm_call, run_in_context, span, trace
from tokprof.profiler.context import current_span


def _late_call(text: str) -> None:
    with span(f"late-{text}"):
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": text}], output="ok",
                        usage={"input_tokens": 7, "output_tokens": 3})


def test_task_and_thread_calling_after_the_profile_exits_are_in_the_run(tmp_path: Path) -> None:
    go = threading.Event()

    async def task() -> None:
        await asyncio.to_thread(go.wait, 30)
        _late_call("task")

    def thread() -> None:
        go.wait(30)
        _late_call("thread")

    def pooled() -> None:
        go.wait(30)
        _late_call("pool")

    async def main() -> Path:
        with profile("late", save=str(tmp_path / "runs")) as p:
            record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "in"}], output="ok",
                            usage={"input_tokens": 5, "output_tokens": 1})
            t = asyncio.create_task(task())
            th = threading.Thread(target=run_in_context(thread))
            th.start()
            pool = ThreadPoolExecutor(1)
            fut = pool.submit(pooled)
        assert current_span() is None  # the caller's context is outside the profile again
        go.set()  # each makes its call only now, after the block exited
        await t
        th.join()
        fut.result()
        pool.shutdown()
        assert p.path is not None
        return p.path

    path = asyncio.run(main())
    run = load_run(path)
    calls = sorted(s.llm.messages[0]["content"] for s in run.llm_spans())
    assert calls == ["in", "pool", "task", "thread"]
    assert sum(s.llm.usage.input_tokens for s in run.llm_spans()) == 5 + 7 + 7 + 7
    late = [s for s in run.spans if s.name in ("late-task", "late-thread", "late-pool")]
    assert len(late) == 3 and all(s.attributes and s.attributes.get("finished_after_profile") for s in late)
    root = next(s for s in run.spans if s.parent_id is None)
    assert all(s.parent_id == root.span_id for s in late)


def test_traced_function_in_a_late_task_is_recorded(tmp_path: Path) -> None:
    @trace
    def tool(x: int) -> int:
        return x + 1

    async def later() -> None:
        await asyncio.sleep(0)
        tool(1)

    async def main() -> Path:
        with profile("late-trace", save=str(tmp_path / "runs")) as p:
            t = asyncio.create_task(later())
        await t
        assert p.path is not None
        return p.path

    run = load_run(asyncio.run(main()))
    assert [s.name for s in run.spans if s.name == "tool"] == ["tool"]


def test_after_the_profile_the_callers_own_context_records_nothing(tmp_path: Path) -> None:
    """The fix must not pull later work of the caller itself into the closed run: only contexts copied
    while the profile was open (tasks, threads) still point at its root."""
    with profile("closed", save=str(tmp_path / "runs")) as p:
        pass
    _late_call("after")
    assert p.path is not None
    assert load_run(p.path).llm_spans() == []


def test_late_spans_of_a_closed_run_are_bounded(tmp_path: Path, monkeypatch: object) -> None:
    """A thread started inside a profile that lives on (a worker loop) must not grow the closed run's file
    without end: past ``RunWriter.MAX_LATE`` late spans are counted, not written."""
    from tokprof.profiler.run_writer import RunWriter

    monkeypatch.setattr(RunWriter, "MAX_LATE", 3)  # type: ignore[attr-defined]
    go = threading.Event()

    def worker() -> None:
        go.wait(30)
        for i in range(10):
            _late_call(f"w{i}")

    with profile("bounded", save=str(tmp_path / "runs")) as p:
        th = threading.Thread(target=run_in_context(worker))
        th.start()
    go.set()
    th.join()
    assert p.path is not None
    written = [s for s in load_run(p.path).spans if s.parent_id is not None]
    assert len(written) == 3  # (each call is two spans: ``late-wN`` and its llm span)
