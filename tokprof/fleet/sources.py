"""Which files an ingest reads (named files, trace files under named folders, or the runs folder's run
files), how it loads one, and how a file's failure is named (part of :mod:`tokprof.fleet.ledger`, shared with
the worker engines in :mod:`tokprof.fleet.parts`)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Iterable

from tokprof.profiler.model import Run


def file_sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def expand_sources(refs: Iterable[str | Path], directory: str | Path | None = None) -> list[Path]:
    """Files to ingest: named files; trace files under named folders (what ``tokprof import`` reads there:
    :data:`tokprof.profiler.interchange.TRACE_SUFFIXES`); or, when nothing is named, the run files
    (``*.jsonl``, ``*.jsonl.gz``) of the runs folder. A named folder with none is warned about: an ingest
    that silently found nothing looked like an empty fleet."""
    from tokprof.profiler.interchange import TRACE_SUFFIXES, is_trace_name
    from tokprof.profiler.store import runs_dir

    named = bool(refs := list(refs))
    refs = refs or [runs_dir(directory)]
    out: list[Path] = []
    for ref in refs:
        p = Path(ref)
        if p.is_dir() and not named:
            out.extend(sorted(f for f in p.rglob("*") if f.is_file() and f.name.endswith((".jsonl", ".jsonl.gz"))))
        elif p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and is_trace_name(f.name))
            if not found:
                warnings.warn(f"tokprof: {p}: no run or trace files in this folder (looked for "
                              f"{', '.join('*' + s for s in TRACE_SUFFIXES)}, each optionally .gz)",
                              UserWarning, stacklevel=2)
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such run file or folder")
    return out


def file_error(path: Path, exc: BaseException) -> str:
    """A file's error for the report, naming it once (the importers' errors already start with it)."""
    text = str(exc)
    return text if text.startswith(str(path)) else f"{path}: {text}"


def load_source(path: Path) -> list[Run]:
    """The runs of one file: a tokprof run file, else whatever the trace importers read in it."""
    from tokprof.run_files import load_file

    return load_file(path)
