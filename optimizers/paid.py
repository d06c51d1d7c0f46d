"""What a rewrite of a run changes relative to what the run paid: how the optimizers bill a rewritten run.

What the *unchanged* run paid — the baseline of every saving — is computed in one place,
:func:`tokprof.profiler.providers.as_paid.paid_bills` (recorded cost / provider cache tokens / simulated
automatic caching with best/expected/worst), the same function the run summary, ``show``, ``import``, the
report and the demo use; its names are re-exported here for the optimizers.

A rewritten run (:func:`rebill`) is billed as *paid + what the rewrite changes*: for each call,
``paid + simulated(rewritten) - simulated(original)``, both simulations fed the calls in time order
through the same provider-cache model (so compression that breaks a prefix cache is charged for it).
A pass is therefore credited only with its own effect: a call nobody touched, whose cache context
nobody touched, keeps exactly what was paid, and caching the agent already had is never credited.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from tokprof.profiler import keys
from tokprof.profiler.model import Run
# Re-exported: the baseline's vocabulary, for the pipeline, whatif, the benchmarks and their tests.
from tokprof.profiler.providers.as_paid import (  # noqa: F401
    BASES, CACHE_TOKENS, CALIBRATION_FILES, DEFAULT_HIT_RATE, HIT_RATES, RECORDED, SCENARIOS, SERVED, SIMULATED,
    UNCACHED, CallPaid, CostRange, RunPaid, hit_rate, inferred_plan, original_plans, paid_bills, rule_confidence,
    run_paid, simulate, simulated_bill, total_range)
from tokprof.profiler.providers.cost import PriceLookup


def rebill(originals: list[Run], rewritten: list[Run], paid: list[RunPaid], sim_orig: list[dict[str, CallPaid]],
           currency: str = "USD", prices: PriceLookup | None = None) -> list[RunPaid]:
    """Bill ``rewritten`` (the same runs after passes) as paid + simulated(rewritten) - simulated(original),
    call by call; calls served without reaching the provider cost nothing; a new call (no original) is
    billed by the simulator alone. Costs never go below zero."""
    plans: dict[tuple[int, str], dict[str, Any]] = {}
    for i, run in enumerate(originals):
        for span in run.llm_spans():
            p = inferred_plan(span)
            if p:
                plans[(i, span.span_id)] = p  # the agent keeps its own caching unless a pass plans anew
    sim_new = simulate(rewritten, currency, plans, prices)
    out = []
    zero = CostRange.point(Decimal(0))
    for i, run in enumerate(rewritten):
        before = paid[i].by_span()
        rp = RunPaid(run.run_id, currency)
        for span in run.llm_spans():
            new = sim_new[i][span.span_id]
            if keys.served_by(span.attributes):  # a live or simulated cache hit
                rp.calls.append(replace(new, basis=SERVED, cost=zero))
                continue
            old_paid, old_sim = before.get(span.span_id), sim_orig[i].get(span.span_id)
            if old_paid is None or old_sim is None:
                rp.calls.append(new)
                continue
            cost = old_paid.cost + (new.cost - old_sim.cost)
            cost = CostRange(tuple(None if v is None else max(Decimal(0), v) for v in cost.by_scenario))
            basis = old_paid.basis if new.cost.by_scenario == old_sim.cost.by_scenario else \
                f"{old_paid.basis} + simulated change"
            rp.calls.append(CallPaid(span.span_id, new.model, new.provider, basis, cost,
                                     _weakest(old_paid.confidence, new.confidence)))
        out.append(rp)
    return out


def _weakest(a: str, b: str) -> str:
    order = ["documented", "calibrated", "assumed"]
    return max(a, b, key=lambda v: order.index(v) if v in order else len(order))
