"""Where run files live and what they are called: the runs folder (``$TOKPROF_DIR``, else
``.tokprof/runs``) and a file name derived from a sanitised, bounded run id (a foreign id stays metadata)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(".tokprof") / "runs"


ENV_DIR = "TOKPROF_DIR"


def runs_dir(directory: str | Path | None = None) -> Path:
    """The runs folder: the argument, else ``$TOKPROF_DIR``, else ``.tokprof/runs``."""
    if directory is not None:
        return Path(directory)
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else DEFAULT_DIR


MAX_STEM = 64
"""Longest file-name stem derived from a run id (file systems cap names at 255 bytes)."""


_UNSAFE_STEM = re.compile(r"[^A-Za-z0-9_.-]")


def file_stem(run_id: Any) -> str:
    """The file-name stem for a run id: the id itself when it is a short plain name, else a sanitised,
    bounded form plus a hash of the whole id (so distinct ids keep distinct files). Run ids come from
    foreign files (OTLP ``tokprof.run.id``, run files given to ``optimize``): they are metadata, and never
    become a path — no separators, no ``..``, no leading dot, at most :data:`MAX_STEM` characters."""
    rid = str(run_id)
    stem = _UNSAFE_STEM.sub("_", rid).lstrip(".")
    if stem == rid and 0 < len(stem) <= MAX_STEM:
        return stem
    digest = hashlib.sha1(rid.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{stem[:MAX_STEM - 13] or 'run'}-{digest}"
