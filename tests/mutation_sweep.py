"""Single-field mutations of a valid run file (issue #21): every field of every record of
``tests/hostile_runs.base()`` (nested fields included) set to each hostile value class in turn, then run
through the CLI commands. Used by the attack suite (a bounded, representative subset) and by
``benchmarks/sweep_mutations.py`` (the whole sweep)."""

from __future__ import annotations

import copy
import json
from typing import Any, Iterator

from tests.hostile_runs import base, dump

HOSTILE: list[tuple[str, Any]] = [
    ("nan", float("nan")), ("inf", float("inf")), ("-1", -1), ("1e308", 1e308), ("10**30", 10 ** 30),
    ("list", ["x", 1]), ("dict", {"k": [1]}), ("str", "zz"), ("bool", True), ("null", None),
]
"""The hostile value classes: non-finite, negative, huge, and every wrong JSON type."""


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path inside a record (objects and arrays, nested), the containers themselves included."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _set(rec: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        rec = rec[key]
    rec[path[-1]] = copy.deepcopy(value)


def mutations() -> list[tuple[str, str]]:
    """(name, file text) for each single-field mutation; the ``type`` field of a record is left alone
    only when it is the record kind (a run file with unknown record kinds is refused by design, with a clear
    error, and is covered by the structural cases)."""
    out: list[tuple[str, str]] = []
    records = base()
    for i, rec in enumerate(records):
        for path in _paths(rec):
            for label, value in HOSTILE:
                recs = copy.deepcopy(records)
                _set(recs[i], path, value)
                name = f"rec{i}.{'.'.join(str(p) for p in path)}={label}"
                out.append((name, dump(recs)))
    return out


def representative(every: int = 9, focus_every: int = 3) -> list[tuple[str, str]]:
    """A bounded subset for CI: every ``every``-th mutation, plus every ``focus_every``-th of the usage,
    cost, model, message, tool and output ones (the fields that failed whole files or crashed commands
    before the boundary repairs)."""
    focus = (".usage", ".cost", ".model", ".sources", ".messages", ".tools", ".output", ".data")
    keep = []
    for k, (name, text) in enumerate(mutations()):
        if k % every == 0 or (k % focus_every == 0 and any(f in name for f in focus)):
            keep.append((name, text))
    return keep


if __name__ == "__main__":  # pragma: no cover - a quick count
    print(len(mutations()), len(representative()), json.dumps([n for n, _ in mutations()][:5]))
