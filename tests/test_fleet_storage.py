"""Column storage of a new ledger (``tokprof.fleet.schema.COMPRESSION``): message texts as zstd, content keys
uncompressed, and a DuckDB without one of those falls back to a plain table that works the same."""

from __future__ import annotations

from pathlib import Path

import pytest

from tokprof.fleet import schema
from tokprof.fleet.ledger import connect, ingest_runs
from tokprof.profiler import profile, record_llm_call


def _run(i: int):  # noqa: ANN202
    with profile(f"r{i}", save=False) as run:
        record_llm_call(model="gpt-4o", provider="openai",
                        messages=[{"role": "user", "content": f"question {i} " + "about the order status " * 200}],
                        output=f"answer {i}", usage={"input_tokens": 1000, "output_tokens": 10})
    return run


def _segments(con, table: str, column: str) -> set[str]:  # noqa: ANN001
    rows = con.execute(f"SELECT DISTINCT compression FROM pragma_storage_info('{table}') "
                       f"WHERE column_name = ? AND segment_type = 'VARCHAR'", [column]).fetchall()
    return {r[0] for r in rows}


def test_message_texts_are_stored_as_zstd(tmp_path: Path) -> None:
    con = connect(tmp_path / "l.duckdb")
    assert ingest_runs(con, (_run(i) for i in range(50)), diagnose=False) == 50
    con.execute("CHECKPOINT")
    assert _segments(con, "messages", "content") == {"ZSTD"}
    assert _segments(con, "messages", "hash") == {"Uncompressed"}
    assert con.execute("SELECT count(*), sum(chars) FROM messages").fetchone()[0] == 100  # 50 prompts + answers
    con.close()


def test_a_duckdb_without_that_compression_gets_plain_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An older DuckDB refuses ``USING COMPRESSION zstd`` on text (a Binder/Parser error): here a compression
    no DuckDB has stands in for it. The ledger is created plain and ingests the same."""
    monkeypatch.setitem(schema.COMPRESSION, ("messages", "content"), "no_such_compression")
    con = connect(tmp_path / "l.duckdb")
    assert ingest_runs(con, (_run(i) for i in range(5)), diagnose=False) == 5
    assert con.execute("SELECT count(*) FROM messages").fetchone()[0] == 10
    assert con.execute("SELECT sum(input_tokens) FROM calls").fetchone()[0] == 5_000
    con.close()
