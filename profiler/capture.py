"""Bounded snapshots of a traced call's arguments and return value: numbers and short strings kept as they
are, anything else a repr cut while it is taken (a 5M-item list costs what 20 items cost), and a user
``__repr__`` that raises never breaks the call."""

from __future__ import annotations

import reprlib
from typing import Any


REPR_LIMIT = 200


PLAIN = (int, float, bool, type(None))


def _bounded_repr() -> reprlib.Repr:
    r = reprlib.Repr()
    # builtin containers and strings are cut while being repr'd (a 5M-item list costs what 20 items
    # cost), not repr'd whole and cut afterwards
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset, r.maxfrozenset, r.maxdeque = 3, 20, 20, 20, 20, 20, 20
    r.maxarray, r.maxstring, r.maxother, r.maxlong = 20, REPR_LIMIT, REPR_LIMIT, REPR_LIMIT
    return r


_REPR = _bounded_repr()


_BOUNDED_TYPES = (list, tuple, dict, set, frozenset, str, bytes)


def safe_repr(value: Any) -> str:
    try:
        r = _REPR.repr(value) if type(value) in _BOUNDED_TYPES else repr(value)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a user __repr__ that raises (even a BaseException) must not break the call
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    if not isinstance(r, str):
        return f"<unrepresentable {type(value).__name__}: repr returned {type(r).__name__}>"
    if len(r) > REPR_LIMIT:
        r = r[:REPR_LIMIT] + "…"
    return r


def capture_value(value: Any) -> Any:
    """A JSON-safe, bounded snapshot of a value. Numbers and short strings are kept as they are (no repr:
    this runs on the user's hot path); anything else becomes a truncated repr, taken now because the
    object may change later."""
    t = type(value)
    if t in PLAIN:
        return value
    if t is str and len(value) <= REPR_LIMIT:
        return value
    return safe_repr(value)


def capture_args(args: tuple, kwargs: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args:
        # A tuple of atomic values (and a dict holding only such) is untracked by the cyclic GC after its
        # first collection; a list never is. A run holds every span: this matters (~0.5 µs per call).
        out["args"] = tuple([capture_value(a) for a in args])
    if kwargs:
        out["kwargs"] = {k: capture_value(v) for k, v in kwargs.items()}
    return out
