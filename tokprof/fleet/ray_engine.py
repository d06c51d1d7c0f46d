"""``--engine ray``: the per-run work of an ingest on a Ray cluster, the ledger built from the Parquet
dataset the workers write.

Each Ray task takes a group of source files and does everything that is per run: import (run files, or
other tools' traces through the importers), local token counting where usage is missing, the prefix-break
billing replay, and row building; it writes its rows as Parquet files under
``<ledger>.parts/<table>/``, with dimension ids and run keys of its own. The driver then loads that dataset
into DuckDB in one transaction, part by part: each part's ids are mapped to the ledger's by natural key
(:meth:`tokprof.fleet.dims.Dims.remap`), content-addressed tables de-duplicated across workers.
The incremental bookkeeping (which files are new or changed) stays on the driver, so both engines give the
same ledger (``tests/test_fleet_ray.py`` compares them table by table).

Ray is an optional extra (``pip install tokprof[ray]``). Without ``--address`` a local cluster is started
with one worker per core; with an address, every node needs tokprof installed.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from tokprof.fleet.ledger import IngestReport, file_sha1
from tokprof.fleet.schema import TABLES


def file_rows(paths: list[str], diagnose: bool, out_dir: str) -> list[dict[str, Any]]:
    """The per-run work for some files (runs in a Ray worker, or in-process): rows written as Parquet
    under ``out_dir/<table>/``; returns one record per file (its runs, calls, or its error)."""
    import pyarrow.parquet as pq

    from tokprof.fleet.ledger import load_source
    from tokprof.fleet.rows import RowBuilder

    builder = RowBuilder(diagnose=diagnose)
    done: list[dict[str, Any]] = []
    for raw in paths:
        path = Path(raw)
        try:
            runs = load_source(path)
        except Exception as exc:  # noqa: BLE001 - named in the report, the other files go on
            done.append({"path": raw, "error": f"{path}: {exc}"})
            continue
        key = str(path.resolve())
        for run in runs:
            builder.add_run(run, key)
        done.append({"path": raw, "runs": [r.run_id for r in runs],
                     "calls": sum(1 for r in runs for s in r.spans if s.llm is not None)})
    # named by its files: the driver loads parts in name order, so the ledger's ids do not depend on which
    # worker finished first
    part = hashlib.sha1("\n".join(paths).encode()).hexdigest()[:12]
    for name, table in builder.tables().items():
        if table.num_rows:
            d = Path(out_dir) / name
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, d / f"part-{part}.parquet", compression="zstd")
    return done


def _groups(paths: list[Path], n: int) -> list[list[str]]:
    """Files into ``n`` groups of similar total size (largest first, each to the lightest group)."""
    groups: list[tuple[int, list[str]]] = [(0, []) for _ in range(max(1, n))]
    for p in sorted(paths, key=lambda p: p.stat().st_size, reverse=True):
        groups.sort(key=lambda g: g[0])
        size, items = groups[0]
        groups[0] = (size + p.stat().st_size, items + [str(p)])
    return [items for _, items in groups if items]


CONNECT_TIMEOUT_ENV = "TOKPROF_RAY_CONNECT_TIMEOUT"
"""Seconds to wait for a Ray cluster at ``--address`` to answer (default :data:`CONNECT_TIMEOUT_S`)."""
CONNECT_TIMEOUT_S = 30.0


class RayConnectError(ValueError):
    """No Ray cluster answered at the address given (a one-line CLI error, not a hang)."""


def _connect_timeout() -> float:
    try:
        value = float(os.environ.get(CONNECT_TIMEOUT_ENV) or CONNECT_TIMEOUT_S)
    except ValueError:
        return CONNECT_TIMEOUT_S
    return value if math.isfinite(value) and value > 0 else CONNECT_TIMEOUT_S


def _host_port(address: str) -> tuple[str, int] | None:
    """``(host, port)`` of a ``host:port`` or ``ray://host:port`` address; ``None`` for ``auto`` and the like."""
    rest = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]") or "127.0.0.1", int(port)


