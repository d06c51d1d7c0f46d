"""Upgrading a ledger written by an older tokprof, in place, in one transaction (nothing is re-read from
the source files, which may be gone: the ledger's rows are the record).

Version 1 -> 2: the wide ``calls`` and ``spans`` tables become narrow facts (``call_facts``, ``span_facts``)
keyed into the new dimension tables ``places`` and ``call_kinds``, and ``runs`` gains the integer
``run_key``; ``calls`` and ``spans`` are then views giving exactly the old rows. Version 1 did not store a
call's depth: it is its parent span's depth + 1 (0 at the root). Version 1 spans did not store the
agent/function/tool above them either (only calls did); their places keep those empty, which the ``spans``
view never shows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tokprof.fleet.schema import KIND_FIELDS, SCHEMA_VERSION, create_tables, rollback


class MigrationError(ValueError):
    """A ledger that cannot be migrated (the ledger module names the file)."""


def stored_version(con: Any) -> int | None:
    """The ledger's schema version, or ``None`` for a new (empty) database."""
    has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version' "
                      "AND table_schema = current_schema()").fetchall()[0][0]
    if not has:
        return None
    return con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]


def migrate(con: Any, version: int) -> None:
    """Bring a ledger at ``version`` to :data:`SCHEMA_VERSION` (one transaction: all or nothing)."""
    if version > SCHEMA_VERSION:
        return  # newer than this tokprof: connect() refuses it with a message
    if version != 1:
        raise MigrationError(f"ledger schema version {version} cannot be migrated; delete the file and run "
                          f"`tokprof ingest` again")
    con.execute("BEGIN")
    try:
        _v1_to_v2(con)
        con.execute("DELETE FROM schema_version")
        con.execute("INSERT INTO schema_version VALUES (?, ?)",
                    [SCHEMA_VERSION, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)])
        con.execute("COMMIT")
    except Exception as exc:
        rollback(con)
        raise MigrationError(f"migrating the ledger from schema version 1 failed ({exc}); it is unchanged") from exc


def _v1_to_v2(con: Any) -> None:
    for t in ("calls", "spans", "runs"):
        con.execute(f"ALTER TABLE {t} RENAME TO {t}_v1")
    create_tables(con, views=False)
    con.execute("INSERT INTO runs SELECT (row_number() OVER (ORDER BY run_id) - 1)::INTEGER, * FROM runs_v1")
    # every distinct place of a call or span (a call's depth: its parent span's + 1)
    con.execute("""
        CREATE TEMP TABLE _calls AS
        SELECT c.*, CASE WHEN c.parent_id IS NULL THEN 0
                         ELSE coalesce(s.depth + 1, length(c.path) - length(replace(c.path, '/', ''))) END::INTEGER
                    AS depth, c.tags::VARCHAR AS tags_text
        FROM calls_v1 c LEFT JOIN spans_v1 s ON s.run_id = c.run_id AND s.span_id = c.parent_id""")
    con.execute("""
        CREATE TEMP TABLE _places AS
        SELECT (row_number() OVER () - 1)::INTEGER AS place_id, *
        FROM (SELECT DISTINCT path, depth, agent, function, tool FROM _calls
              UNION SELECT DISTINCT path, depth, NULL, NULL, NULL FROM spans_v1)""")
    con.execute("INSERT INTO places SELECT place_id, path, depth, agent, function, tool FROM _places")
    # tags compared by their text (a MAP is not a join key)
    con.execute("""
        CREATE TEMP TABLE _tags AS
        SELECT (row_number() OVER () - 1)::INTEGER AS tags_id, tags, tags_text
        FROM (SELECT DISTINCT ON (tags_text) tags, tags_text
              FROM (SELECT tags, tags_text FROM _calls UNION ALL SELECT tags, tags::VARCHAR FROM spans_v1))""")
    con.execute("INSERT INTO tag_sets SELECT tags_id, tags FROM _tags")
    kinds = ", ".join(KIND_FIELDS)
    con.execute(f"CREATE TEMP TABLE _kinds AS SELECT (row_number() OVER () - 1)::INTEGER AS kind_id, * "
                f"FROM (SELECT DISTINCT {kinds} FROM calls_v1)")
    con.execute(f"INSERT INTO call_kinds SELECT kind_id, {kinds} FROM _kinds")
    same_kind = " AND ".join(f"k.{f} IS NOT DISTINCT FROM c.{f}" for f in KIND_FIELDS)
    con.execute(f"""
        INSERT INTO call_facts
        SELECT r.run_key, c.span_id, c.parent_id, p.place_id, t.tags_id, k.kind_id, c.input_tokens,
               c.output_tokens, c.cache_read_tokens, c.cache_write_tokens, c.cache_write_1h_tokens,
               c.reasoning_tokens, c.cost_usd, c.cost_cny, c.prompt_hash, c.output_hash, c.start_time, c.end_time,
               c.duration_ns, c.day
        FROM _calls c
        JOIN runs r ON r.run_id = c.run_id
        JOIN _kinds k ON {same_kind}
        JOIN _tags t ON t.tags_text IS NOT DISTINCT FROM c.tags_text
        JOIN _places p ON p.path IS NOT DISTINCT FROM c.path AND p.depth = c.depth
             AND p.agent IS NOT DISTINCT FROM c.agent AND p.function IS NOT DISTINCT FROM c.function
             AND p.tool IS NOT DISTINCT FROM c.tool""")
    con.execute("""
        INSERT INTO span_facts
        SELECT r.run_key, s.span_id, s.parent_id, p.place_id, t.tags_id, s.kind, s.name, s.status, s.start_time,
               s.end_time, s.duration_ns, s.day
        FROM spans_v1 s JOIN runs r ON r.run_id = s.run_id
        JOIN _tags t ON t.tags_text IS NOT DISTINCT FROM s.tags::VARCHAR
        JOIN _places p ON p.path IS NOT DISTINCT FROM s.path AND p.depth IS NOT DISTINCT FROM s.depth
             AND p.agent IS NULL AND p.function IS NULL AND p.tool IS NULL""")
    moved = con.execute("SELECT (SELECT count(*) FROM calls_v1) = (SELECT count(*) FROM call_facts) AND "
                        "(SELECT count(*) FROM spans_v1) = (SELECT count(*) FROM span_facts)").fetchall()[0][0]
    if not moved:  # nothing lost: a row that found no place or kind would vanish here
        raise ValueError("row counts differ after the move")
    for t in ("calls_v1", "spans_v1", "runs_v1", "_calls", "_places", "_tags", "_kinds"):
        con.execute(f"DROP TABLE {t}")
