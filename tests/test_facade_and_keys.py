"""The public façade (``from tokprof import ...``) and the named keys that cross modules."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import get_llm_cache, set_llm_cache
from langchain_core.messages import AIMessage

import tokprof
from tokprof import load_run, optimize, profile, record_llm_call, report, span, trace
from tokprof.optimizers.billing import bill_run
from tokprof.profiler import keys
from tokprof.scripted_model import ScriptedChatModel


def test_the_facade_exports_exactly_its_names():
    assert {"trace", "profile", "span", "record_llm_call", "load_run", "optimize", "report"} <= set(tokprof.__all__)
    assert all(hasattr(tokprof, n) for n in tokprof.__all__)
    assert (Path(tokprof.__file__).parent / "py.typed").is_file()


def _agent_run(tmp_path: Path):
    @trace(kind="tool")
    def lookup(q: str) -> str:
        return f"result for {q}"

    with profile("facade", save=tmp_path) as run:
        history = [{"role": "system", "content": "You are terse. " * 200}, {"role": "user", "content": "hi"}]
        for i in range(3):
            with span("step"):
                history = history + [{"role": "tool", "tool_call_id": f"c{i}", "content": lookup(str(i))}]
                record_llm_call(model="claude-sonnet-4-5", messages=history, output="ok",
                                usage={"input_tokens": 1000 + 10 * i, "output_tokens": 5})
    return run


def test_optimize_and_report_from_the_facade(tmp_path: Path):
    run = _agent_run(tmp_path)
    loaded = load_run(run.path)
    assert len(loaded.llm_spans()) == 3
    new, ledger = optimize(loaded, ["prompt-cache"])
    assert [s.pass_name for s in ledger.steps] == ["prompt-cache"]
    assert ledger.baseline.input_tokens == 1000 + 1010 + 1020  # what the run reported, untouched
    assert len(loaded.llm_spans()) == 3 and "billing" not in (loaded.metadata or {})  # input not modified
    out = report(loaded, tmp_path / "r.html", passes=["prompt-cache"])
    assert out == tmp_path / "r.html" and "<html" in out.read_text()[:2000]


@pytest.mark.parametrize("key", [keys.SERVED_BY, *keys.LEGACY_SERVED_BY])
def test_billing_bills_nothing_for_a_call_a_cache_served(tmp_path: Path, key: str):
    """A call answered by a cache never reached the provider: billing says ``served`` and costs 0, whichever
    name (the one key, or the legacy live/simulated names in older run files) marks it."""
    run = _agent_run(tmp_path)
    served = run.llm_spans()[1]
    served.set_attribute(key, "response-cache")
    bills = {b.span_id: b for b in bill_run(run).calls}
    assert bills[served.span_id].basis == "served" and not bills[served.span_id].cost
    others = [b for sid, b in bills.items() if sid != served.span_id]
    assert all(b.basis != "served" and b.cost and b.cost > Decimal(0) for b in others)


def test_a_live_langchain_cache_hit_is_marked_with_the_one_key_and_billed_nothing():
    model = ScriptedChatModel(policy=lambda messages: AIMessage(content="ok"))
    old = get_llm_cache()
    set_llm_cache(InMemoryCache())
    try:
        with profile("cached") as run:
            model.invoke("hello")
            model.invoke("hello")
    finally:
        set_llm_cache(old)
    first, second = run.llm_spans()
    assert keys.served_by(second.attributes) == "langchain-cache" and keys.SERVED_BY in second.attributes
    assert keys.served_by(first.attributes) is None
    bills = {b.span_id: b for b in bill_run(run).calls}
    assert bills[second.span_id].basis == "served" and not bills[second.span_id].cost
