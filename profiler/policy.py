"""The error policy of the recording layer: never break the user's agent.

Anything tokprof does around the user's call is guarded; a failure is logged once per kind (``where``)
through :func:`internal_error` and swallowed. The user's own exceptions pass through unchanged.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("tokprof")

_reported: set[str] = set()
_reported_lock = threading.Lock()


def internal_error(where: str, exc: BaseException) -> None:
    """Log an error inside tokprof once per ``where`` and swallow it."""
    try:
        with _reported_lock:
            if where in _reported:
                return
            _reported.add(where)
        log.warning("tokprof internal error in %s (ignored, your code is unaffected): %r", where, exc)
    except Exception:  # pragma: no cover - logging itself failed; there is nothing left to do
        pass


def reset_internal_errors() -> None:
    """For tests: let every kind of internal error be logged again."""
    with _reported_lock:
        _reported.clear()
