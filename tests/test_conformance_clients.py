"""Conformance: every (client x call path x sync/async x stream) that makes sense, against the loopback
server answering in every provider dialect. Each recorded usage field must equal what the server sent
(converted by hand to tokprof's convention in tests/conformance_cases.py), with source ``provider``; the
model is the one sent; the LLM span hangs under the agent span that made the call; and the cost equals
the per-token prices of the data file times the tokens, computed here by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from conformance_cases import Dialect, Path, combos
from conformance_driver import call, reply_for
from tokprof.profiler import profile, span, uninstrument
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.model import Usage
from tokprof.profiler.providers.prices import get_price

COMBOS = combos()


@pytest.fixture(autouse=True)
def _restore():
    yield
    uninstrument()


def hand_cost(u: dict[str, int], model: str) -> Decimal | None:
    """Tokens x per-token prices from the data file, the arithmetic done here (not by tokprof)."""
    price = get_price(model, warn=False)
    if price is None:
        return None
    p = price.for_prompt(u["input_tokens"])
    read, write = u.get("cache_read_tokens", 0), u.get("cache_write_tokens", 0)
    write_1h = u.get("cache_write_1h_tokens", 0)
    fresh = u["input_tokens"] - read - write
    in_price = p.input
    read_price = p.cache_read if p.cache_read is not None else in_price
    write_price = p.cache_write if p.cache_write is not None else in_price
    write_1h_price = p.cache_write_1h if p.cache_write_1h is not None else write_price
    out, reasoning = u["output_tokens"], u.get("reasoning_tokens", 0)
    out_money = (out - reasoning) * p.output + reasoning * p.reasoning if p.reasoning is not None else out * p.output
    total = (fresh * in_price + read * read_price + (write - write_1h) * write_price + write_1h * write_1h_price
             + out_money)
    return total / Decimal(1_000_000)


def record(path: Path, dialect: Dialect, server: Any) -> tuple[Any, Any, Any]:
    server.script(reply_for(dialect))
    with profile("conformance") as run:
        with span("agent-step", kind="agent"):
            got = call(path, dialect, server)
    return run, got, server.requests[-1]


@pytest.mark.parametrize("path,dialect", COMBOS, ids=[f"{p.id}-{d.name}" for p, d in COMBOS])
def test_conformance(path: Path, dialect: Dialect, llm_server: Any) -> None:
    run, _, _ = record(path, dialect, llm_server)
    llm = run.llm_spans()
    assert len(llm) == 1, f"{len(llm)} LLM spans recorded (want exactly one)"
    s = llm[0]
    (agent,) = [x for x in run.spans if x.name == "agent-step"]
    assert s.parent_id == agent.span_id
    u: Usage = s.llm.usage
    got = {k: getattr(u, k) for k in u.sources}
    if path.client == "litellm":
        # litellm rebuilds the usage block and reports details the server did not send as 0
        got = {k: v for k, v in got.items() if k in dialect.expected or v != 0}
    assert got == dialect.expected
    assert set(u.sources.values()) == {"provider"}
    assert s.llm.model == dialect.model
    want = hand_cost(dialect.expected, dialect.model)
    price = get_price(dialect.model, warn=False)
    cost = span_cost(s, price.currency if price else "USD")
    if want is None:
        assert cost is None  # no price: unknown, never 0
        return
    assert cost is not None
    assert cost.amount == want
