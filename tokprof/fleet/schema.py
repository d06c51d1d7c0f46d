"""The fleet ledger's tables: one place for their columns, Arrow types and DuckDB DDL.

Schema version 1 (documented in ``docs/fleet.md``). Tables:

* ``calls``     one wide row per LLM call (the fact table every question reads);
* ``spans``     every span (functions, tools, agents, LLM spans), for tool/function time and counts;
* ``runs``      one row per run: identity, tags, totals;
* ``messages``  each distinct chat message once, keyed by its content hash (the run store's ``payload_id``);
* ``prompts``   each distinct prompt once: its ordered list of message hashes (calls reference ``prompt_hash``,
  so an agent re-sending its history is not stored again per call);
* ``diagnostics`` per-run findings (prefix breaks...) with tokens and money at stake;
* ``files``     what was ingested from where (path, size, mtime, content hash): makes ingest incremental;
* ``schema_version``.

Money is ``DECIMAL(38,24)``: exact for per-token prices and for recorded float costs (the corpus needs 21
places; amounts with more are rounded half-even to 24 places, below 1e-24 of a unit), and wide
enough for the sum of billions of calls.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

MONEY = pa.decimal128(38, 24)
MONEY_SQL = "DECIMAL(38,24)"
TS = pa.timestamp("us")
TAGS = pa.map_(pa.string(), pa.string())

USAGE_COLUMNS = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")
"""Token types of ``calls``: each has ``<name>_tokens`` (BIGINT, 0 when unknown) and ``<name>_source``
(``provider``/``counted``/``estimated``, NULL when unknown)."""

CALLS = pa.schema(
    [
        ("run_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_id", pa.string()),
        ("path", pa.string()),
        ("agent", pa.string()),
        ("function", pa.string()),
        ("tool", pa.string()),
        ("model", pa.string()),
        ("provider", pa.string()),
    ]
    + [(f"{u}_tokens", pa.int64()) for u in USAGE_COLUMNS]
    + [(f"{u}_source", pa.string()) for u in USAGE_COLUMNS]
    + [
        ("cost_usd", MONEY),
        ("cost_cny", MONEY),
        ("currency", pa.string()),
        ("cost_source", pa.string()),
        ("cache_status", pa.string()),
        ("status", pa.string()),
        ("tags", TAGS),
        ("prompt_hash", pa.string()),
        ("output_hash", pa.string()),
        ("start_time", TS),
        ("end_time", TS),
        ("duration_ns", pa.int64()),
        ("day", pa.date32()),
    ]
)

SPANS = pa.schema(
    [
        ("run_id", pa.string()),
        ("span_id", pa.string()),
        ("parent_id", pa.string()),
        ("kind", pa.string()),
        ("name", pa.string()),
        ("path", pa.string()),
        ("depth", pa.int32()),
        ("status", pa.string()),
        ("tags", TAGS),
        ("start_time", TS),
        ("end_time", TS),
        ("duration_ns", pa.int64()),
        ("day", pa.date32()),
    ]
)

RUNS = pa.schema(
    [
        ("run_id", pa.string()),
        ("name", pa.string()),
        ("source", pa.string()),
        ("source_file", pa.string()),
        ("ledger_file", pa.string()),
        ("complete", pa.bool_()),
        ("tags", TAGS),
        ("spans", pa.int64()),
        ("llm_calls", pa.int64()),
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", MONEY),
        ("cost_cny", MONEY),
        ("unpriced_calls", pa.int64()),
        ("start_time", TS),
        ("end_time", TS),
        ("day", pa.date32()),
    ]
)

MESSAGES = pa.schema([("hash", pa.string()), ("role", pa.string()), ("content", pa.string()),
                      ("chars", pa.int64())])

PROMPTS = pa.schema([("prompt_hash", pa.string()), ("message_hashes", pa.list_(pa.string()))])

DIAGNOSTICS = pa.schema(
    [
        ("run_id", pa.string()),
        ("kind", pa.string()),
        ("cause", pa.string()),
        ("span_id", pa.string()),
        ("model", pa.string()),
        ("tokens_at_stake", pa.int64()),
        ("cost_usd", MONEY),
        ("day", pa.date32()),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "runs": RUNS,
    "spans": SPANS,
    "calls": CALLS,
    "messages": MESSAGES,
    "prompts": PROMPTS,
    "diagnostics": DIAGNOSTICS,
}

KEYS = {"messages": "hash", "prompts": "prompt_hash"}
"""Content-addressed tables: a row is inserted only if its key is new."""

DATED = ("runs", "spans", "calls", "diagnostics")
"""Tables with a ``day`` column: partitioned by day in the Parquet export, deleted by run id on re-ingest."""

_SQL_TYPES = {
    pa.string(): "VARCHAR",
    pa.int64(): "BIGINT",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    MONEY: MONEY_SQL,
    TS: "TIMESTAMP",
    pa.date32(): "DATE",
    TAGS: "MAP(VARCHAR, VARCHAR)",
    pa.list_(pa.string()): "VARCHAR[]",
}


def ddl() -> list[str]:
    """CREATE TABLE statements for every table (idempotent)."""
    out = []
    for name, schema in TABLES.items():
        cols = ", ".join(f'"{f.name}" {_SQL_TYPES[f.type]}' for f in schema)
        out.append(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
    out.append("CREATE TABLE IF NOT EXISTS files (path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, "
               "sha1 VARCHAR, run_ids VARCHAR[], ingested_at TIMESTAMP)")
    out.append("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, created_at TIMESTAMP)")
    return out
