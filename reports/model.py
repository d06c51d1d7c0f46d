"""The ReportModel: everything a renderer shows, computed once from runs, optimized runs and ledgers.

Renderers (HTML, console, JSON) read this model and never raw spans. Build it with:

* :func:`build_report` — one run or several (an imported corpus), optionally with their optimized
  versions and ledgers (``optimize(run, passes)``);
* :func:`build_optimized_report` — runs a pass pipeline over each run first;
* :func:`build_comparison` — a before/after pair of separately recorded runs (``tokprof compare``).

Parts that depend on other modules (the billing simulator, fidelity, prefix-break diagnostics,
decomposition) are used when present; when a module is missing its section says "not available" and
the rest of the report is unaffected.
"""

from __future__ import annotations

import copy

import datetime as _dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Sequence

from tokprof.optimizers.base import Ledger, LedgerRow
from tokprof.profiler.graph import METRICS
from tokprof.profiler.model import Run, Span
from tokprof.profiler.providers.prices import convert
from tokprof.reports.payloads import PayloadTable
from tokprof.reports import diagnostics as _diag

RISK_ORDER = ("none", "low", "medium", "high")
GROWTH_MAX_BARS = 400
"""Above this many LLM calls the context-growth chart averages consecutive calls into one bar."""
FLAME_MIN_SHARE = 0.0005
"""Flame nodes narrower than this share of the total are dropped (invisible anyway)."""
TOP_SPANS = 200
GRAPH_MAX_NODES = 60
CALLS_PER_NODE = 25


# ---- the model ------------------------------------------------------------------------------------
@dataclass
class Headline:
    llm_calls: int
    runs: int
    input_before: int
    output_before: int
    input_after: int
    output_after: int
    cache_read_before: int
    cost_before: Decimal | None
    cost_after: Decimal | None
    currency: str
    cost_basis: str
    """How the money was computed: ``billed (simulated)`` by the billing simulator, else ``recorded/priced``."""
    unpriced_calls: int
    token_sources: dict[str, float]
    """Share (0..1) of input+output tokens by source: provider / counted / estimated / unknown."""
    fidelity: float | None
    optimized: bool
    duration_ms: float

    @property
    def tokens_before(self) -> int:
        return self.input_before + self.output_before

    @property
    def tokens_after(self) -> int:
        return self.input_after + self.output_after

    @property
    def tokens_saved_pct(self) -> float | None:
        return None if not self.tokens_before else 100.0 * (self.tokens_before - self.tokens_after) / self.tokens_before

    @property
    def cost_saved(self) -> Decimal | None:
        if self.cost_before is None or self.cost_after is None:
            return None
        return self.cost_before - self.cost_after

    @property
    def cost_saved_pct(self) -> float | None:
        if self.cost_saved is None or not self.cost_before:
            return None
        return float(100 * self.cost_saved / self.cost_before)


@dataclass
class WaterfallStep:
    pass_name: str
    description: str
    evidence: str
    input_tokens: int
    output_tokens: int
    billed_cost: Decimal | None
    delta_tokens: int
    """Tokens saved by this pass (positive = fewer tokens)."""
    delta_cost: Decimal | None
    """Money saved by this pass (negative when it made billing worse, e.g. by breaking a cache prefix)."""
    risk: str
    fidelity: float | None
    calls_changed: int


@dataclass
class Diagnostic:
    kind: str
    """``prefix-break``, ``repeated-calls``, ``oversized-tool-output``, ``decomposition``."""
    title: str
    detail: str
    money: Decimal | None
    tokens: int
    evidence: str
    snippet: str
    calls: list[int] = field(default_factory=list)


@dataclass
class ReportModel:
    title: str
    currency: str
    generated_at: str
    runs: list[dict[str, Any]]
    headline: Headline
    waterfall: list[WaterfallStep]
    waterfall_note: str | None
    flame: list[dict[str, Any]]
    top_spans: list[dict[str, Any]]
    growth: list[dict[str, Any]]
    growth_bucket: int
    graph: dict[str, Any]
    diagnostics: list[Diagnostic]
    diagnostics_notes: list[str]
    attribution: dict[str, list[dict[str, Any]]]
    calls: list[dict[str, Any]]
    payloads: list[dict[str, Any]]
    payload_token_source: str
    notes: list[str] = field(default_factory=list)

    @property
    def optimized(self) -> bool:
        return self.headline.optimized


