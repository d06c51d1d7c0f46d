"""Shared by the engine tests (tests/test_fleet_ray.py, tests/test_fleet_jobs.py): the ledger compared table
by table, and a worker that dies on a marked file (imported by name in spawned worker processes)."""

from __future__ import annotations

import os
from typing import Any

# every column but the ingest time; rows in a fixed order
COMPARE = {
    "runs": "SELECT * EXCLUDE (run_key) FROM runs ORDER BY run_id",  # run_key: a surrogate key
    "calls": "SELECT * FROM calls ORDER BY run_id, span_id",
    "spans": "SELECT * FROM spans ORDER BY run_id, span_id",
    "messages": "SELECT * FROM messages ORDER BY hash",
    "prompts": "SELECT * FROM prompts ORDER BY prompt_hash",
    "diagnostics": "SELECT * FROM diagnostics ORDER BY run_id, span_id",
    "files": "SELECT path, size, mtime_ns, sha1, list_sort(run_ids) FROM files ORDER BY path",
}

CRASH_MARK = "KILLS-WORKER"
"""A source file whose name contains this makes :func:`crashing_file_rows` end its process."""


def assert_same_ledger(a: Any, b: Any) -> None:
    """Every table of two ledgers equal, row for row (dimension ids and run keys aside: the views join them)."""
    for name, sql in COMPARE.items():
        x, y = a.execute(sql).fetchall(), b.execute(sql).fetchall()
        assert len(x) == len(y), name
        assert x == y, name


def crashing_file_rows(paths: list[str], diagnose: bool, out_dir: str) -> list[dict[str, Any]]:
    """:func:`tokprof.fleet.parts.file_rows`, except that a marked file kills the worker process outright
    (``os._exit``: no exception, no clean-up, as a segfault or the OOM killer would)."""
    from tokprof.fleet.parts import file_rows

    if any(CRASH_MARK in os.path.basename(p) for p in paths):
        os._exit(71)
    return file_rows(paths, diagnose, out_dir)
