"""Report sections from run totals and ledgers: the headline and the savings waterfall."""

from __future__ import annotations

from decimal import Decimal

from tokprof.profiler import keys
from tokprof.optimizers.base import Ledger, LedgerRow
from tokprof.profiler.model import Run
from tokprof.reports.types import Headline, WaterfallStep

RISK_ORDER = ("none", "low", "medium", "high")


def _headline(runs: list[Run], optimized: list[Run] | None, ledgers: list[Ledger] | None,
              cost_before: Decimal | None, cost_after: Decimal | None, currency: str, basis: str,
              fidelity: float | None, n_calls: int) -> Headline:
    src: dict[str, int] = {"provider": 0, "counted": 0, "estimated": 0, "unknown": 0}
    inp = out = cached = 0
    unpriced = 0
    for r in runs:
        for s in r.spans:
            if s.llm is None:
                continue
            u = s.llm.usage
            inp += u.input_tokens
            out += u.output_tokens
            cached += u.cache_read_tokens
            for name in ("input_tokens", "output_tokens"):
                src[u.sources.get(name) or "unknown"] += getattr(u, name)
    total = sum(src.values())
    shares = {k: (v / total if total else 0.0) for k, v in src.items()}
    ia, oa = inp, out
    if optimized is not None:
        ia = sum(s.llm.usage.input_tokens for r in optimized for s in r.spans if s.llm is not None)
        oa = sum(s.llm.usage.output_tokens for r in optimized for s in r.spans if s.llm is not None)
    elif ledgers:
        ia = sum(lg.final.input_tokens for lg in ledgers)
        oa = sum(lg.final.output_tokens for lg in ledgers)
    if fidelity is None and ledgers:
        fids = [lg.final.fidelity for lg in ledgers if lg.steps and lg.final.fidelity is not None]
        fidelity = sum(fids) / len(fids) if fids else None
    return Headline(
        llm_calls=n_calls, runs=len(runs), input_before=inp, output_before=out, input_after=ia, output_after=oa,
        cache_read_before=cached, cost_before=cost_before, cost_after=cost_after, currency=currency,
        cost_basis=basis, unpriced_calls=unpriced, token_sources=shares, fidelity=fidelity,
        optimized=bool(optimized or ledgers), duration_ms=sum(r.duration_ns for r in runs) / 1e6,
    )


def _worst_risk(rows: list[LedgerRow]) -> str:
    worst, reason = "none", ""
    for r in rows:
        level, _, why = (r.risk or "none").partition(":")
        level = level.strip().lower()
        if level in RISK_ORDER and RISK_ORDER.index(level) > RISK_ORDER.index(worst):
            worst, reason = level, why.strip()
    return f"{worst}: {reason}" if reason else worst


LIVE_PASS_DELTAS = keys.LIVE_DELTAS
"""Span attribute the live layer writes on each optimized request: {pass: {"tokens_before": n,
"tokens_after": m, ...}} (what each live pass removed from that request; ``input_tokens_before/after`` are
read too)."""


def _waterfall(ledgers: list[Ledger] | None, h: Headline, optimized: list[Run] | None = None,
               runs: list[Run] | None = None, same_task: bool = True) -> tuple[list[WaterfallStep], str | None]:
    if not ledgers:
        if h.optimized:
            evidence = "measured" if same_task else "estimated"
            per_pass = _live_pass_steps(h, optimized or [], evidence)
            if per_pass:
                return per_pass, None
            note = ("two recorded runs: the saving is measured as a whole; per-pass shares are not separable"
                    if same_task else "the two runs are not the same task: their difference is not a measured "
                                      "saving")
            return [_measured_step(h, optimized or [], runs or [], evidence)], note
        return [], "no optimization passes were run (use --passes)"
    n = min(len(lg.steps) for lg in ledgers)
    if any(len(lg.steps) != n for lg in ledgers):
        return [], "the runs' ledgers have different pass lists; cannot add them up"
    steps: list[WaterfallStep] = []
    prev_tokens = sum(lg.baseline.input_tokens + lg.baseline.output_tokens for lg in ledgers)
    prev_cost: Decimal | None = h.cost_before
    for i in range(n):
        parts = [lg.steps[i] for lg in ledgers]
        first = parts[0]
        inp = sum(p.input_tokens for p in parts)
        out = sum(p.output_tokens for p in parts)
        costs = [p.billed_cost for p in parts]
        known = [c for c in costs if c is not None]
        cost = sum(known, Decimal(0)) if len(known) == len(costs) else None
        rows = [r for p in parts for r in p.rows]
        fids = [p.fidelity for p in parts if p.fidelity is not None]
        steps.append(WaterfallStep(
            pass_name=first.pass_name, description=first.description, evidence=first.evidence,
            input_tokens=inp, output_tokens=out, billed_cost=cost, delta_tokens=prev_tokens - (inp + out),
            delta_cost=None if cost is None or prev_cost is None else prev_cost - cost,
            risk=_worst_risk(rows), fidelity=sum(fids) / len(fids) if fids else None,
            calls_changed=len({r.span_id for r in rows}),
        ))
        prev_tokens, prev_cost = inp + out, cost
    return steps, None


