"""``tokprof ingest --jobs N``: the per-run work of new or changed files in N local worker processes.

The cold per-run work (import, pricing, the as-paid cache simulation, hashing, row building) is pure
Python: one process uses one core. Here it runs in a :class:`concurrent.futures.ProcessPoolExecutor`
(``spawn`` start method: no DuckDB connection or thread state is forked into a worker, and it behaves the
same on Linux, macOS and Windows). Workers run :func:`tokprof.fleet.parts.file_rows` on groups of files and
write Parquet parts; the driver loads each group's part as soon as it and every group before it are done
(:func:`tokprof.fleet.parts.load_parts`: the same loader as ``--engine ray``), one transaction per group, so
loading overlaps the workers and the ledger's ids do not depend on which worker finished first.

Failures:

* a file that cannot be read is named in the report (as in the one-process path); the others land;
* a worker process that dies (killed, out of memory, a crash in a native library) breaks the pool: groups
  already loaded stay committed; the files of the lost groups are retried one by one in a fresh
  one-worker pool, so the file that kills a worker is found, named in the report ("the worker process
  died while reading it") and left out of ``files`` (a later ingest tries it again); the rest land. Every
  wait is on a future that a dead worker fails, so this never hangs;
* workers that die as they start (a broken environment; under ``spawn``, a script without an
  ``if __name__ == "__main__":`` guard) raise :class:`WorkerStartError` once, not an error per file.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Callable, Iterable

from tokprof.fleet.ledger import IngestReport
from tokprof.fleet.parts import (Todo, file_rows, group_count, groups, load_parts, part_name, parts_dir, plan,
                                 remove_part, settle)

GROUPS_PER_WORKER = 4
"""Groups per worker: a slow group (one large file) does not leave the other workers idle at the end."""
GROUP_BYTES = 64 << 20
"""At most about this much source per group: a worker holds one group's rows in memory."""

Worker = Callable[[list[str], bool, str], list[dict[str, Any]]]
Progress = Callable[[int, int, int], None]
"""``progress(files_done, files_total, calls_loaded)``, called on the driver after each group loads."""


class WorkerStartError(ValueError):
    """Worker processes die before doing any work (a broken environment, not a bad file): one clear error
    instead of every file blamed in turn."""


def resolve_jobs(jobs: int) -> int:
    """``--jobs``: 0 means one per core."""
    if jobs < 0:
        raise ValueError(f"--jobs must be 0 (one per core) or more, not {jobs}")
    return jobs or os.cpu_count() or 1


class _Loader:
    """The driver's side: loads finished groups in group order, keeps the report."""

    def __init__(self, con: Any, rep: IngestReport, todo: list[Todo], parts: Path,
                 progress: Progress | None) -> None:
        self.con, self.rep, self.parts, self.progress = con, rep, parts, progress
        self.by_path = {str(t.path): t for t in todo}
        self.order = {str(t.path): i for i, t in enumerate(todo)}
        self.errors: list[tuple[int, str]] = []  # (file's place in the sources, message)
        self.total = len(todo)
        self.done_files = 0

    def load(self, paths: list[str], records: list[dict[str, Any]]) -> None:
        todo = [self.by_path[p] for p in paths]
        results = {r["path"]: r for r in records}
        before = len(self.rep.errors)
        files, stale = settle(self.rep, todo, results)
        failed = [t for t in todo if "error" in results.get(str(t.path), {})]
        self.errors.extend((self.order[str(t.path)], e) for t, e in zip(failed, self.rep.errors[before:]))
        del self.rep.errors[before:]
        name = part_name(paths)
        load_parts(self.con, self.parts, files, stale, [name])
        remove_part(self.parts, name)
        self.tick(len(paths))

    def fail(self, paths: list[str], why: str) -> None:
        self.errors.extend((self.order[p], f"{p}: {why}; not ingested (a later ingest tries it again)")
                           for p in paths)
        self.tick(len(paths))

    def finish(self) -> None:
        """The errors into the report in the order of the sources, as the one-process path gives them."""
        self.rep.errors.extend(e for _, e in sorted(self.errors, key=lambda x: x[0]))

    def tick(self, n: int) -> None:
        self.done_files += n
        if self.progress is not None:
            self.progress(self.done_files, self.total, self.rep.calls)


