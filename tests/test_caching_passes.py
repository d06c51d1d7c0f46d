"""The caching passes on small hand-built runs: prompt-cache (plans, savings, prefix diagnostics),
response-cache (repeats within and across runs), tool-cache (pass and live memoization)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokprof.optimizers.base import PassContext
from tokprof.optimizers.pipeline import optimize
from tokprof.optimizers.billing import Rates, bill_run, price_run
from tokprof.optimizers.prompt_cache import PromptCachePass, breaks_by_cause, prefix_breaks
from tokprof.optimizers.response_cache import ResponseCachePass
from tokprof.optimizers.tool_cache import ToolCachePass, memoize_tool, repeated_tool_calls
from tokprof.profiler.model import LLMCall, Run, Span, Usage

MIN = 60 * 1_000_000_000
SYSTEM = "You are a meticulous travel agent. Follow the policy. " * 60
TOOLS = [{"type": "function", "function": {"name": n, "description": f"{n} tool", "parameters": {"type": "object"}}}
         for n in ("get_reservation", "search_flights", "book")]


def no_fidelity(a: Run, b: Run) -> None:
    return None


def prices(model: str | None) -> Rates | None:
    return {"claude-sonnet-4-5": Rates(Decimal(3), Decimal(15), Decimal("0.3"), Decimal("3.75"), Decimal(6)),
            "gpt-4.1": Rates(Decimal(2), Decimal(8), Decimal("0.5"))}.get(model or "")


def span(i: int, model: str, provider: str, messages: list[dict], tokens: int, at_min: float, *,
         tools: list | None = None, params: dict | None = None, output: dict | None = None,
         status: str = "ok") -> Span:
    t = int(at_min * MIN)
    call = LLMCall(provider=provider, model=model, messages=messages, tools=tools or [], params=params or {},
                   output=output, usage=Usage.from_provider(input_tokens=tokens, output_tokens=50))
    return Span(f"s{i}", None, "r", "llm", f"call {i}", t, t, end_ns=t, status=status, llm=call)


def agent_loop(model: str = "claude-sonnet-4-5", provider: str = "anthropic", turns: int = 6) -> Run:
    """An agent that re-sends its growing history on every call."""
    msgs: list[dict] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Change my flight."}]
    spans = []
    tokens = 2000
    for i in range(turns):
        out = {"role": "assistant", "content": f"Step {i}: looking that up for you now. " * 10}
        spans.append(span(i, model, provider, list(msgs), tokens, at_min=i * 0.5, tools=TOOLS, output=out))
        msgs += [out, {"role": "user", "content": f"Result of step {i}: " + "details " * 80}]
        tokens += 300
    return Run(run_id="loop", spans=spans)


# ---------------------------------------------------------------------------------------------------
# prompt-cache
# ---------------------------------------------------------------------------------------------------
def test_prompt_cache_plans_anthropic_breakpoints_and_saves() -> None:
    run = agent_loop()
    before = bill_run(run, prices=prices).total
    new, rows = PromptCachePass().apply(run, PassContext())
    after = bill_run(new, prices=prices)
    assert run.metadata.get("billing") is None  # the input run is untouched
    assert all("billing.plan" not in (s.attributes or {}) for s in run.spans)
    plans = [s.attributes["billing.plan"] for s in new.llm_spans()]
    assert all(1 <= len(p["breakpoints"]) <= 4 for p in plans)
    # every call after the first reads the previous prompt and writes only what it added
    assert [c.cache_read_tokens for c in after.calls] == [0, 2000, 2300, 2600, 2900, 3200]
    assert [c.cache_write_tokens for c in after.calls] == [2000, 300, 300, 300, 300, 300]
    assert after.total is not None and before is not None and after.total < before * Decimal("0.5")
    assert len(rows) == 6 and rows[1].details["cache_read_tokens"] == 2000
    assert rows[1].evidence == "simulated"


def test_prompt_cache_in_pipeline_prices_automatic_caching() -> None:
    run = agent_loop("gpt-4.1", "openai")
    new, ledger = optimize(run, ["prompt-cache"], pricer=lambda r, c: price_run(r, c, prices=prices),
                           fidelity=no_fidelity)
    assert ledger.baseline.billed_cost == price_run(run, prices=prices)[0]
    assert ledger.final.billed_cost < ledger.baseline.billed_cost
    assert ledger.steps[0].rows[1].cost_after < ledger.steps[0].rows[1].cost_before
    assert new.metadata["billing"]["mode"] == "simulate"


def _pair(first: list[dict], second: list[dict], tools1: list | None = None, tools2: list | None = None) -> Run:
    return Run(run_id="p", spans=[span(1, "gpt-4.1", "openai", first, 3000, 0, tools=tools1),
                                  span(2, "gpt-4.1", "openai", second, 3200, 1, tools=tools2)])


HISTORY = [{"role": "user", "content": "I need to rebook. " * 50},
           {"role": "assistant", "content": "Sure, which reservation? " * 30},
           {"role": "user", "content": "Reservation ABC123, please. " * 20}]


def test_prefix_break_timestamp_in_system_prompt() -> None:
    s1 = {"role": "system", "content": "Current time: 2025-10-31T07:35:01. " + SYSTEM}
    s2 = {"role": "system", "content": "Current time: 2025-10-31T07:36:12. " + SYSTEM}
    breaks = prefix_breaks(_pair([s1, *HISTORY], [s2, *HISTORY, {"role": "user", "content": "ok"}]),
                           prices=prices)
    assert len(breaks) == 1
    b = breaks[0]
    assert b.cause == "timestamp or id in the system prompt" and b.where == "message 0 (system)"
    assert "07:35:01" in b.before and "07:36:12" in b.after
    assert b.shared_tokens < 50 and b.lost_tokens > 2900
    assert b.cost == Decimal(b.lost_tokens) * (Decimal(2) - Decimal("0.5")) / Decimal(1_000_000)
    assert breaks_by_cause(breaks)["timestamp or id in the system prompt"]["count"] == 1


def test_prefix_break_tools_reordered() -> None:
    sysm = {"role": "system", "content": SYSTEM}
    breaks = prefix_breaks(_pair([sysm, *HISTORY], [sysm, *HISTORY], TOOLS, list(reversed(TOOLS))), prices=prices)
    assert [b.cause for b in breaks] == ["tool definitions reordered"]
    assert breaks[0].where == "tools"


def test_prefix_break_content_inserted_before_history() -> None:
    sysm = {"role": "system", "content": SYSTEM}
    memo = {"role": "user", "content": "Relevant memory: the customer prefers aisle seats."}
    breaks = prefix_breaks(_pair([sysm, *HISTORY], [sysm, memo, *HISTORY]), prices=prices)
    assert [b.cause for b in breaks] == ["content inserted before the history"]
    assert "aisle" in breaks[0].after


def test_no_break_when_the_conversation_just_grows() -> None:
    assert prefix_breaks(agent_loop("gpt-4.1", "openai"), prices=prices) == []


def test_prefix_break_details_in_ledger_rows() -> None:
    s1 = {"role": "system", "content": "Session id 4f9c2a1b7d3e5f60a1b2. " + SYSTEM}
    s2 = {"role": "system", "content": "Session id 9a8b7c6d5e4f3a2b1c0d. " + SYSTEM}
    run = _pair([s1, *HISTORY], [s2, *HISTORY])
    _, rows = PromptCachePass().apply(run, PassContext())
    brk = [r for r in rows if "prefix_break" in r.details]
    assert len(brk) == 1 and brk[0].details["prefix_break"]["cause"] == "timestamp or id in the system prompt"


# ---------------------------------------------------------------------------------------------------
# response-cache
# ---------------------------------------------------------------------------------------------------
def _req_run(run_id: str, questions: list[str], params: dict | None = None) -> Run:
    spans = [span(i, "gpt-4.1", "openai", [{"role": "system", "content": "Be terse."},
                                           {"role": "user", "content": q}], 100, i,
                  params=params if params is not None else {"temperature": 0})
             for i, q in enumerate(questions)]
    for s in spans:
        s.run_id = run_id
    return Run(run_id=run_id, spans=spans)


def test_response_cache_within_and_across_runs() -> None:
    ctx = PassContext()
    p = ResponseCachePass()
    r1, rows1 = p.apply(_req_run("a", ["q1", "q2", "q1"]), ctx)
    r2, rows2 = p.apply(_req_run("b", ["q2", "q3"]), ctx)
    assert [r.span_id for r in rows1] == ["s2"] and [r.span_id for r in rows2] == ["s0"]
    served = r1.by_id()["s2"]
    assert served.attributes["served_by"] == "response-cache"
    assert served.llm.usage.input_tokens == 0 and rows1[0].input_tokens_before == 100
    assert rows2[0].details["origin"]["run_id"] == "a"
    assert price_run(r1, prices=prices)[1][2] == Decimal(0)


def test_response_cache_skips_sampling_and_failed_calls() -> None:
    ctx = PassContext()
    _, rows = ResponseCachePass().apply(_req_run("hot", ["q", "q"], {"temperature": 0.9}), ctx)
    assert rows == []
    run = _req_run("err", ["q", "q"])
    run.spans[0].status = "error"
    _, rows = ResponseCachePass().apply(run, PassContext())
    assert rows == []  # the failed call was not an answer to serve
    _, rows = ResponseCachePass(unknown_temperature="skip").apply(_req_run("u", ["q", "q"], {}), PassContext())
    assert rows == []
    _, rows = ResponseCachePass().apply(_req_run("u", ["q", "q"], {}), PassContext())
    assert len(rows) == 1 and rows[0].risk.startswith("medium")


# ---------------------------------------------------------------------------------------------------
# tool-cache
# ---------------------------------------------------------------------------------------------------
def _tool_run() -> Run:
    result = '{"reservation_id": "ABC123", "flights": [' + ", ".join(['{"n": "UA1"}'] * 40) + "]}"

    def tc(cid: str) -> dict:
        return {"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": "get_reservation",
                                                         "arguments": '{"reservation_id": "ABC123"}'}}]}

    base = [{"role": "system", "content": "agent"}, {"role": "user", "content": "check ABC123 twice"}]
    m1 = base + [tc("c1"), {"role": "tool", "tool_call_id": "c1", "content": result}]
    m2 = m1 + [tc("c2"), {"role": "tool", "tool_call_id": "c2", "content": result}]
    return Run(run_id="t", spans=[span(1, "gpt-4.1", "openai", m1, 800, 0), span(2, "gpt-4.1", "openai", m2, 1400, 1)])


def test_tool_cache_pass_shows_repeated_result_once() -> None:
    run = _tool_run()
    assert repeated_tool_calls(run) == 1
    new, rows = ToolCachePass().apply(run, PassContext())
    assert len(rows) == 1 and rows[0].span_id == "s2"
    assert rows[0].input_tokens_after < rows[0].input_tokens_before
    msgs = new.by_id()["s2"].llm.messages
    assert msgs[-1]["content"].startswith("[same result as the earlier get_reservation call c1")
    assert run.by_id()["s2"].llm.messages[-1]["content"].startswith('{"reservation_id"')  # input untouched
    assert new.by_id()["s2"].llm.usage.source("input_tokens") == "estimated"


def test_memoize_tool() -> None:
    calls = []

    @memoize_tool
    def lookup(reservation_id: str, verbose: bool = False) -> dict:
        calls.append(reservation_id)
        if reservation_id == "BAD":
            raise KeyError(reservation_id)
        return {"id": reservation_id}

    assert lookup("A") == {"id": "A"} and lookup("A") == {"id": "A"}
    assert lookup(reservation_id="A", verbose=True) == {"id": "A"}
    assert calls == ["A", "A"]  # keyword arguments are part of the key
    for _ in range(2):
        with pytest.raises(KeyError):
            lookup("BAD")
    assert calls.count("BAD") == 2  # exceptions are never cached
    assert lookup.cache_info()["hits"] == 1

    @memoize_tool(ttl=-1)
    def clock() -> int:
        calls.append("clock")
        return len(calls)

    clock()
    clock()
    assert calls.count("clock") == 2  # expired immediately
