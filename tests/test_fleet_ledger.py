"""The fleet ledger (issue 18.1/18.2): ingest the real corpus, check the ledger against the runs' own
summaries (the oracle), incremental re-ingest, Parquet export, and stats arithmetic by hand."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from fleet_support import ImportedCorpus, import_corpus
from tokprof.cli import main

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@pytest.fixture(scope="session")
def imported(tmp_path_factory) -> ImportedCorpus:
    if not CORPUS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"corpus not found at {CORPUS}")
        pytest.skip(f"corpus not found at {CORPUS}")
    return import_corpus(CORPUS, tmp_path_factory.mktemp("fleet") / "runs")


@pytest.fixture(scope="session")
def ledger(imported) -> Path:
    """The corpus ingested once through the CLI."""
    assert main(["ingest", "--dir", str(imported.runs_dir), "--json"]) == 0
    return imported.runs_dir / "ledger.duckdb"


def cli_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def test_stats_totals_equal_the_sum_of_run_summaries(imported, ledger, capsys):
    doc = cli_json(capsys, "stats", "--dir", str(imported.runs_dir), "--json")
    total = doc["total"]
    s = imported.summaries
    assert len(s) == 383 and total["runs"] == 383
    assert total["calls"] == sum(x["llm_calls"] for x in s) == 5745
    for key, name in (("input_tokens", "input"), ("output_tokens", "output"), ("cache_read_tokens", "cache_read"),
                      ("cache_write_tokens", "cache_write"), ("reasoning_tokens", "reasoning")):
        assert total[key] == sum(x["tokens"][name] for x in s), key
    assert total["input_tokens"] == 24_665_319 and total["output_tokens"] == 750_513
    # exact decimal money: the ledger's sum is the sum of the summaries' decimal strings, to the last digit
    # the ledger sums what each run paid, as the summary does (`amount`: recorded cost, provider cache tokens,
    # else the provider's automatic caching simulated on the unchanged run, expected case)
    expected = sum((Decimal(x["cost"]["amount"]) for x in s if x["cost"]["amount"] is not None), Decimal(0))
    assert Decimal(total["cost"]) == expected
    # and less than list price, since τ-bench's gpt-4o runs record neither cost nor cache tokens
    as_recorded = sum((Decimal(x["cost"]["as_recorded"]) for x in s if x["cost"]["as_recorded"] is not None),
                      Decimal(0))
    assert as_recorded == Decimal("43.0027442000000000984") and expected < as_recorded
    assert total["unpriced_calls"] == sum(x["cost"]["unpriced_calls"] for x in s) == 34
    # CNY is the same calls priced by the same function in the other currency
    cny = cli_json(capsys, "stats", "--dir", str(imported.runs_dir), "--json", "--currency", "CNY")["total"]
    expected_cny = sum((Decimal(r.summary(top=0, currency="CNY").to_dict()["cost"]["amount"] or 0)
                        for r in imported.runs), Decimal(0))
    assert Decimal(cny["cost"]) == expected_cny


def test_group_by_model_matches_summaries_and_sums_to_total(imported, ledger, capsys):
    doc = cli_json(capsys, "stats", "--dir", str(imported.runs_dir), "--json", "--by", "model")
    by_model: dict[str, int] = {}
    for x in imported.summaries:
        for m, n in x["models"].items():
            by_model[m] = by_model.get(m, 0) + n
    got = {r["group"]["model"]: r["calls"] for r in doc["rows"]}
    assert got == {("(unknown)" if m == "unknown" else m): n for m, n in by_model.items()}
    assert sum(Decimal(r["cost"]) for r in doc["rows"] if r["cost"]) == Decimal(doc["total"]["cost"])
    # rows are ordered by cost, most expensive first
    costs = [Decimal(r["cost"]) for r in doc["rows"] if r["cost"] is not None]
    assert costs == sorted(costs, reverse=True)


def test_tables_schema_and_messages_stored_once(imported, ledger):
    import duckdb

    con = duckdb.connect(str(ledger), read_only=True)
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    sent = sum(len(s.llm.messages) for r in imported.runs for s in r.spans if s.llm is not None)
    n_msgs, distinct = con.execute("SELECT count(*), count(DISTINCT hash) FROM messages").fetchone()
    assert n_msgs == distinct  # each message once
    # an agent re-sends its history: far fewer stored messages than messages sent
    assert n_msgs < sent / 10, (n_msgs, sent)
    # every call's prompt is stored, and its hashes resolve to messages
    missing = con.execute("SELECT count(*) FROM calls c WHERE prompt_hash IS NOT NULL AND NOT EXISTS "
                          "(SELECT 1 FROM prompts p WHERE p.prompt_hash = c.prompt_hash)").fetchone()[0]
    assert missing == 0
    dangling = con.execute("SELECT count(*) FROM (SELECT unnest(message_hashes) h FROM prompts) x "
                           "WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.hash = x.h)").fetchone()[0]
    assert dangling == 0
    # one call of the corpus, column by column against the run it came from
    run = imported.runs[0]
    span = run.llm_spans()[0]
    row = con.execute("SELECT model, input_tokens, input_source, output_tokens, path, day FROM calls "
                      "WHERE run_id = ? AND span_id = ?", [run.run_id, span.span_id]).fetchone()
    u = span.llm.usage
    assert row[:4] == (span.llm.model, u.input_tokens, u.source("input_tokens"), u.output_tokens)
    assert row[4].endswith(span.name)
    # LLM spans are the rows of calls; spans holds every other span (nothing stored twice)
    n_spans = con.execute("SELECT count(*) FROM spans").fetchone()[0]
    n_calls = con.execute("SELECT count(*) FROM calls").fetchone()[0]
    assert n_spans + n_calls == sum(len(r.spans) for r in imported.runs)
    con.close()


def test_ingest_is_idempotent_and_incremental(imported, ledger, tmp_path, capsys):
    d = tmp_path / "copy"
    shutil.copytree(imported.runs_dir, d)
    doc = cli_json(capsys, "ingest", "--dir", str(d), "--json", "--no-diagnostics")
    assert doc["files_skipped"] == 0 or doc["files_ingested"] == 0  # copied ledger knows the original paths only
    again = cli_json(capsys, "ingest", "--dir", str(d), "--json")
    assert again["files_ingested"] == 0 and again["files_skipped"] == 383
    # change one run file (a new tag): only that file is read again, its rows replaced, not duplicated
    from tokprof.profiler.store import load_run, save_run

    victim = sorted(d.glob("*.jsonl"))[0]
    run = load_run(victim)
    run.tags["team"] = "payments"
    victim.unlink()
    save_run(run, d)
    after = cli_json(capsys, "ingest", "--dir", str(d), "--json")
    assert after["files_ingested"] == 1 and after["files_skipped"] == 382
    total = cli_json(capsys, "stats", "--dir", str(d), "--json")["total"]
    assert total["calls"] == 5745 and total["runs"] == 383
    team = cli_json(capsys, "stats", "--dir", str(d), "--json", "--tag", "team=payments")["total"]
    assert team["runs"] == 1 and team["calls"] == len(run.llm_spans())


def test_export_parquet_dataset_partitioned_by_day(imported, ledger, tmp_path, capsys):
    import pyarrow.dataset as ds

    out = tmp_path / "pq"
    assert main(["export", "--format", "parquet", str(out), "--dir", str(imported.runs_dir)]) == 0
    days = sorted(p.name for p in (out / "calls").iterdir())
    assert days and all(p.startswith("day=") for p in days)
    calls = ds.dataset(out / "calls", format="parquet", partitioning="hive").to_table()
    assert calls.num_rows == 5745
    cost = sum((c for c in calls.column("cost_usd").to_pylist() if c is not None), Decimal(0))
    assert cost == Decimal("35.5002232500000000984")  # what the runs paid (the summaries' sum, test above)
    for name in ("runs", "spans", "messages", "prompts", "schema_version"):
        assert (out / name).is_dir()


def _hand_made_run(runs_dir: Path) -> None:
    """Two calls with provider usage: 1000 prompt tokens of which 900 cached, then 100 with none cached."""
    from tokprof.profiler import profile, record_llm_call

    with profile("cache-check", tags={"team": "search"}, save=str(runs_dir)):
        record_llm_call(model="gpt-4o", provider="openai", messages=[{"role": "user", "content": "a"}], output="x",
                        usage={"input_tokens": 1000, "output_tokens": 10, "cache_read_tokens": 900})
        record_llm_call(model="gpt-4o", provider="openai", messages=[{"role": "user", "content": "b"}], output="y",
                        usage={"input_tokens": 100, "output_tokens": 10, "cache_read_tokens": 0})


def test_cache_hit_rate_is_a_ratio_of_sums(tmp_path, capsys):
    runs = tmp_path / "r"
    _hand_made_run(runs)
    assert main(["ingest", "--dir", str(runs), "--json"]) == 0
    doc = cli_json(capsys, "stats", "--dir", str(runs), "--json", "--by", "tag:team")
    row = doc["rows"][0]
    assert row["group"] == {"tag:team": "search"}
    assert row["cache_hit_rate"] == pytest.approx(900 / 1100)  # not (0.9 + 0.0) / 2
    # gpt-4o, OpenAI pricing (https://openai.com/api/pricing/): $2.50/M input, $1.25/M cached, $10/M output:
    # (100 + 100) x 2.50 + 900 x 1.25 + 20 x 10 = 1825 per million = $0.001825
    assert Decimal(row["cost"]) == Decimal("0.001825")
    capsys.readouterr()
    assert main(["stats", "--dir", str(runs), "--by", "tag:team,model", "--csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("tag:team,model,calls,")
    assert lines[1].startswith("search,gpt-4o,2,1,1100,20,900,")


def test_readable_table_fits_80_columns(imported, ledger, capsys):
    capsys.readouterr()
    assert main(["stats", "--dir", str(imported.runs_dir), "--by", "model,month"]) == 0
    out = capsys.readouterr().out
    assert "gpt-4o" in out and "total" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_bad_arguments_and_bad_files_are_named(tmp_path, capsys):
    runs = tmp_path / "r"
    _hand_made_run(runs)
    (runs / "broken.jsonl").write_text('{"type": "run", "schema": 99}\n')
    capsys.readouterr()
    assert main(["ingest", "--dir", str(runs)]) == 1
    err = capsys.readouterr().err
    assert "broken.jsonl" in err and "Traceback" not in err
    assert main(["stats", "--dir", str(runs), "--by", "colour"]) == 1
    assert "--by colour: unknown" in capsys.readouterr().err
    assert main(["stats", "--dir", str(tmp_path / "none")]) == 1
    assert "tokprof ingest" in capsys.readouterr().err
