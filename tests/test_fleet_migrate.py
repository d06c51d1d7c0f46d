"""Schema version 2 of the fleet ledger (issue 18.6: narrow facts + dimension tables) and the in-place
migration of a version-1 ledger: nothing lost, the same rows through the ``calls``/``spans`` views, the same
stats, and incremental ingest still knows every file.

The version-1 ledger is made the way version 1 stored it: the wide ``calls`` and ``spans`` rows as tables
(taken from a version-2 ledger's views, which give exactly those columns), ``runs`` without ``run_key``."""

from __future__ import annotations

import json

import pytest

from test_fleet_ledger import imported, ledger  # noqa: F401  (session fixtures: the corpus ingested once)
from tokprof.cli import main

ORDERED = {
    "calls": "SELECT * FROM calls ORDER BY run_id, span_id",
    "spans": "SELECT * FROM spans ORDER BY run_id, span_id",
    "runs": "SELECT * EXCLUDE (run_key) FROM runs ORDER BY run_id",
    "messages": "SELECT * FROM messages ORDER BY hash",
    "prompts": "SELECT * FROM prompts ORDER BY prompt_hash",
    "diagnostics": "SELECT * FROM diagnostics ORDER BY run_id, span_id, cause",
    "files": "SELECT path, size, mtime_ns, sha1, run_ids FROM files ORDER BY path",
}


def make_v1(src, dst) -> None:
    """A version-1 ledger at ``dst`` holding the same fleet as the version-2 ledger ``src``."""
    import duckdb

    con = duckdb.connect(str(dst))
    con.execute(f"ATTACH '{src}' AS src (READ_ONLY)")
    for t in ("calls", "spans", "messages", "prompts", "diagnostics", "files"):
        con.execute(f"CREATE TABLE {t} AS SELECT * FROM src.{t}")
    con.execute("CREATE TABLE runs AS SELECT * EXCLUDE (run_key) FROM src.runs")
    con.execute("CREATE TABLE schema_version AS SELECT 1 AS version, TIMESTAMP '2026-11-01' AS created_at")
    con.execute("DETACH src")
    con.close()


def test_v2_stores_narrow_facts_and_each_dimension_value_once(ledger):  # noqa: F811
    import duckdb

    con = duckdb.connect(str(ledger), read_only=True)
    cols = {r[0]: r[1] for r in con.execute("DESCRIBE call_facts").fetchall()}
    # no repeated strings for model/provider/path/tags on a call row: integer keys
    assert {"model", "provider", "path", "tags", "function"}.isdisjoint(cols)
    assert cols["place_id"] == cols["tags_id"] == cols["kind_id"] == cols["run_key"] == "INTEGER"
    for dim, key in (("places", "place_id"), ("tag_sets", "tags_id"), ("call_kinds", "kind_id")):
        n, distinct = con.execute(f"SELECT count(*), count(DISTINCT {key}) FROM {dim}").fetchone()
        assert n == distinct > 0, dim
    # every fact finds its dimensions (the views are inner joins: nothing may fall out)
    assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == \
        con.execute("SELECT count(*) FROM call_facts").fetchone()[0] == 5745
    assert con.execute("SELECT count(*) FROM spans").fetchone()[0] == \
        con.execute("SELECT count(*) FROM span_facts").fetchone()[0]
    # a few models and kinds for thousands of calls: that is what the dimension saves
    assert con.execute("SELECT count(*) FROM call_kinds").fetchone()[0] < 100
    con.close()


def test_v1_ledger_is_migrated_in_place_with_nothing_lost(ledger, tmp_path, capsys):  # noqa: F811
    import duckdb

    from tokprof.fleet.ledger import LedgerError, connect

    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    old = runs_dir / "ledger.duckdb"
    make_v1(ledger, old)
    # a reader does not write: it says what to do
    with pytest.raises(LedgerError, match="schema version 1.*tokprof ingest"):
        connect(old, read_only=True)
    capsys.readouterr()
    assert main(["stats", "--ledger", str(old), "--json"]) != 0  # the CLI names the same error, no traceback
    err = capsys.readouterr().err
    assert "schema version 1" in err and "Traceback" not in err
    con = connect(old)  # a writer migrates
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(2,)]
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                        "WHERE table_type = 'BASE TABLE'").fetchall()}
    assert {"call_facts", "span_facts", "places", "tag_sets", "call_kinds"} <= tables
    assert not {"calls_v1", "spans_v1", "runs_v1"} & tables
    con.close()
    ref = duckdb.connect(str(ledger), read_only=True)
    got = duckdb.connect(str(old), read_only=True)
    for name, sql in ORDERED.items():
        a, b = ref.execute(sql).fetchall(), got.execute(sql).fetchall()
        assert len(a) == len(b) and a == b, name
    ref.close()
    got.close()
    # the same answers, to the last decimal place
    for by in ("model,function", "day,tag:team", "tool"):
        capsys.readouterr()
        assert main(["stats", "--ledger", str(ledger), "--json", "--by", by]) == 0
        want = json.loads(capsys.readouterr().out)
        assert main(["stats", "--ledger", str(old), "--json", "--by", by]) == 0
        assert json.loads(capsys.readouterr().out) == want, by
    # and new runs go on top of migrated ones (ids continue after the migrated dimension rows)
    from tokprof.fleet.ledger import ingest_runs
    from tokprof.profiler.store import load_run

    con = connect(old)
    victim = load_run(next(p for p in sorted((ledger.parent).glob("*.jsonl"))))
    victim.run_id = "after-migration"
    n = ingest_runs(con, [victim], diagnose=False)
    assert con.execute("SELECT count(*) FROM calls WHERE run_id = 'after-migration'").fetchone()[0] == n
    assert con.execute("SELECT count(*) FROM calls").fetchone()[0] == 5745 + n
    con.close()


def test_newer_or_unknown_schema_is_refused_with_a_message(tmp_path):
    import duckdb

    from tokprof.fleet.ledger import LedgerError, connect

    p = tmp_path / "ledger.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE schema_version AS SELECT 99 AS version, TIMESTAMP '2030-01-01' AS created_at")
    con.close()
    with pytest.raises(LedgerError, match="version 99.*newer tokprof"):
        connect(p)
