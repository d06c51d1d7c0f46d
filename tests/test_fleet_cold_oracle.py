"""The ledger built from the whole corpus (every call new to the process: the cold ingest path) against an
independent slow path computed call by call: ``paid_bills`` (the as-paid bill every other command uses) for
calls billed by simulated caching, ``span_cost`` for the rest, ``payload_id`` for every message hash. The
fast path (one-pass pricing, memoised rates, the C-encoder canonical JSON, unpriced simulation) must store
exactly these values."""

from __future__ import annotations

import hashlib
import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.fleet.costs import money
from tokprof.fleet.ledger import connect, ingest_runs
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.providers.as_paid import SIMULATED, paid_bills
from tokprof.fleet.stats import Query, run_stats
from tokprof.profiler.providers.prices import get_price
from tokprof.profiler.run_lines import payload_id


@pytest.fixture(scope="module")
def corpus_runs() -> list:
    from tokprof.commands.import_cmd import expand
    from tokprof.profiler.interchange import import_file

    corpus = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
    if not corpus.is_dir():
        pytest.skip(f"corpus not found at {corpus}")
    runs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in expand([str(corpus)]):
            runs.extend(import_file(f).runs)
    return runs


def _native(call: Any) -> str:
    rec = call.cost
    if rec is not None and rec.source == "recorded" and rec.amount is not None:
        return str(rec.currency.upper())
    price = get_price(call.model, warn=False)
    return "USD" if price is None else str(price.currency)


def _slow_rows(runs: list) -> set[tuple[Any, ...]]:
    """Every call's stored values, from the reference functions, one call at a time."""
    out = set()
    for run in runs:
        usd_paid = paid_bills([run], "USD")[0].by_span()
        cny_paid = paid_bills([run], "CNY")[0].by_span()
        for span in run.llm_spans():
            call = span.llm
            paid = usd_paid.get(span.span_id)
            if paid is not None and paid.basis == SIMULATED:
                usd, cny, source = paid.cost.expected, cny_paid[span.span_id].cost.expected, "simulated"
            else:
                cu, cc = span_cost(span, "USD"), span_cost(span, "CNY")
                usd = None if cu is None else cu.amount
                cny = None if cc is None else cc.amount
                source = "unknown" if usd is None else cu.source
            ids = [payload_id(m) for m in call.messages]
            prompt = hashlib.sha1("\n".join(ids).encode()).hexdigest() if ids else None
            output = None if call.output is None else payload_id(call.output)
            u = call.usage
            out.add((run.run_id, span.span_id, money(usd), money(cny), _native(call), source, prompt, output,
                     u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens))
    return out


def test_cold_ledger_equals_the_slow_path_on_every_corpus_call(corpus_runs: list, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        con = connect(tmp_path / "ledger.duckdb")
        n = ingest_runs(con, iter(corpus_runs), diagnose=False, batch_calls=2_000)  # several batches
        stored = con.execute("SELECT run_id, span_id, cost_usd, cost_cny, currency, cost_source, prompt_hash, "
                             "output_hash, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens "
                             "FROM calls").fetchall()
        messages = con.execute("SELECT hash, content, chars FROM messages").fetchall()
        runs_total = con.execute("SELECT sum(cost_usd), sum(cost_cny) FROM runs").fetchone()
        stats_total = run_stats(con, Query(by=["model"]))["total"]
        con.close()
        slow = _slow_rows(corpus_runs)
    assert n == len(stored) == len(slow) >= 5_000
    assert {tuple(r) for r in stored} == slow
    # simulated caching, recorded and computed costs all present: every basis of the fast path was checked
    sources = {r[5] for r in slow}
    # `tokprof stats` says how many costs assume simulated caching (its dagger footnote): the slow path's count
    assert stats_total["simulated_cost_calls"] == sum(1 for r in slow if r[5] == "simulated") > 0
    assert {"simulated", "estimated", "recorded", "unknown"} <= sources, sources
    # the as-paid total of the corpus (tests/test_fleet_ledger.py: the run summaries' sum)
    assert runs_total[0] == sum((r[2] for r in slow if r[2] is not None), Decimal(0)) \
        == Decimal("35.5002232500000000984")
    # each message once, under the run store's content address of its own canonical JSON
    want = {payload_id(m) for run in corpus_runs for s in run.llm_spans()
            for m in [*s.llm.messages, *([s.llm.output] if s.llm.output is not None else [])]}
    assert {h for h, _, _ in messages} == want
    for h, content, chars in messages:
        assert payload_id(json.loads(content)) == h and chars == len(content)
