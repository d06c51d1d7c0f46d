"""A run's summary: tokens, cost, calls, top spans, and where the numbers came from.

``RunSummary.to_dict()`` is the documented JSON shape used by every ``--json`` flag that prints a run
summary (see README, "JSON output"):

``{"run_id", "name", "tags", "complete", "spans", "llm_calls", "duration_ms",
   "tokens": {"input", "output", "cache_read", "cache_write", "reasoning", "total"},
   "token_sources": {"provider": n, "counted": n, "estimated": n},  # tokens by where they came from
   "cost": {"amount": "decimal string" | null, "currency", "unpriced_calls",
            "basis": {basis: calls}, "label": str, "range": {"expected", "low", "high", "best", "worst", ...},
            "as_recorded": "decimal string" | null},
   "models": {model: calls},
   "top_spans": [{"span_id", "name", "kind", "calls", "excl_tokens", "incl_tokens", "excl_cost", "duration_ms"}]}``

``cost.amount`` is what the run paid (:func:`tokprof.profiler.providers.as_paid.paid_bills`, the figure
``import``, ``optimize``, ``report``, ``compare`` and the demo also start from): recorded cost, else provider
cache tokens x prices, else the provider's automatic caching simulated on the unchanged run (the expected
bill; ``range`` holds best = every predicted hit served, worst = none). ``basis`` counts the calls by how
their cost is known and ``label`` says it in words. ``as_recorded`` is the same calls with no caching
simulated (recorded costs, reported cache tokens, else list price): what the fleet ledger sums.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tokprof.profiler.accounting import span_cost
from tokprof.profiler.policy import internal_error
from tokprof.profiler.providers.as_paid import CostRange, RunPaid, run_paid
from tokprof.profiler.providers.currency import run_currency
from tokprof.profiler.graph import call_graph, top_spans
from tokprof.profiler.model import Run

SUMMARY_SCHEMA = 1


@dataclass
class RunSummary:
    run_id: str
    name: str
    tags: dict[str, str]
    complete: bool
    spans: int
    llm_calls: int
    duration_ms: float
    tokens: dict[str, int]
    token_sources: dict[str, int]
    cost: Decimal | None
    currency: str
    unpriced_calls: int
    models: dict[str, int]
    top_spans: list[dict[str, Any]] = field(default_factory=list)
    cost_basis: dict[str, int] = field(default_factory=dict)
    """Calls by how their cost is known (``recorded cost``, ``provider cache tokens``, ``simulated automatic
    caching``, ``uncached``, ``served``)."""
    cost_label: str = ""
    cost_range: CostRange | None = None
    """Best / expected / worst of the simulated automatic caching (a point when nothing is simulated)."""
    as_recorded: Decimal | None = None
    tool_requests: dict[str, int] = field(default_factory=dict)
    """Server-tool requests billed per use over the run (kind -> count, e.g. ``web_search``), priced in ``cost``."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SUMMARY_SCHEMA,
            "run_id": self.run_id,
            "name": self.name,
            "tags": self.tags,
            "complete": self.complete,
            "spans": self.spans,
            "llm_calls": self.llm_calls,
            "duration_ms": round(self.duration_ms, 3),
            "tokens": self.tokens,
            "token_sources": self.token_sources,
            "cost": {
                "amount": None if self.cost is None else str(self.cost),
                "currency": self.currency,
                "unpriced_calls": self.unpriced_calls,
                "basis": self.cost_basis,
                "label": self.cost_label,
                "range": None if self.cost_range is None else self.cost_range.to_dict(),
                "as_recorded": None if self.as_recorded is None else str(self.as_recorded),
            },
            "models": self.models,
            "top_spans": self.top_spans,
            **({"tool_requests": dict(self.tool_requests)} if self.tool_requests else {}),
        }

    def _cost_text(self) -> str:
        if self.cost is None:
            return "unknown"
        text = f"{self.cost:.6f} {self.currency}"
        if self.unpriced_calls:
            text += f" (+{self.unpriced_calls} calls with unknown price)"
        if self.cost_label:
            text += f" as paid ({self.cost_label}"
            r = self.cost_range
            if r is not None and r.known and not r.is_point:
                best, _, worst = r.by_scenario
                text += f"; range {best:.6f} best to {worst:.6f} worst"
            text += ")"
        return text

    def __str__(self) -> str:
        t = self.tokens
        total_src = sum(self.token_sources.values()) or 1
        src = ", ".join(f"{k} {100 * v / total_src:.0f}%" for k, v in self.token_sources.items() if v)
        lines = [
            f"run {self.name} ({self.run_id}){'' if self.complete else ' [incomplete]'}",
            f"  llm calls {self.llm_calls}, spans {self.spans}, {self.duration_ms / 1000:.2f} s",
            f"  tokens in {t['input']:,} (cached {t['cache_read']:,}) out {t['output']:,}"
            f" (reasoning {t['reasoning']:,}) total {t['total']:,}",
            f"  token sources: {src or 'none'}",
            f"  cost {self._cost_text()}",
        ]
        if self.tool_requests:
            lines.append("  server tools billed per use: "
                         + ", ".join(f"{k} {v:,}" for k, v in sorted(self.tool_requests.items())))
        if self.models:
            lines.append("  models: " + ", ".join(f"{m} x{n}" for m, n in self.models.items()))
        if self.top_spans:
            lines.append("  top spans by own tokens:")
            for r in self.top_spans:
                lines.append(f"    {r['excl_tokens']:>10,}  {r['kind']:<9} {r['name']}")
        return "\n".join(lines)

    def to_html(self) -> str:
        t = self.tokens
        rows = [
            ("LLM calls", f"{self.llm_calls:,}"),
            ("Input tokens", f"{t['input']:,} (cached {t['cache_read']:,})"),
            ("Output tokens", f"{t['output']:,}"),
            ("Cost", self._cost_text()),
        ]
        body = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                       for k, v in rows)
        return f"<div><b>tokprof run {html.escape(self.name)}</b><table>{body}</table></div>"


