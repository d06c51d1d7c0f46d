"""Errors a user can cause (bad file, unknown run, unknown model): printed as one line by the CLI."""

from __future__ import annotations

from tokprof.profiler.run_loader import RunFileError

UserFacingError: tuple[type[BaseException], ...] = (RunFileError, FileNotFoundError, KeyError, ValueError)
