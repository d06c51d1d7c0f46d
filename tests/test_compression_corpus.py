"""The default compression on real agent runs: cheaper after prompt caching, at >= 99% reference retention.

A subset of the corpus keeps this fast; ``benchmarks/bench_savings.py --pipeline default`` runs it all.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from tokprof.optimizers.base import PassContext, make_pass
from tokprof.optimizers.billing import bill_runs
from tokprof.optimizers.compression import DEFAULT_COMPRESSION
from tokprof.optimizers.fidelity import run_fidelity_detail as run_retention_detail

CACHING = ["response-cache", "tool-cache", "prompt-cache"]


def _agent_cost(runs) -> Decimal:
    total = Decimal(0)
    for run, bill in zip(runs, bill_runs(runs)):
        index = run.by_id()
        for b in bill.calls:
            if run.span_tags(index[b.span_id]).get("side") in ("agent", None) and b.cost is not None:
                total += b.cost
    return total


def _pipeline(runs, passes):
    ctx = PassContext()
    for name in passes:
        p = make_pass(name)
        runs = [p.apply(r, ctx)[0] for r in runs]
    return runs


def _retention(originals, runs) -> float:
    ref = kept = 0
    for a, b in zip(originals, runs):
        for r in run_retention_detail(a, b):
            ref += r.referenced
            kept += r.retained
    return kept / ref


@pytest.mark.parametrize("path,count", [
    ("tau1/gpt-4o-airline.json.gz", 25),
    ("tau2/claude-sonnet-4-5_aide-platform_2025-10-31__claude-sonnet-4-5_airline_default_gpt4.1_1trials.json.gz", 8),
])
def test_default_compression_cuts_the_cached_bill_at_high_retention(corpus, path, count):
    from tokprof.profiler.interchange import import_file

    runs = import_file(corpus / path).runs[:count]
    recorded = _agent_cost(runs)
    cached = _agent_cost(_pipeline(runs, CACHING))
    full = _pipeline(runs, ["response-cache", "tool-cache", *DEFAULT_COMPRESSION, "prompt-cache"])
    compressed = _agent_cost(full)
    assert compressed < cached < recorded
    assert _retention(runs, full) >= 0.99
    if "gpt-4o" in path:  # a 50% cache discount leaves most of the input bill to compression
        assert compressed <= cached * Decimal("0.9")
