"""`tokprof ingest [RUNS...]`: load runs into the fleet ledger (``<runs folder>/ledger.duckdb``)."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "ingest",
        help="load runs into the fleet ledger (DuckDB) for stats, budgets and the fleet report",
        description="Load RUNS (run files, folders of run files, or trace files of other tools; default: the "
                    "runs folder) into the columnar fleet ledger <runs folder>/ledger.duckdb. Idempotent and "
                    "incremental: a file already ingested with the same size and mtime (or content hash) is "
                    "skipped; a changed file replaces its runs' rows. Tables and columns: docs/fleet.md.",
        epilog="--json prints {files_seen, files_skipped, files_ingested, runs, calls, errors, ledger}.",
    )
    p.add_argument("runs", nargs="*", metavar="RUNS", help="run files, folders or trace files (default: runs folder)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR); the ledger lives in it")
    p.add_argument("--ledger", metavar="FILE", help="ledger file (default <runs folder>/ledger.duckdb)")
    p.add_argument("--no-diagnostics", action="store_true", help="skip the per-run prefix-break analysis")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="where per-run work runs: this process (default) or a Ray cluster")
    p.add_argument("--address", help="Ray cluster address (with --engine ray; default: start a local one)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=ingest_command)


def ingest_command(args: argparse.Namespace) -> int:
    from tokprof.fleet.ledger import expand_sources, ingest, ledger_path, opened

    path = args.ledger or ledger_path(args.dir)
    sources = expand_sources(args.runs, args.dir)
    with opened(path) as con:
        if args.engine == "ray":
            from tokprof.fleet.ray_engine import ray_ingest

            rep = ray_ingest(con, sources, address=args.address, diagnose=not args.no_diagnostics)
        else:
            rep = ingest(con, sources, diagnose=not args.no_diagnostics)
    doc = {**rep.to_dict(), "ledger": str(path)}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"ingested {rep.files_ingested} files ({rep.runs} runs, {rep.calls:,} calls); "
              f"{rep.files_skipped} unchanged files skipped -> {path}")
    for e in rep.errors:
        print(f"tokprof: error: {e}", file=sys.stderr)
    return 1 if rep.errors else 0