# ---- pricing -----------------------------------------------------------------------------------
def _span_costs(run: Run, currency: str) -> tuple[dict[str, Decimal | None], Decimal | None, str]:
    """Per-LLM-span cost and the run total: the billing simulator, else (if it fails) each span's cost."""
    from tokprof.optimizers.billing import price_run

    spans = run.llm_spans()
    if spans:
        try:
            total, per_call = price_run(run, currency)
            return {s.span_id: c for s, c in zip(spans, per_call)}, total, "billed (simulated)"
        except Exception as exc:  # noqa: BLE001 - a pricing bug must not lose the whole report
            from tokprof.profiler.hooks import internal_error

            internal_error("tokprof.reports.price_run", exc)
    from tokprof.profiler.accounting import span_cost

    costs: dict[str, Decimal | None] = {}
    total: Decimal | None = Decimal(0)
    for s in spans:
        c = span_cost(s, currency)
        amt = c.amount if c is not None else None
        if c is not None and amt is not None and c.currency != currency:
            amt = convert(amt, c.currency, currency)
        costs[s.span_id] = amt
    known = [c for c in costs.values() if c is not None]
    total = sum(known, Decimal(0)) if (known or not costs) else None
    return costs, total, "recorded/priced"


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


# ---- building -------------------------------------------------------------------------------------
def _redact_ledgers(ledgers: Sequence[Ledger]) -> list[Ledger]:
    from tokprof.profiler.redact import enabled, redact_obj, redact_text

    if not enabled():
        return list(ledgers)
    out = []
    for lg in ledgers:
        lg = copy.deepcopy(lg)
        for step in [lg.baseline, *lg.steps]:
            for row in step.rows:
                row.change = redact_text(row.change)
                row.details = redact_obj(row.details)
        out.append(lg)
    return out


def build_report(
    runs: Run | Sequence[Run],
    *,
    optimized: Sequence[Run] | None = None,
    ledgers: Sequence[Ledger] | None = None,
    currency: str = "USD",
    title: str | None = None,
    fidelity: float | None = None,
) -> ReportModel:
    """The report of ``runs``; with ``optimized`` (one per run, same order) and/or ``ledgers``, a
    before/after report."""
    runs = [runs] if isinstance(runs, Run) else list(runs)
    optimized = list(optimized) if optimized else None
    ledgers = list(ledgers) if ledgers else None
    # A report is a file people share: secrets in prompts, outputs, arguments or errors never reach it.
    from tokprof.profiler.redact import redact_runs

    runs = redact_runs(runs)
    optimized = redact_runs(optimized) if optimized is not None else None
    ledgers = _redact_ledgers(ledgers) if ledgers is not None else None
    if optimized is not None and len(optimized) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(optimized)} optimized runs; pass one optimized run per run")
    notes: list[str] = []
    payloads = PayloadTable()

    # Costs per span (before and after).
    before_costs: dict[str, dict[str, Decimal | None]] = {}
    total_before: Decimal | None = Decimal(0)
    cost_basis = "recorded/priced"
    for r in runs:
        costs, total, cost_basis = _span_costs(r, currency)
        before_costs[r.run_id] = costs
        total_before = _add(total_before, total)
    total_after: Decimal | None = total_before
    after_costs: dict[str, dict[str, Decimal | None]] = {}
    if optimized is not None:
        total_after = Decimal(0)
        for r in optimized:
            costs, total, _ = _span_costs(r, currency)
            after_costs[r.run_id] = costs
            total_after = _add(total_after, total)
    if ledgers:
        # The ledger's billed totals are the pipeline's own numbers: they win over re-pricing.
        lb = [lg.baseline.billed_cost for lg in ledgers]
        lf = [lg.final.billed_cost for lg in ledgers]
        total_before = None if any(x is None for x in lb) else sum(lb, Decimal(0))  # type: ignore[arg-type]
        total_after = None if any(x is None for x in lf) else sum(lf, Decimal(0))  # type: ignore[arg-type]
        cost_basis = "billed (simulated)"

    calls, index_of = _calls(runs, optimized, before_costs, after_costs, ledgers, payloads)
    headline = _headline(runs, optimized, ledgers, total_before, total_after, currency, cost_basis, fidelity,
                         len(calls))
    headline.unpriced_calls = sum(1 for c in calls if c["cost"] is None)
    waterfall, wnote = _waterfall(ledgers, headline, optimized, runs)
    flame, top = _flame(runs, before_costs, index_of, calls)
    growth, bucket = _growth(runs, optimized, calls, payloads)
    diagnostics, dnotes = _diag.diagnose(runs, calls, payloads, currency)
    return ReportModel(
        title=title or (runs[0].name if len(runs) == 1 else f"{len(runs)} runs"),
        currency=currency,
        generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        runs=[{"run_id": r.run_id, "name": r.name, "llm_calls": sum(1 for s in r.spans if s.llm is not None),
               "spans": len(r.spans), "complete": r.complete, "source": str(r.metadata.get("source", ""))}
              for r in runs],
        headline=headline,
        waterfall=waterfall,
        waterfall_note=wnote,
        flame=flame,
        top_spans=top,
        growth=growth,
        growth_bucket=bucket,
        graph=_graph_layout(flame),
        diagnostics=diagnostics,
        diagnostics_notes=dnotes,
        attribution=_attribution(runs, before_costs),
        calls=calls,
        payloads=payloads.items,
        payload_token_source=payloads.source,
        notes=notes,
    )


