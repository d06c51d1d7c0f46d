"""What the scale-out engines share: the per-run work of a group of files written as a Parquet part, and
the driver's side (which files are new or changed, loading parts into the ledger).

Both ``--engine ray`` (:mod:`tokprof.fleet.ray_engine`) and ``--jobs N`` (:mod:`tokprof.fleet.process_engine`)
run :func:`file_rows` away from the driver: import (run files, or other tools' traces through the
importers), local token counting where usage is missing, the prefix-break billing replay and row building,
with dimension ids and run keys local to the part. The driver keeps the incremental bookkeeping
(:func:`plan`, the same rules as :func:`tokprof.fleet.ledger.ingest`) and loads parts with
:func:`load_parts`, each part's ids mapped to the ledger's by natural key (:meth:`tokprof.fleet.dims.Dims.remap`).
So every engine gives the same ledger (``tests/test_fleet_ray.py``, ``tests/test_fleet_jobs.py``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from tokprof.fleet.ledger import IngestReport, file_change
from tokprof.fleet.schema import KEYS, TABLES, rollback

FileRecord = tuple[str, int, int, str, list[str]]
"""A ``files`` row before its ingest time: (resolved path, size, mtime_ns, sha1, run ids)."""


def part_name(paths: list[str]) -> str:
    """The part file of a group, named by its files: parts load in a fixed order, so the ledger's ids do
    not depend on which worker finished first."""
    return f"part-{hashlib.sha1(chr(10).join(paths).encode()).hexdigest()[:12]}.parquet"


def file_rows(paths: list[str], diagnose: bool, out_dir: str) -> list[dict[str, Any]]:
    """The per-run work for some files (in a Ray worker, a worker process, or in-process): rows written as
    Parquet under ``out_dir/<table>/``; returns one record per file (its runs and calls, or its error)."""
    import pyarrow.parquet as pq

    from tokprof.fleet.sources import file_error, load_source
    from tokprof.fleet.rows import RowBuilder

    builder = RowBuilder(diagnose=diagnose)
    done: list[dict[str, Any]] = []
    for raw in paths:
        path = Path(raw)
        try:
            runs = load_source(path)
        except Exception as exc:  # noqa: BLE001 - named in the report, the other files go on
            done.append({"path": raw, "error": file_error(path, exc)})
            continue
        key = str(path.resolve())
        for run in runs:
            builder.add_run(run, key)
        done.append({"path": raw, "runs": [r.run_id for r in runs],
                     "calls": sum(1 for r in runs for s in r.spans if s.llm is not None)})
    name = part_name(paths)
    for table_name, table in builder.tables().items():
        if table.num_rows:
            d = Path(out_dir) / table_name
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, d / name, compression="zstd")
    return done


def groups(paths: list[Path], n: int) -> list[list[str]]:
    """Files into ``n`` groups of similar total size (largest first, each to the lightest group); the
    heaviest group first, so that it starts first (a late large group would leave the other workers idle)."""
    out: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(1, n))]
    for p in sorted(paths, key=lambda p: p.stat().st_size, reverse=True):
        out.sort(key=lambda g: g[0])
        size, items = out[0]
        out[0] = (size + p.stat().st_size, items + [str(p)])
    return [items for _, items in sorted(out, key=lambda g: -g[0]) if items]


def group_count(paths: list[Path], workers: int, per_worker: int, max_bytes: int) -> int:
    """How many groups: ``per_worker`` per worker (a slow group does not idle the others), more when the
    files are large (a worker holds one group's rows in memory), never more than the files."""
    total = sum(p.stat().st_size for p in paths)
    return max(1, min(len(paths), max(workers * per_worker, math.ceil(total / max_bytes))))


@dataclass
class Todo:
    """A new or changed file to ingest."""

    path: Path
    key: str        # resolved path: the ``files`` table's key
    size: int
    mtime_ns: int
    sha1: str
    prev_runs: list[str]  # run ids the file gave last time (their rows are replaced)


def plan(con: Any, sources: Iterable[Path], rep: IngestReport) -> list[Todo]:
    """The files to ingest, by the single-process rules: same size and mtime as recorded -> skipped unread;
    same content hash -> only the mtime refreshed; else new or changed. Counts them in ``rep``."""
    known = {r[0]: r[1:] for r in con.execute("SELECT path, size, mtime_ns, sha1, run_ids FROM files").fetchall()}
    todo: list[Todo] = []
    for path in sources:
        rep.files_seen += 1
        change = file_change(con, known, path, rep)
        if change is None:
            continue
        key, st, prev, sha = change
        todo.append(Todo(path, key, st.st_size, st.st_mtime_ns, sha, list(prev[3] or []) if prev else []))
    return todo


def settle(rep: IngestReport, todo: list[Todo], results: dict[str, dict[str, Any]]) -> tuple[list[FileRecord],
                                                                                               list[str]]:
    """Worker records (by source path, as given) into the report; returns the files to record and the run
    ids whose old rows go. A file with no record (its worker died) is not counted here."""
    files: list[FileRecord] = []
    stale: list[str] = []
    for t in todo:
        r = results.get(str(t.path))
        if r is None:
            continue
        if "error" in r:
            rep.errors.append(r["error"])
            continue
        stale.extend(t.prev_runs)
        stale.extend(r["runs"])  # the same run may have come from another file before: the newest wins
        rep.runs += len(r["runs"])
        rep.calls += r["calls"]
        rep.files_ingested += 1
        files.append((t.key, t.size, t.mtime_ns, t.sha1, r["runs"]))
    return files, stale


def parts_dir(con: Any) -> Path:
    """``<ledger file>.parts``: the workers' Parquet dataset, next to the ledger."""
    db = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    base = Path(db[0][0]) if db and db[0][0] else Path.cwd() / "ledger.duckdb"
    return base.with_name(base.name + ".parts")


def part_names(parts: Path) -> list[str]:
    """Every part file in the dataset, in name order."""
    return sorted({f.name for name in TABLES if (parts / name).is_dir() for f in (parts / name).glob("*.parquet")})


def load_parts(con: Any, parts: Path, files: list[FileRecord], stale: list[str],
               names: list[str] | None = None) -> int:
    """One transaction: drop stale runs, load the parts ``names`` (default: all, in name order), each's ids
    mapped to the ledger's, record the files. Returns the calls loaded."""
    import pyarrow.parquet as pq

    from tokprof.fleet.dims import Dims
    from tokprof.fleet.ledger import delete_runs, insert_tables, record_files

    names = part_names(parts) if names is None else names
    calls = 0
    con.execute("BEGIN")
    try:
        delete_runs(con, sorted(set(stale)))
        dims = Dims.load(con)
        for part in names:  # in a fixed order, so the ledger's ids do not depend on which worker finished first
            # ParquetFile.read: one file, none of read_table's dataset machinery (half the CPU per part)
            tables = {name: pq.ParquetFile(parts / name / part).read() for name in TABLES
                      if name not in KEYS and (parts / name / part).is_file()}
            calls += tables["call_facts"].num_rows if "call_facts" in tables else 0
            insert_tables(con, dims.remap(tables))
            for name, key in KEYS.items():
                if (parts / name / part).is_file():
                    insert_content(con, name, key, parts / name / part)
        record_files(con, files)
        con.execute("COMMIT")
    except Exception:
        rollback(con)
        raise
    return calls


def insert_content(con: Any, table: str, key: str, path: Path) -> None:
    """A content-addressed table's part (messages, prompts: nothing to remap) read by DuckDB itself, in
    row groups under the ledger's memory limit: through Arrow, a part's message texts were all held in this
    process at once (about 900 MB for a part of 100,000 calls whose messages do not repeat). The same
    message may come from several workers: only keys not yet stored are inserted."""
    con.execute(f"INSERT INTO {table} SELECT * FROM read_parquet(?) b WHERE NOT EXISTS "
                f"(SELECT 1 FROM {table} t WHERE t.{key} = b.{key})", [str(path)])


def remove_part(parts: Path, name: str) -> None:
    """Delete one loaded part's files (disk stays bounded by the parts in flight)."""
    for table in TABLES:
        (parts / table / name).unlink(missing_ok=True)


def timed_file_rows(paths: list[str], diagnose: bool, out_dir: str) -> dict[str, Any]:
    """:func:`file_rows` with the CPU and wall seconds it took in its worker (for benchmarks/bench_fleet.py:
    the per-worker rate in CPU seconds does not depend on how loaded the machine is)."""
    import time

    t, c = time.perf_counter(), time.process_time()
    records = file_rows(paths, diagnose, out_dir)
    return {"records": records, "cpu_s": time.process_time() - c, "wall_s": time.perf_counter() - t,
            "calls": sum(r.get("calls", 0) for r in records)}


def warm_up() -> float:
    """Import what the per-run work needs (a worker's start-up, not per-run work); returns the seconds."""
    import time

    t = time.perf_counter()
    import pyarrow.parquet  # noqa: F401

    import tokprof.fleet.ledger  # noqa: F401
    import tokprof.fleet.rows  # noqa: F401
    import tokprof.run_files  # noqa: F401
    return time.perf_counter() - t
