"""The pipeline: run passes in order over a recorded run and write the savings ledger.

After every pass the whole run is priced by the billing simulator (:func:`tokprof.optimizers.billing.price_run`),
so passes that interact (compression breaks a provider's prefix cache) are reported by their combined effect,
and the reference retention of the rewritten run is measured (:mod:`tokprof.optimizers.fidelity`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable

from tokprof.optimizers.base import Ledger, Pass, PassContext, PassStep, expand_passes, make_pass
from tokprof.optimizers.billing import price_run
from tokprof.optimizers.fidelity import run_retention
from tokprof.profiler import keys
from tokprof.profiler.model import Run

Pricer = Callable[[Run, str], tuple[Decimal | None, list[Decimal | None]]]


def run_tokens(run: Run) -> tuple[int, int]:
    inp = out = 0
    for s in run.spans:
        if s.llm is not None:
            inp += s.llm.usage.input_tokens
            out += s.llm.usage.output_tokens
    return inp, out


def optimize(
    run: Run,
    passes: Iterable["str | Pass"] = (),
    *,
    options: dict[str, dict[str, Any]] | None = None,
    ctx: PassContext | None = None,
    pricer: Pricer | None = None,
    fidelity: Callable[[Run, Run], float | None] | None = None,
) -> tuple[Run, Ledger]:
    """Run ``passes`` in order over ``run``; return the optimized run and its ledger.

    After each pass the whole run is priced by ``pricer`` (default: the billing simulator), so each
    waterfall step shows the combined effect of all passes so far.
    """
    options = options or {}
    ctx = ctx or PassContext()
    if pricer is None:
        pricer = price_run
    if fidelity is None:
        fidelity = run_retention

    total, per_call = pricer(run, ctx.currency)
    inp, out = run_tokens(run)
    baseline = PassStep("recorded", "the run as it was billed", "simulated", inp, out, total, ctx.currency, 1.0)
    ledger = Ledger(run.run_id, baseline)
    current = run
    prev_costs = _cost_by_span(current, per_call)
    for spec in expand_passes(passes):
        p = make_pass(spec, **options.get(spec if isinstance(spec, str) else spec.name, {}))
        new, rows = p.apply(current, ctx)
        total, per_call = pricer(new, ctx.currency)
        new_costs = _cost_by_span(new, per_call)
        for r in rows:
            r.cost_before = prev_costs.get(r.span_id)
            r.cost_after = new_costs.get(r.span_id)
        inp, out = run_tokens(new)
        fid = fidelity(run, new) if fidelity is not None else None
        ledger.steps.append(PassStep(p.name, p.description, p.evidence, inp, out, total, ctx.currency, fid, rows))
        current, prev_costs = new, new_costs
    current.metadata[keys.OPTIMIZED_BY] = [s.pass_name for s in ledger.steps]
    return current, ledger


def optimize_runs(runs: Iterable[Run], passes: Iterable["str | Pass"], *, currency: str = "USD",
                  options: dict[str, dict[str, Any]] | None = None) -> list[tuple[Run, Run, "Ledger"]]:
    """``(run, optimized run, ledger)`` for each of ``runs``, through one shared :class:`PassContext`: a
    response cache spans the runs of one invocation (e.g. trials of one task), as it would live."""
    passes = list(passes)
    ctx = PassContext(options=options or {}, currency=currency)
    out = []
    for run in runs:
        new, ledger = optimize(run, passes, options=options, ctx=ctx)
        ctx.history.append(run)
        out.append((run, new, ledger))
    return out


def _cost_by_span(run: Run, per_call: list[Decimal | None]) -> dict[str, Decimal | None]:
    return {s.span_id: c for s, c in zip(run.llm_spans(), per_call)}