def build_optimized_report(runs: Run | Sequence[Run], passes: Iterable[str], *, currency: str = "USD",
                           options: dict[str, dict[str, Any]] | None = None, title: str | None = None) -> ReportModel:
    """Run the pass pipeline over each run (sharing one :class:`PassContext`, so caches span runs) and
    report before/after."""
    from tokprof.optimizers.base import optimize_runs

    runs = [runs] if isinstance(runs, Run) else list(runs)
    results = optimize_runs(runs, passes, currency=currency, options=options)
    return build_report(runs, optimized=[new for _, new, _ in results], ledgers=[lg for _, _, lg in results],
                        currency=currency, title=title)


def build_comparison(before: Run | Sequence[Run], after: Run | Sequence[Run], *, currency: str = "USD",
                     title: str | None = None) -> ReportModel:
    """A before/after report of two separately recorded runs (or sets of runs)."""
    before = [before] if isinstance(before, Run) else list(before)
    after = [after] if isinstance(after, Run) else list(after)
    fid = None
    try:
        from tokprof.optimizers.fidelity import run_retention

        vals = [run_retention(b, a) for b, a in zip(before, after)]
        vals = [v for v in vals if v is not None]
        fid = sum(vals) / len(vals) if vals else None
    except Exception:  # noqa: BLE001 - fidelity is optional
        fid = None
    return build_report(before, optimized=after, currency=currency, fidelity=fid,
                        title=title or f"{before[0].name if before else '?'} vs {after[0].name if after else '?'}")


# ---- sections -------------------------------------------------------------------------------------
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


def _waterfall(ledgers: list[Ledger] | None, h: Headline, optimized: list[Run] | None = None,
               runs: list[Run] | None = None) -> tuple[list[WaterfallStep], str | None]:
    if not ledgers:
        if h.optimized:
            return [_measured_step(h, optimized or [], runs or [])], (
                "two recorded runs: the saving is measured as a whole; per-pass shares are not separable")
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
        cost = None if any(c is None for c in costs) else sum(costs, Decimal(0))  # type: ignore[arg-type]
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


