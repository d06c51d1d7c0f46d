"""`tokprof ingest [RUNS...]`: load runs into the fleet ledger (``<runs folder>/ledger.duckdb``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "ingest",
        help="load runs into the fleet ledger (DuckDB) for stats, budgets and the fleet report",
        description="Load RUNS (run files, folders of run files, or trace files of other tools; default: the "
                    "runs folder) into the columnar fleet ledger <runs folder>/ledger.duckdb. Idempotent and "
                    "incremental: a file already ingested with the same size and mtime (or content hash) is "
                    "skipped; a changed file replaces its runs' rows. Tables and columns: docs/fleet.md.",
        epilog="--json prints {files_seen, files_skipped, files_ingested, runs, calls, errors, ledger, engine, "
               "jobs}. --jobs N runs the per-run work (import, pricing, cache simulation, row building) of new "
               "or changed files in N worker processes; the ledger is the same as with one. A file that "
               "cannot be read, or that kills its worker, is named and skipped; the others land.",
    )
    p.add_argument("runs", nargs="*", metavar="RUNS", help="run files, folders or trace files (default: runs folder)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR); the ledger lives in it")
    p.add_argument("--ledger", metavar="FILE", help="ledger file (default <runs folder>/ledger.duckdb)")
    p.add_argument("--no-diagnostics", action="store_true", help="skip the per-run prefix-break analysis")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where per-run work runs: this process (default) or a Ray cluster")
    p.add_argument("--address", help="Ray cluster address (with --engine ray; default: start a local one)")
    p.add_argument("--jobs", "-j", type=int, metavar="N", default=None,
                   help="worker processes for the per-run work (default 1: this process; 0: one per core); "
                        "with --engine ray and no --address: the local cluster's workers")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=ingest_command)


def ingest_command(args: argparse.Namespace) -> int:
    from tokprof.fleet.ledger import ingest, ledger_path, opened
    from tokprof.fleet.sources import expand_sources

    jobs = args.jobs
    if jobs is not None and jobs < 0:
        print(f"tokprof: error: --jobs must be 0 (one per core) or more, not {jobs}", file=sys.stderr)
        return 2
    if args.engine == "ray" and args.address and jobs is not None:
        print("tokprof: error: --jobs sizes a local Ray cluster; with --address the cluster has its own workers",
              file=sys.stderr)
        return 2
    path = args.ledger or ledger_path(args.dir)
    sources = expand_sources(args.runs, args.dir)
    show = _Progress() if sys.stderr.isatty() else None  # a status line for a person, never into a pipe or log
    workers = 1 if jobs is None else (jobs or os.cpu_count() or 1)
    try:
        with opened(path) as con:
            if args.engine == "ray":
                from tokprof.fleet.ray_engine import ray_ingest

                rep = ray_ingest(con, sources, address=args.address, diagnose=not args.no_diagnostics,
                                 num_cpus=None if jobs is None else workers)
            elif workers > 1:
                from tokprof.fleet.process_engine import process_ingest

                rep = process_ingest(con, sources, jobs=workers, diagnose=not args.no_diagnostics,
                                     progress=show.files if show else None)
            else:
                rep = ingest(con, sources, diagnose=not args.no_diagnostics,
                             progress=show.path if show else None)
    finally:
        if show is not None:
            show.end()
    doc = {**rep.to_dict(), "ledger": str(path), "engine": "ray" if args.engine == "ray" else
           ("processes" if workers > 1 else "local"), "jobs": None if args.engine == "ray" and jobs is None
           else workers}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"ingested {rep.files_ingested} files ({rep.runs} runs, {rep.calls:,} calls); "
              f"{rep.files_skipped} unchanged files skipped -> {path}")
    from tokprof.console_safe import clean

    for e in rep.errors:  # file names and messages from the files: no control characters to the terminal
        print(clean(f"tokprof: error: {e}"), file=sys.stderr)
    return 1 if rep.errors else 0


class _Progress:
    """One self-overwriting status line on a terminal's stderr (never in a pipe or a log)."""

    def __init__(self) -> None:
        self.seen = 0
        self.shown = False

    def _line(self, text: str) -> None:
        sys.stderr.write(f"\r\x1b[2Ktokprof ingest: {text}")
        sys.stderr.flush()
        self.shown = True

    def path(self, _path: Any) -> None:
        """One-process ingest: each source file as it is reached."""
        self.seen += 1
        if self.seen % 10 == 1:
            self._line(f"{self.seen:,} files read")

    def files(self, done: int, total: int, calls: int) -> None:
        """Worker processes: after each group is loaded."""
        self._line(f"{done:,}/{total:,} new or changed files, {calls:,} calls loaded")

    def end(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[2K")
            sys.stderr.flush()
