"""Concurrency (issue #9, point 2): 16 threads x 500 asyncio tasks, nested traced calls, LangChain calls,
and a live response cache shared by 4 processes.

Every task is identified by its arguments ``(t, k)``, which ``@trace`` records, so each span can be
checked against where it must hang: ``thread_main(t)`` under the root, ``task(t, k)`` under it,
``inner(t, k)`` under that, and under ``inner(t, k)`` its own ``llm-t-k`` call, its LangChain chat-model
span (whose prompt names ``t`` and ``k``) and ``leaf(t, k)``. Totals must equal the sum of the parts, in
memory and after a round trip through the run file written concurrently by all threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import tokprof.profiler.integrations  # noqa: F401  (attaches the LangChain handler inside profile())
from tokprof.profiler import load_run, profile, record_llm_call, trace
from tests.reliability_support import EchoChatModel

THREADS, TASKS = 16, 500
REPO = Path(__file__).resolve().parent.parent


@trace
def leaf(t: int, k: int) -> int:
    return t * k


@trace
async def inner(t: int, k: int, model: EchoChatModel) -> str:
    await asyncio.sleep(0)  # let the other 499 tasks interleave
    record_llm_call(model="gpt-4o", name=f"llm-{t}-{k}", messages=[{"role": "user", "content": f"{t}/{k}"}],
                    output="ok", usage={"input_tokens": 1000 * t + k + 1, "output_tokens": 1})  # never 0: a 0 for a
    # non-empty prompt is not provider truth (recounted locally, usage_partial.reconcile)
    reply = await model.ainvoke(f"t{t}k{k}")
    await asyncio.sleep(0)
    leaf(t, k)  # after the LangChain call: it must nest under inner, not under the finished model span
    return str(reply.content)


@trace
async def task(t: int, k: int, model: EchoChatModel) -> str:
    return await inner(t, k, model)


@trace
def thread_main(t: int) -> list[str]:
    model = EchoChatModel()

    async def fleet() -> list[str]:
        return await asyncio.gather(*(task(t, k, model) for k in range(TASKS)))

    return asyncio.run(fleet())


def expected_input_tokens() -> int:
    from langchain_core.messages import HumanMessage

    from tests.reliability_support import echo_usage

    ours = sum(1000 * t + k + 1 for t in range(THREADS) for k in range(TASKS))
    lc = sum(echo_usage([HumanMessage(f"t{t}k{k}")])[0] for t in range(THREADS) for k in range(TASKS))
    return ours + lc


def check_structure(run, *, label: str) -> None:  # noqa: ANN001
    spans = run.spans
    by_id = run.by_id()
    assert all(s.run_id == run.run_id for s in spans), label
    root = next(s for s in spans if s.parent_id is None)
    threads = {s.attributes["args"][0]: s for s in spans if s.name == "thread_main"}
    assert sorted(threads) == list(range(THREADS)) and all(s.parent_id == root.span_id for s in threads.values())
    tasks = {tuple(s.attributes["args"][:2]): s for s in spans if s.name == "task"}
    inners = {tuple(s.attributes["args"][:2]): s for s in spans if s.name == "inner"}
    assert len(tasks) == len(inners) == THREADS * TASKS, label
    for (t, k), s in tasks.items():
        assert s.parent_id == threads[t].span_id, (label, t, k)
        assert inners[(t, k)].parent_id == s.span_id, (label, t, k)
    wrong = 0
    for s in spans:
        if s.name.startswith("llm-"):
            _, t, k = s.name.split("-")
            wrong += s.parent_id != inners[(int(t), int(k))].span_id
        elif s.name == "leaf":
            wrong += s.parent_id != inners[tuple(s.attributes["args"])].span_id
        elif s.kind == "llm":  # the LangChain chat-model span: its prompt says which task made it
            content = s.llm.messages[-1]["content"]
            t, k = content[1:].split("k")
            wrong += s.parent_id != inners[(int(t), int(k))].span_id
            assert s.llm.usage.source("input_tokens") == "provider"
    assert wrong == 0, f"{label}: {wrong} spans under the wrong parent"
    counts = {name: sum(1 for s in spans if s.name == name) for name in ("leaf", "task", "inner")}
    assert counts == {"leaf": THREADS * TASKS, "task": THREADS * TASKS, "inner": THREADS * TASKS}, label
    llm = [s for s in spans if s.kind == "llm"]
    assert len(llm) == 2 * THREADS * TASKS, label
    assert all(by_id.get(s.parent_id) is not None for s in spans if s.parent_id), label
    usage = run.total_usage()
    assert usage.input_tokens == expected_input_tokens(), label
    assert usage.output_tokens == THREADS * TASKS * (1 + 3), label
    # The call graph's roll-ups agree: the root's inclusive total is the sum, and each thread's inclusive
    # total is the sum of its own 500 tasks.
    g = run.graph()
    assert g.nodes[root.span_id]["incl_input_tokens"] == usage.input_tokens, label
    assert g.nodes[root.span_id]["incl_llm_calls"] == 2 * THREADS * TASKS, label
    for t, s in threads.items():
        from langchain_core.messages import HumanMessage

        from tests.reliability_support import echo_usage

        own = sum(1000 * t + k + 1 + echo_usage([HumanMessage(f"t{t}k{k}")])[0] for k in range(TASKS))
        assert g.nodes[s.span_id]["incl_input_tokens"] == own, (label, t)


@pytest.mark.slow
def test_16_threads_x_500_tasks_nest_and_add_up(tmp_path):
    with profile("fleet", save=tmp_path) as run:
        with ThreadPoolExecutor(THREADS) as ex:
            results = list(ex.map(thread_main, range(THREADS)))
    assert results == [[f"echo:t{t}k{k}" for k in range(TASKS)] for t in range(THREADS)]
    check_structure(run, label="in memory")
    back = load_run(run.path)
    assert back.complete and len(back.spans) == len(run.spans)
    check_structure(back, label="from the run file")


# ---------------------------------------------------------------------------------------------------
# a live response cache shared by 4 processes
# ---------------------------------------------------------------------------------------------------
CACHE_CHILD = textwrap.dedent("""
    import json, sys
    from langchain_core.globals import set_llm_cache
    import tokprof.profiler.integrations
    from tokprof.profiler import profile
    from tokprof.optimizers.response_cache import ResponseCache, TokprofLLMCache
    from tests.reliability_support import EchoChatModel

    folder, runs = sys.argv[1], sys.argv[2]
    worker, calls, distinct = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    store = ResponseCache(folder, namespace="shared", deterministic_only=False)
    set_llm_cache(TokprofLLMCache(store))
    model = EchoChatModel()
    wrong = 0
    with profile(f"worker-{worker}", save=runs) as run:
        for i in range(calls):
            prompt = f"question {(i * 7 + worker * 13) % distinct}"
            answer = model.invoke(prompt).content
            wrong += answer != f"echo:{prompt}"
    print(json.dumps({"wrong": wrong, "hits": store.hits, "misses": store.misses, "run": str(run.path),
                      "run_id": run.run_id}))
