"""Server tools billed per use (Anthropic ``usage.server_tool_use.web_search_requests``): read from the
provider's usage block by the real anthropic client over real HTTP (tests/llm_server.py), stored and reloaded
in run files, priced by the one cost function and shown in the summary.

Oracle (hand arithmetic, prices from data/prices.json): claude-haiku-4-5 input $1 / output $5 per 1M tokens,
web search $10 per 1,000 searches (estimated: Anthropic's page was not readable in the stored copies), web
fetch no charge. A call with 1,000 input and 200 output tokens and 3 searches + 1 fetch costs
1000 x 1/1e6 + 200 x 5/1e6 + 3 x 10/1000 + 1 x 0 = 0.001 + 0.001 + 0.03 = $0.032."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import anthropic
import pytest

from llm_server import Reply
from tokprof.profiler import profile, uninstrument
from tokprof.profiler.accounting import usage_cost
from tokprof.profiler.integrations.usage_dialects import anthropic_usage
from tokprof.profiler.model import Usage
from tokprof.profiler.providers.cost import TokenSplit, call_cost
from tokprof.profiler.store import load_run

MODEL = "claude-haiku-4-5"
SERVER_TOOLS = {"web_search_requests": 3, "web_fetch_requests": 1}
USAGE = {"input_tokens": 1000, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
         "server_tool_use": SERVER_TOOLS}
EXPECTED_COST = Decimal("0.032")


@pytest.fixture(autouse=True)
def _clean_instrumentation():
    yield
    uninstrument("anthropic")


def _client(server: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=server.anthropic_url, api_key="test", max_retries=0)


def test_web_searches_are_recorded_priced_saved_and_shown(llm_server: Any, tmp_path: Path) -> None:
    llm_server.script(Reply(text="Found it.", output_tokens=200, usage=USAGE))
    with profile("search", instrument=["anthropic"], save=str(tmp_path)) as run:
        msg = _client(llm_server).messages.create(
            model=MODEL, max_tokens=256, messages=[{"role": "user", "content": "Who won?"}],
            tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}])
    assert msg.usage.server_tool_use is not None and msg.usage.server_tool_use.web_search_requests == 3
    (span,) = run.llm_spans()
    u = span.llm.usage
    assert u.tool_requests == {"web_search": 3, "web_fetch": 1}
    assert (u.input_tokens, u.output_tokens) == (1000, 200)
    cost = usage_cost(u, MODEL, provider="anthropic")
    assert cost is not None and cost.amount == EXPECTED_COST
    assert cost.source == "estimated"  # the per-search price is an estimated row
    # stored and reloaded
    (path,) = tmp_path.glob("*.jsonl")
    assert '"tool_requests":{"web_fetch":1,"web_search":3}' in path.read_text()
    loaded = load_run(path)
    assert loaded.llm_spans()[0].llm.usage.tool_requests == {"web_search": 3, "web_fetch": 1}
    s = loaded.summary(currency="USD")
    assert s.tool_requests == {"web_fetch": 1, "web_search": 3}
    assert s.cost == EXPECTED_COST  # as paid: recorded tokens (no cache) + searches
    assert s.to_dict()["tool_requests"] == {"web_fetch": 1, "web_search": 3}
    assert "server tools billed per use: web_fetch 1, web_search 3" in str(s)


def test_stream_reads_the_server_tool_count_from_message_delta(llm_server: Any) -> None:
    start = {**USAGE, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0}}
    llm_server.script(Reply(text="Streamed.", output_tokens=200, usage=start,
                            delta_usage={"server_tool_use": {"web_search_requests": 2, "web_fetch_requests": 0}}))
    with profile("stream", instrument=["anthropic"]) as run:
        aclient = anthropic.AsyncAnthropic(base_url=llm_server.anthropic_url, api_key="test", max_retries=0)

        async def consume() -> None:
            async with aclient.messages.stream(model=MODEL, max_tokens=64,
                                               messages=[{"role": "user", "content": "Search."}]) as s:
                async for _ in s:
                    pass

        asyncio.run(consume())
    (span,) = run.llm_spans()
    assert span.llm.usage.tool_requests == {"web_search": 2}
    # 1000 x 1/1e6 + 200 x 5/1e6 + 2 x 0.01
    assert usage_cost(span.llm.usage, MODEL, provider="anthropic").amount == Decimal("0.022")


def test_dialect_reads_only_clean_nonzero_counts() -> None:
    u = anthropic_usage({"input_tokens": 10, "output_tokens": 1, "server_tool_use": {
        "web_search_requests": 4, "web_fetch_requests": 0, "junk_requests": -3, "other": 5}})
    assert u.tool_requests == {"web_search": 4}
    assert anthropic_usage({"input_tokens": 10, "output_tokens": 1}).tool_requests == {}
    assert anthropic_usage({"input_tokens": 1, "output_tokens": 1, "server_tool_use": "x"}).tool_requests == {}


def test_old_run_files_load_unchanged_and_usage_without_requests_serialises_as_before() -> None:
    old = {"input_tokens": 5, "output_tokens": 2, "sources": {"input_tokens": "provider", "output_tokens": "provider"}}
    u = Usage.from_dict(old)
    assert u.tool_requests == {} and u.to_dict() == old
    assert Usage.from_dict({**old, "tool_requests": {"web_search": 2, "bad": "x", "neg": -1}}).tool_requests == \
        {"web_search": 2}


def test_sums_and_the_cost_function() -> None:
    a = Usage.from_provider(input_tokens=1000, output_tokens=200)
    a.tool_requests = {"web_search": 1}
    b = Usage.from_provider(input_tokens=0, output_tokens=0)
    b.tool_requests = {"web_search": 2, "web_fetch": 5}
    total = a + b
    assert total.tool_requests == {"web_search": 3, "web_fetch": 5}
    assert total.copy().tool_requests == total.tool_requests
    assert TokenSplit.from_usage(total).tool_requests == (("web_fetch", 5), ("web_search", 3))
    assert call_cost(total, MODEL, provider="anthropic") == Decimal("0.032")
    # CNY: converted at the display rate like every other part of the cost
    assert call_cost(total, MODEL, "CNY", provider="anthropic") is not None
    # a provider with no per-request price: tokens only, and the cost says estimated
    g = Usage.from_provider(input_tokens=1000, output_tokens=200)
    g.tool_requests = {"web_search": 1}
    cost = usage_cost(g, "gpt-4.1-mini", provider="openai")
    assert cost is not None and cost.amount == Decimal("0.00072") and cost.source == "estimated"


def test_price_rows_carry_source_and_estimated_flag() -> None:
    doc = json.loads((Path(__file__).parents[1] / "profiler/providers/data/prices.json").read_text())
    rows = {(r["provider"], r["kind"]): r for r in doc["tool_requests"]}
    assert rows[("anthropic", "web_search")]["per_1000"] == "10"
    assert all(isinstance(r["estimated"], bool) and r["source"].startswith("https://") and r["note"]
               for r in rows.values())


def test_otlp_export_and_import_keep_the_searches_and_their_cost(tmp_path: Path) -> None:
    """A run exported as OTLP and imported back bills the same $0.032 (the searches travel as
    ``tokprof.usage.tool_requests``); a junk entry in that attribute is dropped, never priced."""
    from tokprof.profiler.interchange import import_file
    from tokprof.profiler.interchange.otlp import write_otlp
    from tokprof.profiler.model import LLMCall, Run, Span

    u = Usage.from_provider(input_tokens=1000, output_tokens=200, cache_read_tokens=0, cache_write_tokens=0)
    u.tool_requests = {"web_search": 3, "web_fetch": 1}
    run = Run(name="search", run_id="r-search")
    run.spans.append(Span("s1", None, run.run_id, "llm", "chat", 1, 1_700_000_000_000_000_000, end_ns=2,
                          llm=LLMCall(provider="anthropic", model=MODEL, usage=u,
                                      messages=[{"role": "user", "content": "Who won?"}])))
    path = write_otlp([run], tmp_path / "trace.json")
    (back,) = import_file(path).runs
    got = back.llm_spans()[0].llm.usage
    assert got.tool_requests == {"web_search": 3, "web_fetch": 1}
    assert back.summary(currency="USD").cost == EXPECTED_COST
    doc = json.loads(path.read_text())
    attrs = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"]
    for a in attrs:
        if a["key"] == "tokprof.usage.tool_requests":
            a["value"] = {"stringValue": json.dumps({"web_search": "3", "web_fetch": -1, "x": True, "y": 2})}
    path.write_text(json.dumps(doc))
    (junk,) = import_file(path).runs
    assert junk.llm_spans()[0].llm.usage.tool_requests == {"y": 2}
