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


class StopRun(Exception):
    """Raised on purpose by a profile hook to stop the user's agent (a hard budget the user asked for):
    the error policy below passes it through instead of swallowing it."""


def internal_error(where: str, exc: BaseException) -> None:
    """Log an error inside tokprof once per ``where`` and swallow it (a :class:`StopRun` propagates)."""
    if isinstance(exc, StopRun):
        raise exc
    try:
        with _reported_lock:
            if where in _reported:
                return
            _reported.add(where)
        # The exception's text can quote the user's content (a KeyError of a prompt, a JSON error with
        # the document): the warning names only the type (and an OS error's reason, which is ours).
        reason = type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            reason += f" ({exc.strerror})"
        log.warning("tokprof internal error in %s (ignored, your code is unaffected): %s", where, reason)
    except Exception:  # pragma: no cover - logging itself failed; there is nothing left to do
        pass


def reset_internal_errors() -> None:
    """For tests: let every kind of internal error be logged again."""
    with _reported_lock:
        _reported.clear()