def process_ingest(con: Any, sources: Iterable[Path], *, jobs: int = 0, diagnose: bool = True,
                   progress: Progress | None = None, worker: Worker = file_rows) -> IngestReport:
    """:func:`tokprof.fleet.ledger.ingest` with the per-run work in ``jobs`` worker processes (0: one per
    core); same incremental rules, same ledger. ``worker`` must be a module-level function (it is pickled
    by name into the workers); tests pass one that crashes."""
    workers = resolve_jobs(jobs)
    rep = IngestReport()
    todo = plan(con, sources, rep)
    if not todo:
        return rep
    parts = parts_dir(con)
    shutil.rmtree(parts, ignore_errors=True)
    paths = [t.path for t in todo]
    plan_groups = groups(paths, group_count(paths, workers, GROUPS_PER_WORKER, GROUP_BYTES))
    loader = _Loader(con, rep, todo, parts, progress)
    try:
        lost = _run_groups(loader, plan_groups, min(workers, len(plan_groups)), diagnose, worker)
        if lost:
            _isolate(loader, lost, diagnose, worker)
    finally:
        loader.finish()
        shutil.rmtree(parts, ignore_errors=True)
    return rep


def _pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def _run_groups(loader: _Loader, plan_groups: list[list[str]], workers: int, diagnose: bool,
                worker: Worker) -> list[str]:
    """Every group through the pool, each loaded in group order once done; returns the files of the groups
    a dead worker took with it (to be isolated), in group order."""
    pool = _pool(workers)
    lost: list[str] = []
    try:
        futures: list[Future[list[dict[str, Any]]]] = [
            pool.submit(worker, g, diagnose, str(loader.parts)) for g in plan_groups]
        for group, fut in zip(plan_groups, futures):  # in order: a later group waits for the earlier to load
            try:
                records = fut.result()
            except BrokenProcessPool:
                lost.extend(group)
                continue
            except Exception as exc:  # noqa: BLE001 - the worker failed outside a file (e.g. writing its part)
                loader.fail(group, f"the worker failed: {type(exc).__name__}: {exc}")
                continue
            loader.load(group, records)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return lost


def _isolate(loader: _Loader, files: list[str], diagnose: bool, worker: Worker) -> None:
    """The files of lost groups, one per task in a one-worker pool: when the worker dies, the file it was
    running is the first unfinished one; it is named and the rest go on in a fresh pool. Each round
    settles at least one file, so this ends."""
    from tokprof.fleet.parts import warm_up

    remaining = list(files)
    while remaining:
        pool = _pool(1)
        try:
            try:  # a worker that cannot even start would blame every file in turn
                pool.submit(warm_up).result()
            except BrokenProcessPool:
                raise WorkerStartError("worker processes die as they start (see the messages above); the files "
                                       f"loaded so far are in the ledger, {len(remaining)} are not; run with "
                                       "--jobs 1 to ingest in this process") from None
            futures = [pool.submit(worker, [f], diagnose, str(loader.parts)) for f in remaining]
            for i, (path, fut) in enumerate(zip(remaining, futures)):
                try:
                    records = fut.result()
                except BrokenProcessPool:
                    loader.fail([path], "the worker process died while reading it")
                    remaining = remaining[i + 1:]
                    break
                except Exception as exc:  # noqa: BLE001 - as in _run_groups
                    loader.fail([path], f"the worker failed: {type(exc).__name__}: {exc}")
                    continue
                loader.load([path], records)
            else:
                remaining = []
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