def _live_pass_steps(h: Headline, optimized: list[Run], evidence: str) -> list[WaterfallStep]:
    """One step per live pass from the per-request token deltas the live layer recorded, then whatever
    else differs between the two runs (calls served from a cache, a different path...)."""
    order: list[str] = []
    removed: dict[str, int] = {}
    calls: dict[str, int] = {}
    for r in optimized:
        for s in r.llm_spans():
            deltas = (s.attributes or {}).get(LIVE_PASS_DELTAS)
            if not isinstance(deltas, dict):
                continue
            for name, d in deltas.items():
                if not isinstance(d, dict):
                    continue
                before = d.get("tokens_before", d.get("input_tokens_before"))
                after = d.get("tokens_after", d.get("input_tokens_after"))
                if not isinstance(before, int) or not isinstance(after, int):
                    continue
                if name not in removed:
                    order.append(str(name))
                    removed[name] = calls[name] = 0
                removed[name] += before - after
                calls[name] += 1 if before != after else 0
    if not order:
        return []
    steps: list[WaterfallStep] = []
    level = h.tokens_before
    for name in order:
        level -= removed[name]
        steps.append(WaterfallStep(
            pass_name=f"live: {name}", description="tokens this pass removed from the requests it rewrote",
            evidence=evidence, input_tokens=level - h.output_after, output_tokens=h.output_after, billed_cost=None,
            delta_tokens=removed[name], delta_cost=None, risk="see fidelity" if h.fidelity is not None else
            "unknown: fidelity not measured", fidelity=None, calls_changed=calls[name]))
    rest = level - h.tokens_after
    if rest:
        steps.append(WaterfallStep(
            pass_name="other differences", description="calls served from a cache, or a different path taken",
            evidence=evidence, input_tokens=h.input_after, output_tokens=h.output_after, billed_cost=None,
            delta_tokens=rest, delta_cost=None, risk="unknown", fidelity=None, calls_changed=0))
    return steps


def _measured_step(h: Headline, optimized: list[Run], runs: list[Run], evidence: str = "measured") -> WaterfallStep:
    """One bar for a before/after pair of real runs (e.g. a live-optimized re-run): its saving is
    ``measured``; the passes that were live are named from the runs' metadata."""
    live: list[str] = []
    for r in optimized:
        for name in r.metadata.get("live_passes") or []:
            if name not in live:
                live.append(name)
    label = "live: " + ", ".join(live) if live else "after"
    desc = ("passes switched on while the agent ran again" if live else "the second recorded run")
    delta_cost = None if h.cost_before is None or h.cost_after is None else h.cost_before - h.cost_after
    changed = 0
    for before, after in zip(runs, optimized):  # calls in order: the same steps of the same task
        for a, b in zip(before.llm_spans(), after.llm_spans()):
            if a.llm is None or b.llm is None:  # (llm_spans holds only spans with a call)
                continue
            if (a.llm.usage.input_tokens, a.llm.usage.cache_read_tokens) != \
                    (b.llm.usage.input_tokens, b.llm.usage.cache_read_tokens):
                changed += 1
    return WaterfallStep(
        pass_name=label, description=desc, evidence=evidence, input_tokens=h.input_after,
        output_tokens=h.output_after, billed_cost=h.cost_after, delta_tokens=h.tokens_before - h.tokens_after,
        delta_cost=delta_cost, risk="see fidelity" if h.fidelity is not None else "unknown: fidelity not measured",
        fidelity=h.fidelity, calls_changed=changed,
    )
