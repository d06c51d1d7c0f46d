"""``--engine ray``: the per-run work of an ingest on a Ray cluster, the ledger built from the Parquet
dataset the workers write.

Each Ray task takes a group of source files and does everything that is per run (import, local token
counting where usage is missing, the prefix-break billing replay, row building): :func:`tokprof.fleet.parts.file_rows`,
which writes its rows as Parquet files under ``<ledger>.parts/<table>/`` with dimension ids and run keys of
its own. The driver then loads that dataset into DuckDB in one transaction, part by part
(:func:`tokprof.fleet.parts.load_parts`, shared with the ``--jobs N`` process engine). The incremental
bookkeeping (which files are new or changed) stays on the driver, so every engine gives the same ledger
(``tests/test_fleet_ray.py`` compares them table by table).

Ray is an optional extra (``pip install tokprof[ray]``). Without ``--address`` a local cluster is started
with one worker per core; with an address, every node needs tokprof installed.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from tokprof.fleet.ledger import IngestReport
from tokprof.fleet.parts import file_rows, groups, load_parts, part_name, parts_dir, plan, settle

__all__ = ["file_rows", "load_parts", "ray_ingest", "start_ray", "connect_ray", "compare_engines", "RayConnectError"]


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
    todo = plan(con, sources, rep)
    if not todo:
        return rep
    ray = start_ray(address, num_cpus)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    parts = parts_dir(con)
    shutil.rmtree(parts, ignore_errors=True)
    remote = ray.remote(file_rows)
    planned = groups([t.path for t in todo], cpus * tasks_per_cpu)
    refs = [remote.remote(g, diagnose, str(parts)) for g in planned]
    by_path = {str(t.path): t for t in todo}
    # one transaction per group, in group order (as --jobs does): the ledger's memory stays that of one
    # part, and a failure later keeps the groups already loaded (their files are recorded with them)
    for g, batch in zip(planned, ray.get(refs)):
        files, stale = settle(rep, [by_path[p] for p in g], {r["path"]: r for r in batch})
        load_parts(con, parts, files, stale, [part_name(g)])
    shutil.rmtree(parts, ignore_errors=True)
    return rep


def compare_engines(corpus: Path, num_cpus: int = 2) -> dict[str, Any]:
    """The per-run work over the corpus trace files in one process vs on a local Ray cluster (for
    benchmarks/bench_fleet.py): wall seconds, and the CPU seconds the work took in its process or workers
    (the figure that holds on a shared machine)."""
    import tempfile

    from tokprof.commands.import_cmd import expand
    from tokprof.fleet.parts import timed_file_rows

    files = expand([str(corpus)])
    with tempfile.TemporaryDirectory() as tmp:
        largest = local_cpu = 0.0
        t = time.perf_counter()
        for f in files:
            one = timed_file_rows([str(f)], True, f"{tmp}/local")
            largest, local_cpu = max(largest, one["wall_s"]), local_cpu + one["cpu_s"]
        local = time.perf_counter() - t
        t = time.perf_counter()
        ray = start_ray(None, num_cpus)
        ray.get([ray.remote(lambda: 1).remote() for _ in range(num_cpus)])  # workers up
        start = time.perf_counter() - t
        remote = ray.remote(timed_file_rows)
        t = time.perf_counter()
        results = ray.get([remote.remote(g, True, f"{tmp}/ray") for g in groups(files, num_cpus * 2)])
        on_ray = time.perf_counter() - t
        ray.shutdown()
    runs = sum(len(r.get("runs", [])) for batch in results for r in batch["records"])
    calls = sum(batch["calls"] for batch in results)
    return {"files": len(files), "runs": runs, "calls": calls, "local_s": local, "local_cpu_s": local_cpu,
            "ray_s": on_ray, "ray_cpu_s": sum(b["cpu_s"] for b in results), "ray_start_s": start,
            "workers": num_cpus, "largest_file_s": largest, "tasks": len(results)}
