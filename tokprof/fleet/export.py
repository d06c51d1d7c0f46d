"""`tokprof export --format parquet DIR`: the fleet ledger's tables as a day-partitioned Parquet dataset."""

from __future__ import annotations

import argparse
import sys


def export_command(args: argparse.Namespace) -> int:
    from tokprof.fleet.ledger import export_parquet, ledger_path, opened

    if not args.run:
        raise ValueError("export --format parquet needs the output folder: tokprof export --format parquet DIR")
    with opened(ledger_path(args.dir), read_only=True) as con:
        counts = export_parquet(con, args.run)
    print(f"wrote {args.run}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()), file=sys.stderr)
    return 0
