"""Reading single values from foreign trace files: JSON-or-text attributes, the string "None", token counts
and timestamps (part of :mod:`tokprof.profiler.interchange.base`, which re-exports them)."""

from __future__ import annotations

import calendar
import json
from datetime import datetime, timezone
from typing import Any


def json_or_text(value: Any) -> Any:
    """A string holding JSON, decoded; any other string or value, as it is (tool-call arguments and
    attribute values are JSON by convention, not always in fact)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):
            return value
    return value


def nullish(value: Any) -> Any:
    """Some exporters (τ²-bench) write the string ``"None"`` for a missing value: read it as ``None``."""
    return None if value is None or value == "None" else value


def as_int(value: Any) -> int | None:
    value = nullish(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a token count, got {value!r}")
    try:
        n = int(float(value)) if isinstance(value, (str, float)) else int(value)
    except OverflowError:  # inf, 1e999
        raise ValueError(f"expected a token count, got {value!r}") from None
    if n < 0:
        raise ValueError(f"expected a token count, got a negative number {value!r}")
    return n


def duration_ns(value: Any) -> int | None:
    """A recorded duration in seconds (number or numeric string) as ns; ``None`` when absent, unreadable,
    negative, not finite or absurd (a million seconds or more): a bad duration never moves a span."""
    value = nullish(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        v = float(value)
    except (ValueError, OverflowError):
        return None
    return int(v * 1e9) if 0 <= v < 1e6 else None


def parse_time_ns(value: Any) -> int | None:
    """ISO-8601 (naive = UTC) or epoch seconds/ns -> epoch ns; ``None`` when absent or unreadable."""
    value = nullish(value)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got {value!r}")
    if isinstance(value, (int, float)):
        # Epoch seconds, milliseconds or nanoseconds, by magnitude.
        try:
            v = float(value)
        except OverflowError:  # an int beyond any float
            raise ValueError(f"timestamp {value!r} is out of range") from None
        if v != v or v in (float("inf"), float("-inf")) or abs(v) >= 9.2e18:
            raise ValueError(f"timestamp {value!r} is out of range")
        if v > 1e17:
            return int(value)
        if v > 1e11:
            return int(v * 1_000_000)
        return int(v * 1_000_000_000)
    try:
        dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    if dt.tzinfo is not None:
        try:
            dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:  # year 1 or 9999 shifted out of range
            raise ValueError(f"timestamp {value!r} is out of range") from None
    # Integer arithmetic: float timestamps would lose the microseconds.
    return (calendar.timegm(dt.timetuple()) * 1_000_000 + dt.microsecond) * 1000
