"""Is a ledger file whole, and what a DuckDB error on it means. DuckDB reads blocks lazily, so a ledger cut short (a copy that stopped, a full
disk) opens and answers every query whose tables lie before the cut: `stats` gave totals while `stats --by
tag:team` failed on the same file. The file's header says how many blocks it has; a file shorter than that
is refused before any query, by name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

HEADER_BYTES = 3 * 4096
"""DuckDB's main header and its two database headers, before the first block (storage format since 0.10:
https://duckdb.org/docs/stable/internals/storage)."""


def truncation(con: Any, path: Path) -> str | None:
    """Why the ledger at ``path`` is not whole, or ``None``. A WAL left by a crash is replayed in memory by
    a read-only open (its blocks are not in the file yet): then the check cannot tell, and is skipped."""
    try:
        if os.path.getsize(f"{path}.wal") > 0:
            return None
    except OSError:
        pass
    cur = con.execute("PRAGMA database_size")
    row = dict(zip([d[0] for d in cur.description], cur.fetchone()))
    try:
        expected = HEADER_BYTES + int(row["block_size"]) * int(row["total_blocks"])
        size = os.path.getsize(path)
    except (KeyError, TypeError, ValueError, OSError):
        return None  # another DuckDB's columns, or no file (in memory): nothing to compare
    if size < expected:
        return f"the file is cut short ({size:,} of the {expected:,} bytes its header describes)"
    return None


def failure(path: Path, exc: Exception) -> str:
    """One line for a DuckDB error on the ledger: only damage (I/O, a block that does not deserialize)
    advises rebuilding; a query error (binder, conversion: a flag such as ``--limit -5``) or a failed write
    (disk full: the transaction error names it) must never tell the user to delete a good ledger."""
    import duckdb

    first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    if isinstance(exc, (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException,
                        duckdb.FatalException)):
        return f"{path}: the ledger cannot be read ({first}); delete it and run `tokprof ingest` again"
    return f"{path}: the query on the ledger failed ({first})"