""")

PROCS, CALLS, DISTINCT = 4, 150, 40


@pytest.mark.slow
def test_response_cache_shared_by_4_processes(tmp_path):
    rc = pytest.importorskip("tokprof.optimizers.response_cache")
    script = tmp_path / "child.py"
    script.write_text(CACHE_CHILD)
    folder, runs = tmp_path / "cache", tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(script), str(folder), str(runs), str(w), str(CALLS), str(DISTINCT)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
             for w in range(PROCS)]
    reports = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    # No answer served for a different request, in any process.
    assert sum(r["wrong"] for r in reports) == 0
    # The cache was really shared: only the first sight of each prompt, anywhere, can miss (a few races
    # where two processes miss the same prompt at once are allowed), everything else hits.
    hits, misses = sum(r["hits"] for r in reports), sum(r["misses"] for r in reports)
    assert hits + misses == PROCS * CALLS
    assert DISTINCT <= misses <= DISTINCT * PROCS and hits >= PROCS * CALLS - DISTINCT * PROCS
    # No entry is corrupt: every stored value decodes, and each serves exactly its own prompt.
    import warnings

    from langchain_core.globals import get_llm_cache, set_llm_cache
    from langchain_core.load import loads

    store = rc.ResponseCache(folder, namespace="shared", deterministic_only=False)
    entries = 0
    for key in store._cache.iterkeys():
        raw = store._cache.get(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gens = [loads(g) for g in json.loads(raw)]
        assert gens and all(g.text.startswith("echo:question ") for g in gens), key
        entries += 1
    assert entries == DISTINCT
    old = get_llm_cache()
    set_llm_cache(rc.TokprofLLMCache(store))
    try:
        class Refuse(EchoChatModel):
            def _generate(self, *a, **k):  # noqa: ANN002, ANN003
                raise AssertionError("not served from the shared cache")

        model = EchoChatModel()
        for i in range(DISTINCT):
            assert model.invoke(f"question {i}").content == f"echo:question {i}"
    finally:
        set_llm_cache(old)
    # Each process's run file holds its own run, with one LangChain span per call.
    for r in reports:
        run = load_run(r["run"])
        assert run.complete and run.run_id == r["run_id"]
        assert all(s.run_id == r["run_id"] for s in run.spans)
        assert sum(1 for s in run.spans if s.kind == "llm") == CALLS


@trace
def after_the_call() -> int:
    return 1


def test_async_langchain_call_restores_the_active_span():
    @trace
    async def step() -> None:
        await EchoChatModel().ainvoke("x")
        after_the_call()

    with profile("p") as run:
        asyncio.run(step())
    spans = {s.name: s for s in run.spans}
    assert spans["after_the_call"].parent_id == spans["step"].span_id
