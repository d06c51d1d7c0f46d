"""The fleet ledger's tables: one place for their columns, Arrow types and DuckDB DDL.

Schema version 2 (documented in ``docs/fleet.md``; version 1 ledgers are migrated in place by
:mod:`tokprof.fleet.migrate`). Stored tables:

* ``call_facts`` one narrow row per LLM call: integer keys into the dimension tables, tokens, exact cost,
  hashes, times (the fact table every question reads);
* ``places``    dimension: each distinct place in a span tree (path, depth, agent/function/tool above it)
  once, keyed by ``place_id``;
* ``tag_sets``  dimension: each distinct set of tags in force (run tags overridden by span tags) once, keyed
  by ``tags_id``;
* ``call_kinds`` dimension: each distinct (model, provider, token sources, currency, cost source, cache
  status, status) once, keyed by ``kind_id``;
* ``span_facts`` every non-LLM span (functions, tools, agents), keyed into ``places``;
* ``runs``      one row per run: identity (``run_id`` and the integer ``run_key`` facts carry), tags, totals;
* ``messages``  each distinct chat message once, keyed by its content hash (the run store's ``payload_id``);
* ``prompts``   each distinct prompt once: its ordered list of message hashes (calls reference ``prompt_hash``,
  so an agent re-sending its history is not stored again per call);
* ``diagnostics`` per-run findings (prefix breaks...) with tokens and money at stake;
* ``files``     what was ingested from where (path, size, mtime, content hash): makes ingest incremental;
* ``schema_version``.

Views ``calls`` and ``spans`` join the facts to their dimensions and give the wide rows of schema version 1
(same columns, same names), for ad-hoc SQL, budgets and the Parquet export. ``tokprof stats`` reads the facts
and joins only the dimensions a question needs. Fleets repeat a few models, providers, tags and call paths
millions of times: stored once, they leave the fact row a few integers wide.

Money is ``DECIMAL(38,24)``: exact for per-token prices and for recorded float costs (the corpus needs 21
places; amounts with more are rounded half-even to 24 places, below 1e-24 of a unit), and wide
enough for the sum of billions of calls.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = 2

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
        ("run_key", pa.int32()),
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

CALL_FACTS = pa.schema(
    [("run_key", pa.int32()), ("span_id", pa.string()), ("parent_id", pa.string()), ("place_id", pa.int32()),
     ("tags_id", pa.int32()), ("kind_id", pa.int32())]
    + [(f"{u}_tokens", pa.int64()) for u in USAGE_COLUMNS]
    + [("cost_usd", MONEY), ("cost_cny", MONEY), ("prompt_hash", pa.string()), ("output_hash", pa.string()),
       ("start_time", TS), ("end_time", TS), ("duration_ns", pa.int64()), ("day", pa.date32())]
)

SPAN_FACTS = pa.schema(
    [("run_key", pa.int32()), ("span_id", pa.string()), ("parent_id", pa.string()), ("place_id", pa.int32()),
     ("tags_id", pa.int32()), ("kind", pa.string()), ("name", pa.string()), ("status", pa.string()),
     ("start_time", TS), ("end_time", TS), ("duration_ns", pa.int64()), ("day", pa.date32())]
)

PLACES = pa.schema(
    [("place_id", pa.int32()), ("path", pa.string()), ("depth", pa.int32()), ("agent", pa.string()),
     ("function", pa.string()), ("tool", pa.string())]
)

TAG_SETS = pa.schema([("tags_id", pa.int32()), ("tags", TAGS)])

KIND_FIELDS = ("model", "provider", *(f"{u}_source" for u in USAGE_COLUMNS), "currency", "cost_source",
               "cache_status", "status")
CALL_KINDS = pa.schema([("kind_id", pa.int32())] + [(f, pa.string()) for f in KIND_FIELDS])

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
    "places": PLACES,
    "tag_sets": TAG_SETS,
    "call_kinds": CALL_KINDS,
    "span_facts": SPAN_FACTS,
    "call_facts": CALL_FACTS,
    "messages": MESSAGES,
    "prompts": PROMPTS,
    "diagnostics": DIAGNOSTICS,
}

KEYS = {"messages": "hash", "prompts": "prompt_hash"}
"""Content-addressed tables: a row is inserted only if its key is new."""

DIMENSIONS = {"places": "place_id", "tag_sets": "tags_id", "call_kinds": "kind_id"}
"""Dimension tables and their integer key (assigned by :class:`tokprof.fleet.dims.Dims`)."""

FACTS = ("span_facts", "call_facts")
"""Tables keyed by ``run_key``: deleted through ``runs`` on re-ingest."""

EXPORTED = ("runs", "spans", "calls", "messages", "prompts", "diagnostics")
"""What the Parquet export writes: the wide views (self-describing files, no joins needed downstream)."""

DATED = ("runs", "spans", "calls", "diagnostics")
"""Exported tables with a ``day`` column: partitioned by day in the Parquet export."""

_CALLS_VIEW = ", ".join(
    {"run_id": "r.run_id", "tags": "t.tags", **{f: f"p.{f}" for f in ("path", "agent", "function", "tool")},
     **{f: f"k.{f}" for f in KIND_FIELDS}}.get(f.name, f"f.{f.name}") for f in CALLS)
_SPANS_VIEW = ", ".join(
    {"run_id": "r.run_id", "tags": "t.tags", "path": "p.path", "depth": "p.depth"}.get(f.name, f"f.{f.name}")
    for f in SPANS)
VIEWS = [
    f"CREATE OR REPLACE VIEW calls AS SELECT {_CALLS_VIEW} FROM call_facts f JOIN runs r ON r.run_key = f.run_key "
    "JOIN places p ON p.place_id = f.place_id JOIN tag_sets t ON t.tags_id = f.tags_id "
    "JOIN call_kinds k ON k.kind_id = f.kind_id",
    f"CREATE OR REPLACE VIEW spans AS SELECT {_SPANS_VIEW} FROM span_facts f JOIN runs r ON r.run_key = f.run_key "
    "JOIN places p ON p.place_id = f.place_id JOIN tag_sets t ON t.tags_id = f.tags_id",
]
"""The schema-version-1 wide rows, as views over the facts and dimensions."""

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


COMPRESSION = {("messages", "content"): "zstd", ("messages", "hash"): "uncompressed",
               ("prompts", "prompt_hash"): "uncompressed"}
"""Storage chosen per column where DuckDB's own choice measured worse (``bench_fleet.py --distinct``, 1M calls
whose runs do not repeat): message texts as zstd (2,623 -> 688 bytes per call on disk, and faster to load and
to scan); a content table's key is unique per row by definition (a hex hash: no scheme shrinks it, and
trying them cost the load ~10%). A DuckDB that cannot do this creates the plain table
(:func:`tokprof.fleet.ledger.connect`)."""


def ddl(compression: bool = True) -> list[str]:
    """CREATE TABLE statements for every table (idempotent); ``compression``: with :data:`COMPRESSION`."""
    out = []
    for name, schema in TABLES.items():
        cols = ", ".join(f'"{f.name}" {_SQL_TYPES[f.type]}' + (
            f" USING COMPRESSION {how}" if compression and (how := COMPRESSION.get((name, f.name))) else "")
            for f in schema)
        out.append(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
    out.append("CREATE TABLE IF NOT EXISTS files (path VARCHAR PRIMARY KEY, size BIGINT, mtime_ns BIGINT, "
               "sha1 VARCHAR, run_ids VARCHAR[], ingested_at TIMESTAMP)")
    out.append("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER, created_at TIMESTAMP)")
    return out + VIEWS


def create_tables(con: Any, *, views: bool = True) -> None:
    """Run :func:`ddl` on ``con`` (the views too unless ``views`` is false); a table whose column compression
    this DuckDB does not have is created plain (the column then gets DuckDB's own choice)."""
    import duckdb

    for stmt, plain in zip(ddl(), ddl(compression=False)):
        if not views and stmt.startswith("CREATE OR REPLACE VIEW"):
            continue
        try:
            con.execute(stmt)
        except duckdb.Error:
            if stmt == plain:
                raise
            con.execute(plain)


def arrow_array(values: Any, typ: "pa.DataType", pool: Any = None) -> "pa.Array":
    """``pa.array(values, typ)``, except that text holding a lone surrogate (JSON allows ``"\\ud800"``; Arrow
    and DuckDB want valid UTF-8) is stored with it escaped (``\\ud800``) instead of failing the ingest. The
    retry runs only when the fast path fails, so clean batches pay nothing."""
    try:
        return pa.array(values, typ, memory_pool=pool)
    except (UnicodeEncodeError, pa.ArrowInvalid):
        return pa.array([_escaped(v) for v in values], typ, memory_pool=pool)


def _escaped(v: Any) -> Any:
    if isinstance(v, str):
        return v.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(v, (list, tuple)):
        return type(v)(_escaped(x) for x in v)
    if isinstance(v, dict):
        return {_escaped(k): _escaped(x) for k, x in v.items()}
    return v


def times(ns: Any) -> pa.Array:
    """Wall-clock nanoseconds -> TIMESTAMP (microseconds), in Arrow."""
    return pc.divide(pa.array(ns, pa.int64()), 1000).cast(pa.timestamp("us"))


def time_cols(start: Any, end: Any, dur: Any) -> list[pa.Array]:
    """start_time, end_time, duration_ns, day from integer nanoseconds, in Arrow."""
    s = times(start)
    return [s, times(end), pa.array(dur, pa.int64()), pc.cast(s, pa.date32())]


def facts_table(cols: list[list[Any]], schema: pa.Schema, n_before_times: int) -> pa.Table:
    """A facts table from columns whose last three are start/end nanoseconds and duration."""
    arrays = [arrow_array(cols[i], schema.field(i).type) for i in range(n_before_times)]
    arrays += time_cols(cols[n_before_times], cols[n_before_times + 1], cols[n_before_times + 2])
    return pa.Table.from_arrays(arrays, schema=schema)


def rollback(con: Any) -> None:
    """ROLLBACK after a failed statement. DuckDB may have ended the transaction itself (a COMMIT whose write
    failed: disk full), and the ROLLBACK's own "no transaction is active" must not hide why."""
    try:
        con.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - the first error is the one raised
        pass