def _measured_step(h: Headline, optimized: list[Run], runs: list[Run]) -> WaterfallStep:
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
            if (a.llm.usage.input_tokens, a.llm.usage.cache_read_tokens) != \
                    (b.llm.usage.input_tokens, b.llm.usage.cache_read_tokens):
                changed += 1
    return WaterfallStep(
        pass_name=label, description=desc, evidence="measured", input_tokens=h.input_after,
        output_tokens=h.output_after, billed_cost=h.cost_after, delta_tokens=h.tokens_before - h.tokens_after,
        delta_cost=delta_cost, risk="see fidelity" if h.fidelity is not None else "unknown: fidelity not measured",
        fidelity=h.fidelity, calls_changed=changed,
    )


def _calls(runs: list[Run], optimized: list[Run] | None, before_costs: dict[str, dict[str, Decimal | None]],
           after_costs: dict[str, dict[str, Decimal | None]], ledgers: list[Ledger] | None,
           payloads: PayloadTable) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """One entry per LLM call (all runs, in order) for drill-down; messages as payload indices."""
    calls: list[dict[str, Any]] = []
    index_of: dict[tuple[str, str], int] = {}
    rows_by_span: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for lg in ledgers or []:
        for r in lg.rows:
            rows_by_span[(lg.run_id, r.span_id)].append(r)
    tools_memo: dict[tuple[int, str | None], tuple[Any, int]] = {}
    for ri, run in enumerate(runs):
        after_run = optimized[ri] if optimized else None
        after_spans = after_run.llm_spans() if after_run is not None else []
        # counterpart of each call: by span id only when the after run was derived from this one
        from tokprof.profiler.pairing import pair_calls

        after_by_id = {b.span_id: a for b, a in pair_calls(run, after_run)} if after_run is not None else {}
        acosts = after_costs.get(after_run.run_id, {}) if after_run is not None else {}
        for ci, s in enumerate(run.llm_spans()):
            llm = s.llm
            assert llm is not None
            u = llm.usage
            entry: dict[str, Any] = {
                "i": len(calls), "run": ri, "span_id": s.span_id, "name": s.name, "model": llm.model or "unknown",
                "in": u.input_tokens, "out": u.output_tokens, "cached": u.cache_read_tokens,
                "src": u.sources.get("input_tokens") or "unknown",
                "cost": _money_str(before_costs.get(run.run_id, {}).get(s.span_id)),
                "ms": round(s.duration_ns / 1e6, 1),
                "msgs": [payloads.add(m, llm.model) for m in llm.messages],
                "tools": len(llm.tools),
                "tools_tokens": _tools_tokens(llm.tools, llm.model, payloads, tools_memo) if llm.tools else 0,
                "output": payloads.add(llm.output, llm.model) if llm.output is not None else None,
            }
            if after_run is not None:
                a = after_by_id.get(s.span_id)
                if a is not None and a.llm is not None:
                    entry["after"] = {"msgs": [payloads.add(m, a.llm.model) for m in a.llm.messages],
                                      "in": a.llm.usage.input_tokens, "out": a.llm.usage.output_tokens,
                                      "cached": _billed_cache_read(a),
                                      "cost": _money_str(acosts.get(a.span_id))}
            rows = rows_by_span.get((run.run_id, s.span_id))
            if rows:
                entry["ledger"] = [{"pass": r.pass_name, "change": r.change, "evidence": r.evidence,
                                    "in_before": r.input_tokens_before, "in_after": r.input_tokens_after,
                                    "out_before": r.output_tokens_before, "out_after": r.output_tokens_after,
                                    "cost_before": _money_str(r.cost_before), "cost_after": _money_str(r.cost_after),
                                    "risk": r.risk, "fidelity": r.fidelity} for r in rows]
            index_of[(run.run_id, s.span_id)] = len(calls)
            calls.append(entry)
    return calls, index_of


def _tools_tokens(tools: list[dict[str, Any]], model: str | None, payloads: PayloadTable,
                  memo: dict[tuple[int, str | None], tuple[Any, int]]) -> int:
    """Estimated tokens of a call's tool definitions (calls usually share one list object: count it once)."""
    import json

    hit = memo.get((id(tools), model))
    if hit is not None and hit[0] is tools:
        return hit[1]
    n = payloads.count_text(json.dumps(tools, ensure_ascii=False, default=str), model)
    memo[(id(tools), model)] = (tools, n)
    return n


