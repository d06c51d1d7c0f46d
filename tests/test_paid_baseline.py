"""Issue #16.1: the baseline of every saving is what the run paid, and a pass is credited only with its change.

Oracles: the costs the corpus files recorded (τ²-bench ``cost`` per message), and hand arithmetic with a
private price table (per 1M tokens: gpt-4.1 input $2, cached $0.50, output $8).
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path


from tokprof.optimizers.base import optimize
from tokprof.optimizers.billing import Rates
from tokprof.optimizers.paid import CostRange, paid_bills, rebill, simulate
from tokprof.profiler.interchange import import_file
from tokprof.profiler.model import Cost, LLMCall, Run, Span, Usage

PRICES = {"gpt-4.1": Rates(Decimal("2"), Decimal("8"), Decimal("0.5"))}


def _recorded(span: Span) -> Decimal | None:
    c = span.llm.cost if span.llm is not None else None
    return c.amount if c is not None and c.source == "recorded" else None


def _files_with_costs(corpus: Path) -> list[Path]:
    return [f for f in sorted(corpus.rglob("*.gz")) if f.parent.name == "tau2"]


def test_baseline_is_recorded_on_every_corpus_file_with_costs(corpus: Path) -> None:
    checked = 0
    for f in _files_with_costs(corpus):
        runs = list(import_file(f).runs)
        recorded = [((i, s.span_id), _recorded(s)) for i, r in enumerate(runs) for s in r.llm_spans()]
        if not any(v is not None for _, v in recorded):
            continue  # toolorchestra records no costs
        bills = paid_bills(runs)
        got = {(i, c.span_id): c for i, b in enumerate(bills) for c in b.calls}
        for sid, amount in recorded:
            if amount is not None:
                assert got[sid].basis == "recorded cost" and got[sid].cost.is_point
                assert got[sid].cost.expected == amount, (f.name, sid)
        total_recorded = sum((v for _, v in recorded if v is not None), Decimal(0))
        total_paid = sum((got[sid].cost.expected for sid, v in recorded if v is not None), Decimal(0))
        assert total_paid == total_recorded
        # the run summary (what `tokprof import` / `show` print) agrees to the cent
        for run, bill in zip(runs, bills):
            summary = Decimal(str(run.summary().to_dict()["cost"]["amount"] or 0))
            assert round(bill.total.expected, 2) == round(summary, 2), (f.name, run.run_id)
        checked += 1
    assert checked == 6  # claude-sonnet-4-5, gpt-oss-120b, grok-3, o3, gpt-5.4, sonnet-4-6


def test_ledger_starts_from_what_was_paid(corpus: Path) -> None:
    """optimize() and the report's pricing agree with the recorded cost of the same run."""
    from tokprof.reports.model import _span_costs

    f = next(corpus.glob("tau2/*v2_gpt54*.gz"))
    run = list(import_file(f).runs)[0]
    recorded = sum(_recorded(s) for s in run.llm_spans())
    _, ledger = optimize(run, ["prompt-cache"])
    assert ledger.baseline.billed_cost == recorded
    assert ledger.baseline.evidence == "measured"
    assert _span_costs(run, "USD").total == recorded
    # OpenAI caches automatically: the agent already had those hits, so planning caching saves nothing
    assert ledger.saved() == 0 and ledger.saved_range() == (0, 0)


def _span(i: int, text: str, tokens: int, cost: str | None, at: int) -> Span:
    call = LLMCall(provider="openai", model="gpt-4.1", messages=[{"role": "user", "content": text}],
                   usage=Usage.from_provider(input_tokens=tokens, output_tokens=100))
    if cost is not None:
        call.cost = Cost(Decimal(cost), "USD", "recorded")
    return Span(f"s{i}", None, "r", "llm", f"c{i}", start_ns=at, wall_start_ns=at, end_ns=at, llm=call)


def test_pass_credited_only_with_its_change() -> None:
    """One short call (below OpenAI's 1,024-token cache minimum, so no caching either way): recorded cost
    $0.0030; a rewrite that cuts its input from 1,000 to 500 tokens saves 500 x $2/1M = $0.0010, so the
    rewritten bill is 0.0030 - 0.0010 = $0.0020 (not the list price of the rewrite, 500x2+100x8 = $0.0018)."""
    run = Run(run_id="r", spans=[_span(0, "hello " * 300, 1000, "0.0030", 0)])
    lookup = PRICES.get
    sim = simulate([run], prices=lookup)
    paid = paid_bills([run], sim=sim, prices=lookup)
    assert paid[0].total.expected == Decimal("0.0030")
    new = copy.deepcopy(run)
    new.spans[0].llm.messages = [{"role": "user", "content": "hello " * 150}]
    new.spans[0].llm.usage.set("input_tokens", 500, "counted")
    after = rebill([run], [new], paid, sim, prices=lookup)[0]
    assert after.total.expected == Decimal("0.0020")
    assert after.total.is_point


def test_simulated_automatic_caching_has_a_range() -> None:
    """Two identical 3,000-token prompts a minute apart, no recorded cost: the second may be served from
    OpenAI's automatic cache. all-hits: the simulator's cached tokens at $0.50; no-hits: full price."""
    text = "the same long prompt " * 600
    run = Run(run_id="r", spans=[_span(0, text, 3000, None, 0), _span(1, text, 3000, None, 60 * 10**9)])
    paid = paid_bills([run], prices=PRICES.get)[0]
    second = paid.calls[1]
    assert second.basis == "simulated automatic caching"
    assert second.confidence in ("calibrated", "documented", "assumed")
    # no-hits: 3000 x 2 + 100 x 8 = $0.0068
    assert second.cost.high == Decimal("0.0068")
    assert second.cost.low < second.cost.expected < second.cost.high
    assert isinstance(paid.total, CostRange) and not paid.total.is_point
