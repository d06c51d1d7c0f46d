"""@trace and profile(): every function shape, context propagation, exceptions, internal failures."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tokprof.profiler import profile, record_llm_call, run_in_context, span, trace
from tokprof.profiler import hooks
from tokprof.profiler.model import Run


def by_name(run: Run) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in run.spans:
        out.setdefault(s.name, []).append(s)
    return out


def parent_name(run: Run, s) -> str | None:
    idx = run.by_id()
    p = idx.get(s.parent_id)
    return p.name if p else None


# ---------------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------------
@trace
def plain(x: int, y: int = 2) -> int:
    """Adds."""
    return x + y


@trace(name="plan", kind="agent", capture=False)
def configured(task: str) -> str:
    return task.upper()


@trace(kind="tool")
async def search(q: str) -> str:
    await asyncio.sleep(0)
    return plain(1) and f"result:{q}"


@trace
def counter(n: int):
    for i in range(n):
        yield plain(i)
    return "done"


@trace
async def acounter(n: int):
    for i in range(n):
        await asyncio.sleep(0)
        yield plain(i)


class Agent:
    @trace
    def method(self, x: int) -> int:
        return x * 2

    @trace
    @classmethod
    def cmethod(cls, x: int) -> int:
        return x * 3

    @classmethod
    @trace
    def cmethod2(cls, x: int) -> int:
        return x * 4

    @trace
    @staticmethod
    def smethod(x: int) -> int:
        return x * 5


def test_metadata_and_signature_kept():
    assert plain.__name__ == "plain"
    assert plain.__doc__ == "Adds."
    assert list(inspect.signature(plain).parameters) == ["x", "y"]
    assert inspect.signature(plain).parameters["y"].default == 2
    assert inspect.iscoroutinefunction(search)
    assert inspect.isgeneratorfunction(counter)
    assert inspect.isasyncgenfunction(acounter)


def test_outside_profile_records_nothing_and_returns_same():
    assert plain(1) == 3
    assert list(counter(3)) == [2, 3, 4]
    assert asyncio.run(search("a")) == "result:a"
    assert hooks.current_span() is None


def test_sync_shapes_and_kinds():
    with profile("shapes") as run:
        assert plain(1, y=5) == 6
        assert configured("x") == "X"
        a = Agent()
        assert a.method(2) == 4
        assert Agent.cmethod(2) == 6
        assert Agent.cmethod2(2) == 8
        assert Agent.smethod(2) == 10
        assert a.smethod(1) == 5
    names = by_name(run)
    assert names["plain"][0].attributes == {"args": (1,), "kwargs": {"y": 5}, "return": 6}
    assert names["plan"][0].kind == "agent" and names["plan"][0].attributes is None
    assert "Agent.method" in names and "Agent.cmethod" in names and "Agent.cmethod2" in names
    assert len(names["Agent.smethod"]) == 2
    root = run.roots()
    assert len(root) == 1 and root[0].name == "shapes" and root[0].kind == "agent"
    for s in run.spans:
        if s is not root[0]:
            assert s.parent_id == root[0].span_id
        assert s.run_id == run.run_id
        assert s.end_ns is not None and s.end_ns >= s.start_ns


def test_generator_span_lasts_until_exhausted_and_children_nest():
    with profile("gen") as run:
        g = counter(3)
        first = next(g)
        assert [s.name for s in run.spans if s.name == "counter"] == []  # still open
        rest = list(g)
    assert [first, *rest] == [0 + 2, 3, 4]
    (gen_span,) = by_name(run)["counter"]
    assert gen_span.attributes["return"] == "done"
    children = [s for s in run.spans if s.parent_id == gen_span.span_id]
    assert [c.name for c in children] == ["plain"] * 3
    assert gen_span.end_ns >= max(c.end_ns for c in children)


def test_generator_closed_early_ends_span():
    with profile("gen-close") as run:
        g = counter(10)
        next(g)
        g.close()
    (gen_span,) = by_name(run)["counter"]
    assert gen_span.status == "ok" and gen_span.end_ns is not None


def test_generator_send_and_throw_forwarded():
    @trace
    def echo():
        received = []
        try:
            while True:
                x = yield len(received)
                received.append(x)
        except KeyError:
            yield "caught"
        return received

    with profile("send") as run:
        g = echo()
        assert next(g) == 0
        assert g.send("a") == 1
        assert g.throw(KeyError("k")) == "caught"
        with pytest.raises(StopIteration):
            next(g)
    assert by_name(run)["echo"][0].status == "ok"


def test_async_generator():
    async def main():
        return [x async for x in acounter(3)]

    with profile("agen") as run:
        assert asyncio.run(main()) == [2, 3, 4]
    (agen_span,) = by_name(run)["acounter"]
    children = [s for s in run.spans if s.parent_id == agen_span.span_id]
    assert len(children) == 3


def test_async_generator_closed_early():
    async def main():
        g = acounter(10)
        await g.__anext__()
        await g.aclose()

    with profile("agen-close") as run:
        asyncio.run(main())
    assert by_name(run)["acounter"][0].end_ns is not None


def test_async_nesting():
    with profile("async") as run:
        assert asyncio.run(search("q")) == "result:q"
    s = by_name(run)["search"][0]
    assert s.kind == "tool"
    assert parent_name(run, by_name(run)["plain"][0]) == "search"


# ---------------------------------------------------------------------------------------------------
# context propagation
# ---------------------------------------------------------------------------------------------------
@trace
async def leaf(i: int) -> int:
    await asyncio.sleep(0)
    return i


@trace
async def branch(i: int) -> int:
    # A task created inside the branch must nest under the branch.
    t = asyncio.create_task(leaf(i))
    await asyncio.sleep(0)
    return await t


def test_1000_concurrent_tasks_have_right_parents():
    async def main():
        return await asyncio.gather(*(branch(i) for i in range(1000)))

    with profile("gather") as run:
        assert asyncio.run(main()) == list(range(1000))
    idx = run.by_id()
    branches = {s.span_id: s for s in run.spans if s.name == "branch"}
    leaves = [s for s in run.spans if s.name == "leaf"]
    assert len(branches) == 1000 and len(leaves) == 1000
    root = run.roots()[0]
    assert all(b.parent_id == root.span_id for b in branches.values())
    for lf in leaves:
        parent = idx[lf.parent_id]
        assert parent.name == "branch"
        # each leaf's argument matches its own branch's argument: no cross-talk between tasks
        assert lf.attributes["args"] == parent.attributes["args"]


def test_thread_pool_work_nests_under_caller():
    @trace
    def work(i: int) -> int:
        return plain(i)

    @trace
    def fan_out() -> list[int]:
        with ThreadPoolExecutor(4) as pool:
            return list(pool.map(work, range(20)))

    with profile("threads") as run:
        assert fan_out() == [i + 2 for i in range(20)]
    fan = by_name(run)["fan_out"][0]
    works = by_name(run)["work"]
    assert len(works) == 20 and all(w.parent_id == fan.span_id for w in works)
    # outside a profile the executor is the original one again
    assert ThreadPoolExecutor.submit is hooks._original_submit


def test_plain_thread_with_run_in_context():
    with profile("thread") as run:
        with span("outer") as outer:
            t = threading.Thread(target=run_in_context(lambda: plain(1)))
            t.start()
            t.join()
    (p,) = by_name(run)["plain"]
    assert p.parent_id == outer.span_id


def test_profiles_in_threads_are_isolated():
    results = {}

    def worker(i: int) -> None:
        with profile(f"t{i}") as run:
            for _ in range(50):
                plain(i)
        results[i] = run

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, run in results.items():
        assert len(run.spans) == 51
        assert {s.run_id for s in run.spans} == {run.run_id}


# ---------------------------------------------------------------------------------------------------
# exceptions and internal failures
# ---------------------------------------------------------------------------------------------------
class MyError(Exception):
    pass


@trace
def boom():
    raise MyError("user failure")


@trace
async def aboom():
    raise MyError("async failure")


@trace
def gen_boom():
    yield 1
    raise MyError("gen failure")


def test_user_exceptions_propagate_unchanged_and_are_recorded():
    err = MyError("x")

    @trace
    def raise_this():
        raise err

    with profile("errors") as run:
        with pytest.raises(MyError) as info:
            raise_this()
        assert info.value is err
        with pytest.raises(MyError, match="async failure"):
            asyncio.run(aboom())
        with pytest.raises(MyError, match="gen failure"):
            list(gen_boom())
    for name in ("raise_this", "aboom", "gen_boom"):
        s = by_name(run)[name][0]
        assert s.status == "error" and "MyError" in s.error
    # the profile's own exit with an exception records it on the root and re-raises
    with pytest.raises(MyError):
        with profile("root-error") as run2:
            boom()
    assert run2.roots()[0].status == "error"


def test_unrepresentable_arguments_do_not_break_the_call(caplog):
    class Nasty:
        def __repr__(self):
            raise RuntimeError("no repr")

    @trace
    def takes(x):
        return x

    n = Nasty()
    with profile("nasty") as run:
        assert takes(n) is n
    assert "unrepresentable" in by_name(run)["takes"][0].attributes["args"][0]


def test_internal_failure_is_swallowed_and_logged_once(caplog):
    hooks._reset_internal_errors()

    class BrokenWriter:
        def write_span(self, span):
            raise OSError("disk full")

    with caplog.at_level(logging.WARNING, logger="tokprof"):
        with profile("broken") as run:
            hooks.current_span()._sink.writer = BrokenWriter()
            for i in range(5):
                assert plain(i) == i + 2
    # the line names where and the exception type, never the exception's text (issue #21: it can quote content)
    msgs = [r for r in caplog.records if "run writer" in r.getMessage() and "OSError" in r.getMessage()]
    assert len(msgs) == 1
    assert len(by_name(run)["plain"]) == 5


def test_record_llm_call_manual_api():
    with profile("manual") as run:
        with span("step", kind="chain"):
            s = record_llm_call(model="gpt-4o", provider="openai",
                                messages=[{"role": "user", "content": "hi"}], output="hello",
                                usage={"input_tokens": 8, "output_tokens": 2}, duration_ns=1_000_000)
    assert s is not None and s.kind == "llm" and s.llm.usage.input_tokens == 8
    assert s.llm.usage.source("input_tokens") == "provider"
    assert s.llm.output == {"role": "assistant", "content": "hello"}
    assert parent_name(run, s) == "step"
    assert s.duration_ns >= 1_000_000
    assert record_llm_call(model="gpt-4o") is None  # outside a profile: nothing


def test_tags_inherit():
    @trace(tags={"feature": "refunds"})
    def feature_step():
        return record_llm_call(model="m", usage={"input_tokens": 1, "output_tokens": 1})

    with profile("tags", tags={"team": "payments", "feature": "other"}) as run:
        s = feature_step()
    assert run.span_tags(s) == {"team": "payments", "feature": "refunds"}


def test_implicit_run_opt_in(tmp_path):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        from tokprof.profiler import trace
        @trace
        def f(x): return x + 1
        print(f(1), f(2))
    """)
    env = {"TOKPROF_IMPLICIT": "1", "TOKPROF_DIR": str(tmp_path / "implicit"), "PATH": "/usr/bin:/bin"}
    import os
    env["PYTHONPATH"] = os.pathsep.join(sys.path)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 3"
    files = list((tmp_path / "implicit").glob("*.jsonl"))
    assert len(files) == 1
    from tokprof.profiler import load_run

    run = load_run(files[0])
    assert run.complete and [s.name for s in run.spans if s.kind == "function"] == ["f", "f"]


def test_async_generator_forwards_every_athrow_and_aclose_like_the_bare_generator() -> None:
    import asyncio

    def make(log: list[str]):
        async def g():
            try:
                for i in range(5):
                    try:
                        yield i
                    except ValueError as e:
                        log.append(f"caught {e}")
            finally:
                log.append("closed")
        return g

    async def drive(gen) -> list:
        got = [await gen.__anext__(), await gen.athrow(ValueError("one")), await gen.athrow(ValueError("two"))]
        await gen.aclose()
        return got

    bare_log: list[str] = []
    traced_log: list[str] = []
    bare = asyncio.run(drive(make(bare_log)()))
    traced_fn = trace(make(traced_log))

    async def traced_run() -> list:
        with profile(save=False) as run:
            got = await drive(traced_fn())
        assert [s.name for s in run.spans if s.kind == "function"] == ["g"]
        return got

    assert asyncio.run(traced_run()) == bare == [0, 1, 2]
    assert traced_log == bare_log == ["caught one", "caught two", "closed"]
