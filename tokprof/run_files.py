"""Loading the runs a command is pointed at: a tokprof run file, else whatever the importers read in a file.

Shared by ``tokprof report``/``optimize``/``compare`` and the fleet ledger's ingest (one loader, so every
command reads the same file the same way).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange import import_file
from tokprof.profiler.run_loader import RunFileError, load_run


def load_file(path: Path) -> list[Any]:
    """The runs of one file: a tokprof run file, else whatever the importers read in it."""
    run_error: RunFileError | None = None
    if path.name.lower().endswith((".jsonl", ".jsonl.gz")):
        try:
            return [load_run(path)]
        except RunFileError as exc:
            run_error = exc  # perhaps a chat log: let the importers try
    try:
        return _import(path)
    except ValueError:
        # a damaged tokprof run file: its own error (file:line, what is wrong), not "unknown trace format"
        if run_error is not None and _starts_like_run_file(path):
            raise run_error from None
        raise


def _starts_like_run_file(path: Path) -> bool:
    import gzip

    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(512)
    except (OSError, EOFError):
        return False
    return b'"type":"run"' in head.replace(b" ", b"")


def _import(path: Path) -> list[Any]:
    result = import_file(path)
    if result.errors:
        from tokprof.console_safe import clean

        print(clean(f"tokprof: warning: {result.error_summary()}"), file=sys.stderr)
    if not result.runs:
        raise ValueError(f"{path}: no runs could be imported")
    return list(result.runs)
