"""The fleet ledger: runs loaded into an embedded DuckDB database, ``<runs folder>/ledger.duckdb``.

Ingest is idempotent and incremental: each source file is remembered with its path, size, mtime and sha1;
an unchanged file is skipped (same size and mtime: not even read; same content hash: only its mtime is
refreshed), a changed file has its runs' rows deleted and re-inserted. Rows arrive as Arrow tables and
are inserted in bulk (``INSERT ... SELECT * FROM arrow``), with the ledger's own dimension ids already in
them (:class:`tokprof.fleet.dims.Dims`). A ledger of an older schema version is migrated in place on the
first write (:mod:`tokprof.fleet.migrate`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import os
import re
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pyarrow as pa

from tokprof.fleet.dims import Dims
from tokprof.fleet.file_check import failure, truncation
from tokprof.fleet.migrate import MigrationError, migrate, stored_version
from tokprof.fleet.rows import RowBuilder
from tokprof.fleet.schema import FACTS, KEYS, SCHEMA_VERSION, create_tables, rollback
from tokprof.fleet.sources import file_error, file_sha1, load_source
from tokprof.profiler.model import Run
from tokprof.profiler.private_files import owner_only

LEDGER_NAME = "ledger.duckdb"
BATCH_CALLS = 100_000
"""Rows are flushed to DuckDB every this many calls: bounded memory whatever the fleet's size."""


class LedgerError(ValueError):
    """A ledger that cannot be opened or read (names the file and what to do)."""


def ledger_path(directory: str | Path | None = None) -> Path:
    """``<runs folder>/ledger.duckdb`` (runs folder: the argument, ``$TOKPROF_DIR`` or ``.tokprof/runs``)."""
    from tokprof.profiler.store import runs_dir

    return runs_dir(directory) / LEDGER_NAME


_MEMORY = re.compile(r"^\s*\d{1,7}(\.\d{1,3})?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)
DEFAULT_MEMORY = "512MB"


def memory_limit() -> str:
    """``$TOKPROF_LEDGER_MEMORY`` when it is a size (``2GB``), else the default with a warning: the value is
    put into SQL, so anything else (a quote and a second statement) must never reach DuckDB."""
    env = os.environ.get("TOKPROF_LEDGER_MEMORY")
    if env is None or not env.strip():
        return DEFAULT_MEMORY
    if _MEMORY.match(env):
        return env.strip()
    warnings.warn(f"tokprof: TOKPROF_LEDGER_MEMORY={env[:60]!r} is not a size such as 2GB; using "
                  f"{DEFAULT_MEMORY}", UserWarning, stacklevel=3)
    return DEFAULT_MEMORY


@contextlib.contextmanager
def opened(path: str | Path | None = None, *, read_only: bool = False) -> Iterator[Any]:
    """:func:`connect`, closed on the way out; a DuckDB error while the commands read or write it (a
    truncated or damaged file: ``IO Error: Could not read enough bytes``) is a :class:`LedgerError` naming
    the file, never a traceback (``tokprof -v`` shows the chained DuckDB error)."""
    import duckdb

    p = Path(path) if path is not None else ledger_path()
    con = connect(p, read_only=read_only)
    try:
        yield con
    except duckdb.Error as exc:
        raise LedgerError(failure(p, exc)) from exc
    finally:
        con.close()


def connect(path: str | Path | None = None, *, read_only: bool = False) -> Any:
    """Open (creating if needed) the ledger at ``path`` (default :func:`ledger_path`), schema checked."""
    import duckdb

    p = Path(path) if path is not None else ledger_path()
    try:
        return _connect(p, read_only)
    except duckdb.Error as exc:  # damaged past the header: found by the first statement that reads it
        raise LedgerError(failure(p, exc)) from exc


def _connect(p: Path, read_only: bool) -> Any:
    import duckdb

    if not read_only and p.is_symlink():  # the write would land wherever the link points, outside the runs folder
        raise LedgerError(f"{p}: the ledger path is a symbolic link; tokprof writes only the file itself: remove "
                          "the link or name the real file with --ledger")
    if read_only and not p.exists():
        raise LedgerError(f"{p}: no ledger yet; build it with `tokprof ingest`")
    if not read_only:
        p.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(p), read_only=read_only)
        if not read_only:  # the ledger holds the prompts: owner-only like the run files, wherever --ledger puts it
            owner_only(p)
            with contextlib.suppress(OSError):  # DuckDB writes into an existing WAL, keeping its mode
                os.close(os.open(f"{p}.wal", os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600))
            owner_only(Path(f"{p}.wal"))
    except duckdb.Error as exc:
        if "lock" in str(exc).lower():  # another tokprof (or a notebook) has it open: never advise deleting it
            raise LedgerError(f"{p}: the ledger is in use by another process ({exc}); wait for it to finish "
                              "and try again") from exc
        raise LedgerError(f"{p}: cannot open the ledger ({exc}); delete it and run `tokprof ingest` again") from exc
    # Bounded memory whatever the fleet's size (DuckDB spills beyond it); row order is not part of the
    # ledger's contract, and not preserving it makes bulk inserts cheaper.
    con.execute(f"SET memory_limit = '{memory_limit()}'")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")  # a long migration must not draw on the user's terminal
    damage = truncation(con, p)
    if damage:
        con.close()
        raise LedgerError(f"{p}: the ledger cannot be read ({damage}); delete it and run `tokprof ingest` again")
    if stored_version(con) is None and con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()").fetchall()[0][0]:
        con.close()  # another program's database (--ledger app.duckdb): never mix the ledger's tables into it
        raise LedgerError(f"{p}: a DuckDB database that is not a tokprof ledger (no schema_version table); "
                          "name another file with --ledger")
    if not read_only:
        old = stored_version(con)
        if old is not None and old != SCHEMA_VERSION:
            try:
                migrate(con, old)
            except MigrationError as exc:
                con.close()
                raise LedgerError(f"{p}: {exc}") from exc
        create_tables(con)
        row = con.execute("SELECT max(version) FROM schema_version").fetchall()[0]
        if row is None or row[0] is None:
            con.execute("INSERT INTO schema_version VALUES (?, ?)", [SCHEMA_VERSION, dt.datetime.now(dt.timezone.utc)
                                                                      .replace(tzinfo=None)])
    version = con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0]
    if version != SCHEMA_VERSION:
        con.close()
        hint = ("run `tokprof ingest` once to migrate it" if version < SCHEMA_VERSION
                else "it was written by a newer tokprof; upgrade tokprof")
        raise LedgerError(f"{p}: ledger schema version {version}, this tokprof reads {SCHEMA_VERSION}; {hint}")
    return con


