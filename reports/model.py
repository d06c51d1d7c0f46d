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
from decimal import Decimal
from typing import Any, Iterable, Sequence

from tokprof.optimizers.base import Ledger
from tokprof.optimizers.fidelity import run_fidelity
from tokprof.optimizers.pipeline import optimize_runs
from tokprof.profiler import keys
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.carried import Carried
from tokprof.profiler.model import Run
from tokprof.profiler.policy import internal_error
from tokprof.profiler.providers.prices import convert
from tokprof.profiler.redact import enabled, redact_obj, redact_runs, redact_text
from tokprof.profiler.tree import Node, span_tree
from tokprof.reports import diagnostics as _diag
from tokprof.reports.calls import _calls, _growth
from tokprof.reports.costs import RunCosts, run_carried, run_costs
from tokprof.reports.fixes import top_fixes
from tokprof.reports.flame import _attribution, _graph_layout, flame, timeline
from tokprof.reports.payloads import PayloadTable
from tokprof.reports.sections import _headline, _waterfall
from tokprof.reports.types import (  # noqa: F401 - re-exported: the model's types live in reports.types
    GROWTH_PARTS, Diagnostic, Fix, Headline, ReportModel, WaterfallStep)


# ---- pricing -----------------------------------------------------------------------------------
def _span_costs(run: Run, currency: str) -> RunCosts:
    """Each LLM span's cost (input/output split) from the billing simulator, else (if it fails) each
    span's recorded/priced cost with no split (carried cost then stays unknown)."""
    if run.llm_spans():
        try:
            return run_costs(run, currency)
        except Exception as exc:  # noqa: BLE001 - a pricing bug must not lose the whole report
            internal_error("tokprof.reports.price_run", exc)
    out = RunCosts(basis="recorded/priced")
    for s in run.llm_spans():
        c = span_cost(s, currency)
        amt = c.amount if c is not None else None
        if c is not None and amt is not None and c.currency != currency:
            amt = convert(amt, c.currency, currency)
        out.cost[s.span_id] = amt
    known = [c for c in out.cost.values() if c is not None]
    out.total = sum(known, Decimal(0)) if (known or not out.cost) else None
    return out


def _sum_ranges(ranges: list[tuple[Decimal, Decimal] | None]) -> tuple[Decimal, Decimal] | None:
    """The (low, high) of a sum: ``None`` when any part is unknown (or there are none)."""
    if not ranges or any(r is None for r in ranges):
        return None
    return (sum((r[0] for r in ranges if r is not None), Decimal(0)),
            sum((r[1] for r in ranges if r is not None), Decimal(0)))


def _add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return None if a is None or b is None else a + b


def _forest(run: Run, costs: RunCosts, carried: Carried | None) -> list[Node]:
    """The run's roll-up tree; span ids qualified by run id (ids repeat across imported runs)."""
    roots = span_tree(run, lambda s: costs.cost.get(s.span_id), output_cost_of=lambda s: costs.output_cost.get(s.span_id),
                      carried=carried.cost if carried else None, carried_tokens=carried.tokens if carried else None)
    for r in roots:
        for _, n in r.walk():
            n.span_ids = [f"{run.run_id}\0{sid}" for sid in n.span_ids]
    return roots


