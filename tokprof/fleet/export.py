"""`tokprof export --format parquet DIR`: the fleet ledger's tables as a day-partitioned Parquet dataset."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def export_command(args: argparse.Namespace) -> int:
    from tokprof.fleet.ledger import ledger_path, opened

    if not args.run:
        raise ValueError("export --format parquet needs the output folder: tokprof export --format parquet DIR")
    with opened(ledger_path(args.dir), read_only=True) as con:
        counts = export_parquet(con, args.run)
    print(f"wrote {args.run}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), file=sys.stderr)
    return 0


def export_parquet(con: Any, out_dir: str | Path) -> dict[str, int]:
    """Write every table as a Parquet dataset under ``out_dir/<table>/`` (``calls`` and ``spans`` as their wide
    views: self-describing files); tables with a ``day`` column are Hive-partitioned by day
    (``day=2026-12-01/``). Returns rows per table."""
    # imported here: this module is loaded with the CLI, and pyarrow/DuckDB are the fleet extra, not the core
    from tokprof.fleet.schema import DATED, EXPORTED

    from tokprof.profiler.private_files import owner_only

    out = Path(out_dir)
    existed = out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if not existed:
        owner_only(out)
    counts: dict[str, int] = {}
    for name in (*EXPORTED, "schema_version"):
        n = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        counts[name] = n
        target = out / name
        if name in DATED and n:
            con.execute(f"COPY (SELECT * FROM {name}) TO '{_sql_path(target)}' "
                        "(FORMAT PARQUET, PARTITION_BY (day), OVERWRITE_OR_IGNORE, COMPRESSION zstd)")
        else:
            target.mkdir(parents=True, exist_ok=True)
            con.execute(f"COPY (SELECT * FROM {name}) TO '{_sql_path(target / 'data.parquet')}' "
                        "(FORMAT PARQUET, COMPRESSION zstd)")
        # the dataset holds the prompts (messages): owner-only like the run files (DuckDB writes 0644)
        for p in [target, *target.rglob("*")]:
            owner_only(p)
    return counts


def _sql_path(p: Path) -> str:
    return str(p).replace("'", "''")