def connect_ray(ray: Any, address: str, timeout: float | None = None) -> None:
    """``ray.init(address=...)``, bounded: Ray itself retries a silent address for well over ten minutes.

    First a plain TCP connect (nothing listening fails in milliseconds with the reason); then ``ray.init``
    in a daemon thread, given ``timeout`` seconds (something listening that is not a Ray head never
    answers). A thread left waiting is a daemon: it does not keep the process alive."""
    timeout = _connect_timeout() if timeout is None else timeout
    hp = _host_port(address)
    if hp is not None:
        try:
            socket.create_connection(hp, timeout=timeout).close()
        except OSError as exc:
            raise RayConnectError(f"no Ray cluster at {address} ({exc.strerror or exc}); start one with "
                                  "`ray start --head`, or omit --address to start a local cluster") from None
    failure: list[BaseException] = []

    def init() -> None:
        try:
            ray.init(address=address, log_to_driver=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=init, name="tokprof-ray-connect", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise RayConnectError(f"no Ray cluster answered at {address} within {timeout:g} s (something listens "
                              f"there, but not a Ray head?); set ${CONNECT_TIMEOUT_ENV} to wait longer")
    if failure:
        raise RayConnectError(f"cannot connect to the Ray cluster at {address}: "
                              f"{type(failure[0]).__name__}: {str(failure[0])[:300]}") from None


def start_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to ``address`` (bounded: :func:`connect_ray`), or start a local cluster (no dashboard);
    returns the ``ray`` module."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - the extra is not installed
        raise ValueError("--engine ray needs Ray: pip install 'tokprof[ray]'") from exc
    if not ray.is_initialized():
        if address:
            connect_ray(ray, address)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return ray


def ray_ingest(con: Any, sources: Iterable[Path], *, address: str | None = None, diagnose: bool = True,
               num_cpus: int | None = None, tasks_per_cpu: int = 2) -> IngestReport:
    """:func:`tokprof.fleet.ledger.ingest` with the per-run work on Ray (same incremental rules)."""
    rep = IngestReport()
    known = {r[0]: r[1:] for r in con.execute("SELECT path, size, mtime_ns, sha1, run_ids FROM files").fetchall()}
    todo: list[tuple[Path, str, int, int, str, Any]] = []
    for path in sources:
        rep.files_seen += 1
        key = str(path.resolve())
        st = path.stat()
        prev = known.get(key)
        if prev is not None and prev[0] == st.st_size and prev[1] == st.st_mtime_ns:
            rep.files_skipped += 1
            continue
        sha = file_sha1(path)
        if prev is not None and prev[2] == sha:
            con.execute("UPDATE files SET size = ?, mtime_ns = ? WHERE path = ?", [st.st_size, st.st_mtime_ns, key])
            rep.files_skipped += 1
            continue
        todo.append((path, key, st.st_size, st.st_mtime_ns, sha, prev))
    if not todo:
        return rep
    ray = start_ray(address, num_cpus)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    parts = _parts_dir(con)
    shutil.rmtree(parts, ignore_errors=True)
    remote = ray.remote(file_rows)
    refs = [remote.remote(g, diagnose, str(parts)) for g in _groups([t[0] for t in todo], cpus * tasks_per_cpu)]
    results = {r["path"]: r for batch in ray.get(refs) for r in batch}
    stale: list[str] = []
    files = []
    for path, key, size, mtime, sha, prev in todo:
        r = results[str(path)]
        if "error" in r:
            rep.errors.append(r["error"])
            continue
        if prev is not None:
            stale.extend(prev[3] or [])
        stale.extend(r["runs"])
        rep.runs += len(r["runs"])
        rep.calls += r["calls"]
        rep.files_ingested += 1
        files.append((key, size, mtime, sha, r["runs"]))
    load_parts(con, parts, files, stale)
    shutil.rmtree(parts, ignore_errors=True)
    return rep


def _parts_dir(con: Any) -> Path:
    """``<ledger file>.parts``: the workers' Parquet dataset, next to the ledger."""
    db = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    base = Path(db[0][0]) if db and db[0][0] else Path.cwd() / "ledger.duckdb"
    return base.with_name(base.name + ".parts")


def load_parts(con: Any, parts: Path, files: list[tuple[str, int, int, str, list[str]]], stale: list[str]) -> None:
    """One transaction: drop stale runs, load each worker's part (its ids mapped to the ledger's), record the
    files."""
    import datetime as dt

    import pyarrow.parquet as pq

    from tokprof.fleet.dims import Dims
    from tokprof.fleet.ledger import delete_runs, insert_tables

    names = sorted({f.name for name in TABLES if (parts / name).is_dir() for f in (parts / name).glob("*.parquet")})
    con.execute("BEGIN")
    try:
        delete_runs(con, sorted(set(stale)))
        dims = Dims.load(con)
        for part in names:  # in a fixed order, so the ledger's ids do not depend on which worker finished first
            tables = {name: pq.read_table(parts / name / part) for name in TABLES if (parts / name / part).is_file()}
            # the same message may come from several workers: insert_tables keeps the first
            insert_tables(con, dims.remap(tables))
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        for key, size, mtime, sha, ids in files:
            con.execute("DELETE FROM files WHERE path = ?", [key])
            con.execute("INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)", [key, size, mtime, sha, ids, now])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def compare_engines(corpus: Path, num_cpus: int = 2) -> dict[str, Any]:
    """Wall time of the per-run work over the corpus trace files in one process vs on a local Ray cluster
    (for benchmarks/bench_fleet.py)."""
    import tempfile

    from tokprof.commands.import_cmd import expand

    files = expand([str(corpus)])
    with tempfile.TemporaryDirectory() as tmp:
        largest = 0.0
        t = time.perf_counter()
        for f in files:
            t1 = time.perf_counter()
            file_rows([str(f)], True, f"{tmp}/local")
            largest = max(largest, time.perf_counter() - t1)
        local = time.perf_counter() - t
        t = time.perf_counter()
        ray = start_ray(None, num_cpus)
        ray.get(ray.remote(lambda: 1).remote())  # workers up
        start = time.perf_counter() - t
        remote = ray.remote(file_rows)
        t = time.perf_counter()
        results = ray.get([remote.remote(g, True, f"{tmp}/ray") for g in _groups(files, num_cpus * 2)])
        on_ray = time.perf_counter() - t
        ray.shutdown()
    runs = sum(len(r.get("runs", [])) for batch in results for r in batch)
    return {"files": len(files), "runs": runs, "local_s": local, "ray_s": on_ray, "ray_start_s": start,
            "workers": num_cpus, "largest_file_s": largest}