def summarize(run: Run, top: int = 5, currency: str | None = None) -> RunSummary:
    """``currency``: default the run's own (see :func:`tokprof.profiler.providers.currency.run_currency`)."""

    currency = run_currency(run, currency)

    usage = run.total_usage()
    sources = {"provider": 0, "counted": 0, "estimated": 0}
    models: dict[str, int] = {}
    as_recorded: Decimal = Decimal(0)
    recorded_priced = 0
    recorded_costs: dict[str, Decimal | None] = {}
    for s in run.spans:
        if s.llm is None:
            continue
        u = s.llm.usage
        for name in ("input_tokens", "output_tokens"):
            src = u.sources.get(name)
            if src is not None:
                sources[src] += getattr(u, name)
        key = s.llm.model or "unknown"
        models[key] = models.get(key, 0) + 1
        c = span_cost(s, currency)
        recorded_costs[s.span_id] = None if c is None else c.amount
        if c is not None and c.amount is not None:
            as_recorded += c.amount
            recorded_priced += 1
    # what the run paid: the one as-paid bill (priced once here; the call graph below reuses it)
    try:
        paid: RunPaid | None = run_paid(run, currency)
    except Exception as exc:  # noqa: BLE001 - a summary never fails: fall back to the costs as recorded
        internal_error("tokprof.profiler.summary: what the run paid", exc)
        paid = None
    if paid is not None:
        costs = {c.span_id: c.cost.expected for c in paid.calls}
        total, unpriced = paid.total, paid.unpriced
        basis, label = paid.bases(), paid.label()
    else:
        costs = recorded_costs
        unpriced = sum(1 for v in costs.values() if v is None)
        total = CostRange.point(as_recorded if recorded_priced else None)
        basis, label = {}, "as recorded: the caching simulation failed"
    top_rows: list[dict[str, Any]] = []
    if top:
        g = call_graph(run, cost_of=lambda span: costs.get(span.span_id))  # in `currency`, as the totals
        for r in top_spans(g, top, "total_tokens"):
            top_rows.append({
                "span_id": r["span_id"],
                "name": r["name"],
                "kind": r["kind"],
                "calls": r["calls"],
                "excl_tokens": r["excl_total_tokens"],
                "incl_tokens": r["incl_total_tokens"],
                "excl_cost": str(r["excl_cost"]),
                "duration_ms": round(r["duration_ns"] / 1e6, 3),
            })
    return RunSummary(
        run_id=run.run_id,
        name=run.name,
        tags=dict(run.tags),
        complete=run.complete,
        spans=len(run.spans),
        llm_calls=sum(models.values()),
        duration_ms=run.duration_ns / 1e6,
        tokens={
            "input": usage.input_tokens,
            "output": usage.output_tokens,
            "cache_read": usage.cache_read_tokens,
            "cache_write": usage.cache_write_tokens,
            "reasoning": usage.reasoning_tokens,
            "total": usage.total_tokens,
        },
        token_sources=sources,
        # unknown only when no call could be priced at all
        cost=total.expected if total.known else (Decimal(0) if not unpriced else None),
        currency=currency,
        unpriced_calls=unpriced,
        models=models,
        top_spans=top_rows,
        cost_basis=basis,
        cost_label=label,
        cost_range=total if total.known else None,
        as_recorded=as_recorded if (recorded_priced or not unpriced) else None,
        tool_requests={k: v for k, v in sorted(usage.tool_requests.items()) if v},
    )
