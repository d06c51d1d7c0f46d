"""Run files: append-only JSON Lines with content-addressed payloads, and a tolerant loader.

File layout (one JSON object per line, schema version in the header)::

    {"type": "run", "schema": 1, "run_id": ..., "name": ..., "tags": {...}, "started_wall_ns": ..., "metadata": {...}}
    {"type": "payload", "id": "<sha1>", "data": {...message...}}      # each distinct message, once per file
    {"type": "span", ...span fields..., "llm": {..., "messages": {"$base": "<span id>", "$keep": 12, "$refs": ["<sha1>", ...]}}}
    ...
    {"type": "end", "ended_wall_ns": ...}

Spans are written as they finish, and each line is flushed, so a crash keeps every finished span; a file
without its ``end`` line loads as an incomplete run. An agent re-sends its growing history on every call;
messages are therefore stored once per file and referenced by hash, so 200 calls do not write the history
200 times; and a span's list of message references is itself written as "the first ``$keep`` references of
an earlier span's list (``$base``), then these new ones", so the references do not grow quadratically
either.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Iterator

from tokprof.profiler.private_files import (
    check_private_dir, make_private_dir, STALE_TEMP_SECONDS, UnsafeFolderError, write_private
)
from tokprof.profiler.run_lines import json_default, payload_id
from tokprof.profiler.run_loader import DamagedRunWarning, load_run, RunFileError, TruncatedRunWarning
from tokprof.profiler.run_paths import DEFAULT_DIR, ENV_DIR, file_stem, MAX_STEM, runs_dir
from tokprof.profiler.run_writer import RunWriter, save_run

# The public names of this module, including those re-exported from the modules it was split into.
__all__ = ["check_private_dir", "DamagedRunWarning", "DEFAULT_DIR", "ENV_DIR", "file_stem", "iter_run_files",
           "load_run", "make_private_dir", "MAX_STEM", "payload_id", "resolve_run", "RunFileError", "runs_dir", "RunWriter", "save_run",
           "STALE_TEMP_SECONDS", "TruncatedRunWarning", "UnsafeFolderError", "write_private"]


# tokprof/fleet/rows.py imports the run-line JSON encoder by its old private name (that module belongs to
# other work): kept until it imports ``run_lines.json_default``.
_json_default = json_default

def iter_run_files(directory: str | Path | None = None) -> Iterator[Path]:
    """Run files in a folder, newest first."""
    folder = runs_dir(directory)
    if not folder.is_dir():
        return iter(())
    files = []
    for p in folder.glob("*.jsonl*"):
        if p.name.endswith(".tmp") or p.name.startswith("."):
            continue
        try:
            st = p.stat()  # follows links: a dangling one fails, a link to /dev/zero is not regular
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append((st.st_mtime, p))
    files.sort(key=lambda t: t[0], reverse=True)
    return iter([p for _, p in files])


def resolve_run(ref: str | None, directory: str | Path | None = None) -> Path:
    """A run file from a path, a run id (or unique prefix) in the runs folder, or ``None`` for the latest."""
    folder = runs_dir(directory)
    if ref is None:
        for p in iter_run_files(folder):
            return p
        raise RunFileError(folder, None, "no saved runs here; record one with `tokprof run script.py` or profile()")
    p = Path(ref)
    if p.exists():
        return p
    matches = [f for f in iter_run_files(folder) if f.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunFileError(ref, None, f"no run file or run id matching {ref!r} in {folder}")
    raise RunFileError(ref, None, f"run id prefix {ref!r} is ambiguous: {', '.join(m.stem for m in matches[:5])}")