# ---- building -------------------------------------------------------------------------------------
def _redact_ledgers(ledgers: Sequence[Ledger]) -> list[Ledger]:
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
    same_task: bool = True,
) -> ReportModel:
    """The report of ``runs``; with ``optimized`` (one per run, same order) and/or ``ledgers``, a
    before/after report."""
    runs = [runs] if isinstance(runs, Run) else list(runs)
    optimized = list(optimized) if optimized else None
    ledgers = list(ledgers) if ledgers else None
    # A report is a file people share: secrets in prompts, outputs, arguments or errors never reach it.
    runs = redact_runs(runs)
    optimized = redact_runs(optimized) if optimized is not None else None
    ledgers = _redact_ledgers(ledgers) if ledgers is not None else None
    if optimized is not None and len(optimized) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(optimized)} optimized runs; pass one optimized run per run")
    notes: list[str] = []
    payloads = PayloadTable()

    # Costs per span (before and after), each call's bill split into input and output.
    before: dict[str, RunCosts] = {r.run_id: _span_costs(r, currency) for r in runs}
    before_costs = {rid: c.cost for rid, c in before.items()}
    total_before: Decimal | None = Decimal(0)
    for c in before.values():
        total_before = _add(total_before, c.total)
    cost_basis = next((c.basis for c in before.values()), "recorded/priced")
    total_after: Decimal | None = total_before
    after_costs: dict[str, dict[str, Decimal | None]] = {}
    if optimized is not None:
        total_after = Decimal(0)
        for r in optimized:
            ac = _span_costs(r, currency)
            after_costs[r.run_id] = ac.cost
            total_after = _add(total_after, ac.total)
    before_range = _sum_ranges([c.total_range for c in before.values()])
    saved_range: tuple[Decimal, Decimal] | None = None
    if ledgers:
        # The ledger's billed totals are the pipeline's own numbers: they win over re-pricing.
        lb = [lg.baseline.billed_cost for lg in ledgers]
        lf = [lg.final.billed_cost for lg in ledgers]
        kb = [x for x in lb if x is not None]
        kf = [x for x in lf if x is not None]
        total_before = sum(kb, Decimal(0)) if len(kb) == len(lb) else None
        total_after = sum(kf, Decimal(0)) if len(kf) == len(lf) else None
        cost_basis = "billed (simulated)"
        before_range = _sum_ranges([None if lg.baseline.billed_low is None or lg.baseline.billed_high is None
                                    else (lg.baseline.billed_low, lg.baseline.billed_high) for lg in ledgers])
        saved_range = _sum_ranges([lg.saved_range() for lg in ledgers])

    # Carried cost: every prompt part charged to the span that introduced it (one tree per run).
    carried: dict[str, Carried | None] = {}
    for r in runs:
        try:
            carried[r.run_id] = run_carried(r, before[r.run_id])
        except Exception as exc:  # noqa: BLE001 - an attribution bug must not lose the report
            internal_error("tokprof.reports.carried", exc)
            carried[r.run_id] = None
    forests = [_forest(r, before[r.run_id], carried[r.run_id]) for r in runs]

    calls, index_of = _calls(runs, optimized, before_costs, after_costs, ledgers, payloads)
    headline = _headline(runs, optimized, ledgers, total_before, total_after, currency, cost_basis, fidelity,
                         len(calls))
    headline.unpriced_calls = sum(1 for c in calls if c["cost"] is None)
    # A range is shown only where it says something: a simulated figure under a rule that is not guaranteed.
    if before_range is not None and before_range[0] != before_range[1]:
        headline.cost_before_range = before_range
    if saved_range is not None and saved_range[0] != saved_range[1]:
        headline.cost_saved_range = saved_range
    waterfall, wnote = _waterfall(ledgers, headline, optimized, runs, same_task)
    if not same_task:
        notes.append("The two sides are not the same task, so their difference is not a measured saving "
                     "(labelled estimated).")
    multi_root = len({s.name for r in runs for s in r.roots()}) > 1 or len(runs) > 1
    flame_nodes, top = flame(forests, {f"{rid}\0{sid}": i for (rid, sid), i in index_of.items()}, calls,
                             multi_root)
    growth, bucket = _growth(runs, optimized, calls, payloads)
    parts_in = sum(b["in"] for b in growth)
    headline.tools_share = (sum(b["tools"] for b in growth) / parts_in) if parts_in else None
    diagnostics, dnotes = _diag.diagnose(runs, calls, payloads, currency)
    return ReportModel(
        title=title or (runs[0].name if len(runs) == 1 else f"{len(runs)} runs"),
        currency=currency,
        generated_at=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        runs=[{"run_id": r.run_id, "name": r.name, "llm_calls": sum(1 for s in r.spans if s.llm is not None),
               "spans": len(r.spans), "complete": r.complete, "source": str(r.metadata.get(keys.SOURCE, ""))}
              for r in runs],
        headline=headline,
        waterfall=waterfall,
        waterfall_note=wnote,
        flame=flame_nodes,
        top_spans=top,
        growth=growth,
        growth_bucket=bucket,
        graph=_graph_layout(flame_nodes),
        diagnostics=diagnostics,
        diagnostics_notes=dnotes,
        attribution=_attribution(runs, before_costs),
        calls=calls,
        payloads=payloads.items,
        payload_token_source=payloads.source,
        notes=notes,
        fixes=top_fixes(diagnostics, waterfall, currency),
        timeline=timeline(runs, before_costs),
        carried_total=sum((c.total for c in carried.values() if c is not None), Decimal(0)),
        input_cost=sum((c.input_total for c in before.values()), Decimal(0)),
    )


def build_optimized_report(runs: Run | Sequence[Run], passes: Iterable[str], *, currency: str = "USD",
                           options: dict[str, dict[str, Any]] | None = None, title: str | None = None) -> ReportModel:
    """Run the pass pipeline over each run (sharing one :class:`PassContext`, so caches span runs) and
    report before/after."""
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
        found = [run_fidelity(b, a) for b, a in zip(before, after)]
        vals = [v for v in found if v is not None]
        fid = sum(vals) / len(vals) if vals else None
    except Exception:  # noqa: BLE001 - fidelity is optional
        fid = None
    same, _ = same_task(before, after)
    return build_report(before, optimized=after, currency=currency, fidelity=fid, same_task=same,
                        title=title or f"{before[0].name if before else '?'} vs {after[0].name if after else '?'}")


def _task_input(run: Run) -> str | None:
    """What the run was asked: its first LLM call's first user message."""
    for s in run.llm_spans():
        for m in s.llm.messages if s.llm is not None else []:
            if isinstance(m, dict) and m.get("role") in ("user", "human"):
                return repr(m.get("content"))
        return None
    return None


def same_task(before: Sequence[Run], after: Sequence[Run]) -> tuple[bool, str]:
    """Whether two sides of a comparison ran the same task(s): a difference between runs of different
    tasks is not a saving. Same ``task`` tag when both have one, else the same first user message."""
    if len(before) != len(after):
        return False, f"{len(before)} runs vs {len(after)} runs"
    for b, a in zip(before, after):
        tb, ta = b.tags.get("task"), a.tags.get("task")
        if tb is not None and ta is not None:
            if tb != ta:
                return False, f"run {b.name!r} is task {tb}, run {a.name!r} is task {ta}"
            continue
        ib, ia = _task_input(b), _task_input(a)
        if ib != ia:
            return False, f"runs {b.name!r} and {a.name!r} start from different user input"
    return True, ""


# ---- sections -------------------------------------------------------------------------------------
