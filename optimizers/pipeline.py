"""The pipeline: run passes in order over a recorded run and write the savings ledger.

The baseline is what the run paid (:mod:`tokprof.optimizers.paid`: recorded costs, else provider-reported
cache tokens, else the provider's automatic caching simulated on the unchanged run). After every pass the
whole run is re-billed against it (:func:`tokprof.optimizers.paid.rebill`), so passes that interact
(compression breaks a provider's prefix cache) are reported by their combined effect, and the context
fidelity of the rewritten run is measured (:func:`tokprof.optimizers.fidelity.run_fidelity`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, Iterable

from tokprof.optimizers import paid as paid_mod
from tokprof.optimizers.base import Evidence, Ledger, Pass, PassContext, PassStep, expand_passes, make_pass
from tokprof.optimizers.fidelity import run_fidelity
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

    The baseline is what the run paid (:mod:`tokprof.optimizers.paid`); after each pass the whole run is
    re-billed against it (default: the billing simulator, with a :class:`~tokprof.optimizers.paid.CostRange`
    where a cache rule is not guaranteed), so each waterfall step shows the combined effect of all passes so
    far. A custom ``pricer`` gives points, as it gives them.
    """
    options = options or {}
    ctx = ctx or PassContext()
    if fidelity is None:
        fidelity = run_fidelity
    inp, out = run_tokens(run)
    rb: Any
    if pricer is not None:  # a custom pricer: points, as it gives them
        custom: Pricer = pricer
        total, per_call = custom(run, ctx.currency)
        baseline = PassStep("recorded", "the run as priced", "simulated", inp, out, total, ctx.currency, 1.0)

        def bill_of(r: Run) -> tuple[Any, dict[str, Decimal | None]]:
            return None, _cost_by_span(r, custom(r, ctx.currency)[1])

        prev_costs = _cost_by_span(run, per_call)
    else:
        sim_orig = paid_mod.simulate([run], ctx.currency, paid_mod.original_plans([run]))
        paid = paid_mod.paid_bills([run], ctx.currency, sim_orig)[0]
        bases = paid.bases()
        evidence: Evidence = "measured" if set(bases) <= {"recorded cost", "provider cache tokens"} else "simulated"
        baseline = PassStep("recorded", "what the run paid", evidence, inp, out, paid.total.expected,
                            ctx.currency, 1.0, cost_range=paid.total, basis=bases,
                            confidence=_confidence(paid.calls))

        def bill_of(r: Run) -> tuple[Any, dict[str, Decimal | None]]:
            rebilled = paid_mod.rebill([run], [r], [paid], sim_orig, ctx.currency)[0]
            return rebilled, {c.span_id: c.cost.expected for c in rebilled.calls}

        prev_costs = {c.span_id: c.cost.expected for c in paid.calls}

    ledger = Ledger(run.run_id, baseline)
    current = run
    for spec in expand_passes(passes):
        p = make_pass(spec, **options.get(spec if isinstance(spec, str) else spec.name, {}))
        new, rows = p.apply(current, ctx)
        rb, new_costs = bill_of(new)
        for r in rows:
            r.cost_before = prev_costs.get(r.span_id)
            r.cost_after = new_costs.get(r.span_id)
        inp, out = run_tokens(new)
        fid = fidelity(run, new) if fidelity is not None else None
        lossless = getattr(p, "lossless", None)
        if rb is None:
            total = pricer(new, ctx.currency)[0] if pricer is not None else None
            step = PassStep(p.name, p.description, p.evidence, inp, out, total, ctx.currency, fid, rows,
                            lossless=lossless)
        else:
            step = PassStep(p.name, p.description, p.evidence, inp, out, rb.total.expected, ctx.currency, fid,
                            rows, cost_range=rb.total, basis=rb.bases(), confidence=_confidence(rb.calls),
                            lossless=lossless)
        ledger.steps.append(step)
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


def _confidence(calls: Iterable[Any]) -> str:
    """The weakest confidence among the calls whose cost rests on a simulated cache rule."""
    order = ["documented", "calibrated", "assumed"]
    worst = "documented"
    for c in calls:
        if c.basis.startswith("recorded cost") and "simulated" not in c.basis:
            continue
        conf = c.confidence if c.confidence in order else "assumed"
        if order.index(conf) > order.index(worst):
            worst = conf
    return worst


def _cost_by_span(run: Run, per_call: list[Decimal | None]) -> dict[str, Decimal | None]:
    return {s.span_id: c for s, c in zip(run.llm_spans(), per_call)}