def insert_tables(con: Any, tables: dict[str, pa.Table]) -> None:
    """Bulk-insert Arrow tables (ids already the ledger's); content-addressed tables (messages, prompts) only
    get new keys."""
    for name, table in tables.items():
        if table.num_rows == 0:
            continue
        con.register("_tokprof_batch", table)
        try:
            key = KEYS.get(name)
            if key is None:
                con.execute(f"INSERT INTO {name} SELECT * FROM _tokprof_batch")
            else:
                con.execute(f"INSERT INTO {name} SELECT * FROM _tokprof_batch b WHERE NOT EXISTS "
                            f"(SELECT 1 FROM {name} t WHERE t.{key} = b.{key})")
        finally:
            con.unregister("_tokprof_batch")


def record_files(con: Any, files: list[tuple[str, int, int, str, list[str]]]) -> None:
    """The ``files`` rows of what was just loaded (path, size, mtime, sha1, run ids, when), replacing old ones:
    the next ingest skips these files while they stay the same."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    for key, size, mtime, sha, ids in files:
        con.execute("DELETE FROM files WHERE path = ?", [key])
        con.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", [key, size, mtime, sha, ids, now])


def delete_runs(con: Any, run_ids: list[str]) -> None:
    """Remove every row of these runs (before re-ingesting a changed file, or a run seen again). Runs not in
    the ledger cost one look-up in ``runs``, not a scan of the facts (a fresh fleet ingest deletes nothing)."""
    if not run_ids:
        return
    con.register("_tokprof_ids", pa.table({"run_id": pa.array(run_ids, pa.string())}))
    try:
        keys = [r[0] for r in con.execute("SELECT run_key FROM runs WHERE run_id IN "
                                          "(SELECT run_id FROM _tokprof_ids)").fetchall()]
        if not keys:
            return
        con.register("_tokprof_keys", pa.table({"run_key": pa.array(keys, pa.int32())}))
        try:
            for name in FACTS:
                con.execute(f"DELETE FROM {name} WHERE run_key IN (SELECT run_key FROM _tokprof_keys)")
        finally:
            con.unregister("_tokprof_keys")
        for name in ("runs", "diagnostics"):
            con.execute(f"DELETE FROM {name} WHERE run_id IN (SELECT run_id FROM _tokprof_ids)")
    finally:
        con.unregister("_tokprof_ids")


@contextlib.contextmanager
def bulk_gc() -> Iterator[None]:
    """The cyclic garbage collector paused for a bulk ingest, what was alive before frozen out of its scans.

    Building a batch allocates a tuple per row; each of Python's automatic collections would rescan every
    live object, the caller's (a fleet of runs in memory) included: measured 1.3x slower row building and 2x
    slower batch conversion at 100,000 calls. Rows hold no cycles; :func:`_flush` collects once per batch
    (only what was made since the last flush is scanned), so cyclic garbage is still bounded by a batch."""
    was = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if was:
            gc.enable()


@dataclass
class IngestReport:
    """What one ingest did."""

    files_seen: int = 0
    files_skipped: int = 0
    files_ingested: int = 0
    runs: int = 0
    calls: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"files_seen": self.files_seen, "files_skipped": self.files_skipped,
                "files_ingested": self.files_ingested, "runs": self.runs, "calls": self.calls,
                "errors": list(self.errors)}


def file_change(con: Any, known: dict[str, tuple[Any, ...]], path: Path,
                rep: IngestReport) -> tuple[str, os.stat_result, tuple[Any, ...] | None, str] | None:
    """Whether ``path`` is new or changed, by the ledger's rules: the same size and mtime as recorded ->
    skipped unread; the same content hash -> only the mtime refreshed. ``None`` (counted as skipped) or
    ``(key, stat, the file's row or None, sha1)``; ``known`` is the ``files`` table by path."""
    key = str(path.resolve())
    st = path.stat()
    prev = known.get(key)
    if prev is not None and prev[0] == st.st_size and prev[1] == st.st_mtime_ns:
        rep.files_skipped += 1
        return None
    sha = file_sha1(path)
    if prev is not None and prev[2] == sha:
        con.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", [st.st_size, st.st_mtime_ns, key])
        rep.files_skipped += 1
        return None
    return key, st, prev, sha


@bulk_gc()
def ingest(con: Any, sources: Iterable[Path], *, diagnose: bool = True,
           loader: Callable[[Path], list[Run]] = load_source,
           progress: Callable[[Path], None] | None = None) -> IngestReport:
    """Ingest new or changed files into the ledger (see the module docstring). A file that cannot be read
    is reported by path and skipped; the rest go in."""
    rep = IngestReport()
    known = {row[0]: row[1:] for row in con.execute("SELECT path, size, mtime_ns, sha1, run_ids FROM files").fetchall()}
    builder = RowBuilder(diagnose=diagnose, dims=Dims.load(con))
    pending_files: list[tuple[str, int, int, str, list[str]]] = []
    stale: list[str] = []
    pending_ids: set[str] = set()
    for path in sources:
        rep.files_seen += 1
        if progress is not None:
            progress(path)
        change = file_change(con, known, path, rep)
        if change is None:
            continue
        key, st, prev, sha = change
        try:
            runs = loader(path)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a fleet ingest; it is named
            rep.errors.append(file_error(path, exc))
            continue
        if prev is not None:
            stale.extend(prev[3] or [])
        ids = [r.run_id for r in runs]
        if pending_ids.intersection(ids):
            # the same run id in an earlier file of this batch: flush it first, so that this file's rows
            # replace it (the delete of stale ids runs before the insert) rather than count it twice
            _flush(con, builder, pending_files, stale)
            pending_ids.clear()
        pending_ids.update(ids)
        stale.extend(ids)  # the same run may have come from another file before: the newest wins
        for run in runs:
            builder.add_run(run, key)
            rep.runs += 1
        rep.calls += sum(1 for r in runs for s in r.spans if s.llm is not None)
        pending_files.append((key, st.st_size, st.st_mtime_ns, sha, ids))
        rep.files_ingested += 1
        if builder.pending_calls() >= BATCH_CALLS:
            _flush(con, builder, pending_files, stale)
            pending_ids.clear()
    _flush(con, builder, pending_files, stale)
    return rep


def _flush(con: Any, builder: RowBuilder, files: list[tuple[str, int, int, str, list[str]]],
           stale: list[str], collect: bool = True) -> None:
    """One transaction: drop stale rows, insert the batch, record the files. ``collect=False``: the last
    flush of an ingest, whose builder (and its memos) is about to be dropped: collecting now would scan
    everything the ingest made only to find it alive (a fifth of a small ingest's time), and what it leaves
    is freed by reference counting or by the collector once re-enabled."""
    tables = builder.tables()
    con.execute("BEGIN")
    try:
        delete_runs(con, sorted(set(stale)))
        insert_tables(con, tables)
        record_files(con, files)
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    files.clear()
    stale.clear()
    del tables
    if not collect:
        return
    # see bulk_gc. The young generations only: with automatic collection off, everything made since the last
    # flush is young, and what survived earlier flushes (the builder's memos, the caller's runs) is not
    # rescanned each batch (a full collection per batch grew with the fleet); bulk_gc's exit re-enables the
    # collector, whose full collections still see it
    gc.collect(1)


@bulk_gc()
def ingest_runs(con: Any, runs: Iterable[Run], *, diagnose: bool = True, payloads: bool = True,
                batch_calls: int = BATCH_CALLS) -> int:
    """Ingest in-memory runs (no file bookkeeping); a run id already in the ledger is replaced.
    Returns the number of calls ingested."""
    builder = RowBuilder(diagnose=diagnose, payloads=payloads, dims=Dims.load(con))
    ids: list[str] = []
    total = 0
    for run in runs:
        builder.add_run(run)
        ids.append(run.run_id)
        if builder.pending_calls() >= batch_calls:
            total += builder.pending_calls()
            _flush(con, builder, [], ids)
            ids = []
    total += builder.pending_calls()
    _flush(con, builder, [], ids, collect=False)
    return total


def iter_table(con: Any, sql: str, params: list[Any] | None = None) -> Iterator[dict[str, Any]]:
    """Rows of a query as dicts (small results: tables for the console and JSON)."""
    cur = con.execute(sql, params or [])
    names = [d[0] for d in cur.description]
    for row in cur.fetchall():
        yield dict(zip(names, row))


def warn(msg: str) -> None:
    print(f"tokprof: warning: {msg}", file=sys.stderr)