def _billed_cache_read(span: Span) -> int:
    """Cache-read tokens as billed: a caching pass records them in ``attributes["billing"]`` (the billing
    simulator's annotation) rather than rewriting the provider's usage."""
    billing = (span.attributes or {}).get("billing")
    if isinstance(billing, dict) and isinstance(billing.get("cache_read_tokens"), int):
        return billing["cache_read_tokens"]
    return span.llm.usage.cache_read_tokens if span.llm is not None else 0


def _money_str(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _flame(runs: list[Run], costs: dict[str, dict[str, Decimal | None]], index_of: dict[tuple[str, str], int],
           calls: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Flame nodes (repeated calls along the same path merged, across runs) and the top-spans table."""
    merged: dict[tuple[str, ...], dict[str, Any]] = {}
    multi_root = len({s.name for r in runs for s in r.roots()}) > 1 or len(runs) > 1
    if multi_root:
        merged[("all runs",)] = {"path": ("all runs",), "name": "all runs", "kind": "agent", "calls": len(runs),
                                 "duration_ns": sum(r.duration_ns for r in runs), "llm": [],
                                 **{f"excl_{k}": 0 for k in METRICS}, **{f"incl_{k}": 0 for k in METRICS}}
        merged[("all runs",)]["excl_cost"] = merged[("all runs",)]["incl_cost"] = Decimal(0)
    for run in runs:
        rc = costs.get(run.run_id, {})
        prefix: tuple[str, ...] = ("all runs",) if multi_root else ()
        stack: list[str] = []
        # One pass over the spans in call order: a span's own numbers go to its path and every prefix of
        # it (each ancestor path), which is exactly the inclusive roll-up of tokprof.profiler.graph, merged by
        # path, without building the networkx graph (10,000-call runs).
        for depth, span in run.walk():
            del stack[depth:]
            stack.append(span.name)
            key = prefix + tuple(stack)
            m = merged.get(key)
            if m is None:
                m = merged[key] = {"path": key, "name": span.name, "kind": span.kind, "calls": 0, "duration_ns": 0,
                                   "llm": [], **{f"excl_{k}": 0 for k in METRICS}, **{f"incl_{k}": 0 for k in METRICS}}
                m["excl_cost"] = m["incl_cost"] = Decimal(0)
            m["calls"] += 1
            m["duration_ns"] += span.duration_ns
            if span.llm is None:
                continue
            u = span.llm.usage
            own = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                   "cache_read_tokens": u.cache_read_tokens, "cache_write_tokens": u.cache_write_tokens,
                   "reasoning_tokens": u.reasoning_tokens, "total_tokens": u.input_tokens + u.output_tokens,
                   "llm_calls": 1}
            cost = rc.get(span.span_id)
            if cost is None:
                own["unpriced_calls"] = 1
            else:
                own["cost"] = cost
            ci = index_of[(run.run_id, span.span_id)]
            for k, v in own.items():
                m[f"excl_{k}"] += v
            for d in range(1, len(key) + 1):
                anc = merged[key[:d]]
                anc["llm"].append(ci)
                for k, v in own.items():
                    anc[f"incl_{k}"] += v
    total_tokens = sum(m["incl_total_tokens"] for p, m in merged.items() if len(p) == 1) or 1
    keep = [p for p, m in merged.items() if len(p) == 1 or m["incl_total_tokens"] / total_tokens >= FLAME_MIN_SHARE]
    keep.sort(key=lambda p: (len(p), -merged[p]["incl_total_tokens"]))
    ids: dict[tuple[str, ...], int] = {}
    nodes: list[dict[str, Any]] = []
    for p in keep:
        if len(p) > 1 and p[:-1] not in ids:
            continue
        m = merged[p]
        ids[p] = len(nodes)
        llm = sorted(set(m["llm"]), key=lambda i: -(calls[i]["in"] + calls[i]["out"]))
        nodes.append(_node_dict(len(nodes), ids.get(p[:-1]) if len(p) > 1 else None, m, llm))
    table_src = [_node_dict(i, None, merged[p], []) for i, p in enumerate(merged)]
    for row, p in zip(table_src, merged):
        row["flame"] = ids.get(p)
        llm = sorted(set(merged[p]["llm"]), key=lambda i: -(calls[i]["in"] + calls[i]["out"]))
        row["call"] = llm[0] if llm else None
        row["path"] = " / ".join(p)
    table_src.sort(key=lambda r: (-r["excl_tokens"], -r["tokens"]))
    top = [r for r in table_src if r["tokens"] or r["ms"]][:TOP_SPANS]
    return nodes, top


def _node_dict(i: int, parent: int | None, m: dict[str, Any], llm: list[int]) -> dict[str, Any]:
    return {
        "id": i, "parent": parent, "name": m["name"], "kind": m["kind"], "depth": len(m["path"]) - 1,
        "calls": m["calls"], "ms": round(m["duration_ns"] / 1e6, 1),
        "tokens": m["incl_total_tokens"], "excl_tokens": m["excl_total_tokens"],
        "in": m["incl_input_tokens"], "out": m["incl_output_tokens"], "cached": m["incl_cache_read_tokens"],
        "excl_in": m["excl_input_tokens"], "excl_out": m["excl_output_tokens"],
        "cost": float(m["incl_cost"]), "excl_cost": float(m["excl_cost"]),
        "llm_calls": m["incl_llm_calls"], "unpriced": m["incl_unpriced_calls"],
        "calls_idx": llm[:CALLS_PER_NODE],
    }


GROWTH_PARTS = ("system", "tools", "history", "tool_outputs", "new")


def _growth(runs: list[Run], optimized: list[Run] | None, calls: list[dict[str, Any]],
            payloads: PayloadTable) -> tuple[list[dict[str, Any]], int]:
    """Per LLM call, its input split into parts (scaled so the parts add up to the reported input tokens)."""
    bars: list[dict[str, Any]] = []
    for c in calls:
        msgs = c["msgs"]
        roles = [payloads.items[i]["role"] for i in msgs]
        last_assistant = max((k for k, r in enumerate(roles) if r == "assistant"), default=-1)
        est = dict.fromkeys(GROWTH_PARTS, 0)
        est["tools"] = c["tools_tokens"]
        for k, (i, role) in enumerate(zip(msgs, roles)):
            t = payloads.tokens(i)
            if role in ("system", "developer"):
                est["system"] += t
            elif role == "tool":
                est["tool_outputs"] += t
            elif k > last_assistant:
                est["new"] += t
            else:
                est["history"] += t
        total_est = sum(est.values())
        scale = (c["in"] / total_est) if (c["in"] and total_est) else 1.0
        parts = {k: round(v * scale) for k, v in est.items()}
        if c["in"]:  # rounding: make the parts add up exactly
            biggest = max(parts, key=lambda k: parts[k])
            parts[biggest] += c["in"] - sum(parts.values())
        bar = {"call": c["i"], "run": c["run"], **parts, "cached": c["cached"], "in": c["in"] or total_est}
        if "after" in c:
            bar["after"] = c["after"]["in"]
            bar["after_cached"] = c["after"]["cached"]
        bars.append(bar)
    bucket = 1
    if len(bars) > GROWTH_MAX_BARS:
        bucket = -(-len(bars) // GROWTH_MAX_BARS)
        out = []
        for j in range(0, len(bars), bucket):
            grp = bars[j:j + bucket]
            avg = {k: round(sum(b.get(k, 0) for b in grp) / len(grp))
                   for k in (*GROWTH_PARTS, "cached", "in")}
            if any("after" in b for b in grp):
                avg["after"] = round(sum(b.get("after", 0) for b in grp) / len(grp))
                avg["after_cached"] = round(sum(b.get("after_cached", 0) for b in grp) / len(grp))
            out.append({"call": grp[0]["call"], "run": grp[0]["run"], **avg})
        bars = out
    return bars, bucket


def _graph_layout(flame: list[dict[str, Any]]) -> dict[str, Any]:
    """A left-to-right tree layout of the biggest flame nodes (and their ancestors), in pixels."""
    if not flame:
        return {"nodes": [], "edges": [], "width": 0, "height": 0}
    by_id = {n["id"]: n for n in flame}
    chosen: set[int] = set()
    for n in sorted(flame, key=lambda n: -n["tokens"])[:GRAPH_MAX_NODES]:
        cur: dict[str, Any] | None = n
        while cur is not None and cur["id"] not in chosen:
            chosen.add(cur["id"])
            cur = by_id.get(cur["parent"]) if cur["parent"] is not None else None
    kids: dict[int | None, list[int]] = defaultdict(list)
    for n in flame:
        if n["id"] in chosen:
            kids[n["parent"]].append(n["id"])
    y_of: dict[int, float] = {}
    counter = [0]

    def place(v: int) -> float:  # tidy tree: leaves in order, parents centred on their children
        ch = kids.get(v, [])
        if not ch:
            y = counter[0]
            counter[0] += 1
        else:
            ys = [place(c) for c in ch]
            y = (ys[0] + ys[-1]) / 2
        y_of[v] = y
        return y

    for r in kids.get(None, []):
        place(r)
    max_tokens = max((by_id[v]["tokens"] for v in chosen), default=1) or 1
    max_depth = max(by_id[v]["depth"] for v in chosen)
    col, row, pad = 190, 34, 30
    nodes = []
    for v in sorted(chosen):
        n = by_id[v]
        radius = 4 + 18 * (n["tokens"] / max_tokens) ** 0.5
        nodes.append({"id": v, "x": pad + n["depth"] * col, "y": pad + y_of[v] * row, "r": round(radius, 1),
                      "name": n["name"], "kind": n["kind"], "tokens": n["tokens"], "calls": n["calls"]})
    pos = {n["id"]: n for n in nodes}
    edges = [{"x1": pos[n["parent"]]["x"], "y1": pos[n["parent"]]["y"], "x2": pos[v]["x"], "y2": pos[v]["y"]}
             for v in chosen for n in [by_id[v]] if n["parent"] is not None and n["parent"] in pos]
    return {"nodes": nodes, "edges": edges, "width": pad * 2 + max_depth * col + 160,
            "height": pad * 2 + max(counter[0] - 1, 0) * row}


def _attribution(runs: list[Run], costs: dict[str, dict[str, Decimal | None]]) -> dict[str, list[dict[str, Any]]]:
    by_tag: dict[tuple[str, str], dict[str, Any]] = {}
    by_model: dict[str, dict[str, Any]] = {}

    def bump(d: dict[str, Any], s: Span, c: Decimal | None) -> None:
        u = s.llm.usage  # type: ignore[union-attr]
        d["calls"] += 1
        d["in"] += u.input_tokens
        d["out"] += u.output_tokens
        d["cached"] += u.cache_read_tokens
        if c is None:
            d["unpriced"] += 1
        else:
            d["cost"] += c

    def new(**kw: Any) -> dict[str, Any]:
        return {**kw, "calls": 0, "in": 0, "out": 0, "cached": 0, "cost": Decimal(0), "unpriced": 0}

    for run in runs:
        index = run.by_id()
        rc = costs.get(run.run_id, {})
        for s in run.llm_spans():
            c = rc.get(s.span_id)
            tags = run.span_tags(s, index) or {"(untagged)": ""}
            for k, v in tags.items():
                bump(by_tag.setdefault((k, v), new(key=k, value=v)), s, c)
            m = s.llm.model or "unknown"  # type: ignore[union-attr]
            bump(by_model.setdefault(m, new(model=m)), s, c)
    tag_rows = sorted(by_tag.values(), key=lambda d: (d["key"], -d["cost"], -d["in"]))
    model_rows = sorted(by_model.values(), key=lambda d: (-d["cost"], -d["in"]))
    return {"by_tag": tag_rows, "by_model": model_rows}
