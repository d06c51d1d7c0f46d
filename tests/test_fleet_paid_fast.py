"""The ledger's as-paid figures for runs billed by simulated automatic caching (``tokprof.fleet.costs``) are
the ones ``paid_bills`` gives, to the last digit, on every corpus run: the fast path prices only what the
ledger stores, the reference path is the one as-paid bill every other command uses."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tokprof.fleet.costs import PaidOverrides, _via_paid_bills, simulated_costs
from tokprof.profiler.providers.as_paid import needs_simulation


@pytest.fixture()
def corpus_runs(corpus: Path) -> list:
    from tokprof.commands.import_cmd import expand
    from tokprof.profiler.interchange import import_file

    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in expand([str(corpus)]):
            runs.extend(import_file(f).runs)
    return runs


def test_fast_simulated_costs_equal_paid_bills_on_the_corpus(corpus_runs: list) -> None:
    checked = calls = 0
    for run in corpus_runs:
        if not needs_simulation(run, "USD"):
            continue
        fast = simulated_costs(run)
        assert fast == _via_paid_bills(run), run.run_id
        # exactly the same Decimal values, exponent included (they are stored as DECIMAL(38,24))
        assert [(str(a), str(b)) for a, b in fast.values()] == \
            [(str(a), str(b)) for a, b in _via_paid_bills(run).values()]
        checked += 1
        calls += len(fast)
    assert checked >= 200 and calls >= 3000  # the corpus's τ-bench runs: 250 runs need the simulation


def test_overrides_are_memoised_on_the_call_objects(corpus_runs: list) -> None:
    run = next(r for r in corpus_runs if needs_simulation(r, "USD"))
    po = PaidOverrides()
    first = po.get(run)
    assert first and po.get(run) is first  # a resampled copy of the run is not simulated again
    other = next(r for r in corpus_runs if not needs_simulation(r, "USD"))
    assert po.get(other) is None and po.get(other) is None
