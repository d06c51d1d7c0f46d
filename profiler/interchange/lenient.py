"""Values other tools wrote loosely: JSON or Python literals inside strings, wrappers around the real records.

Benchmarks serialise with whatever was at hand: ``json.dumps`` of a pydantic dump, ``str(dict)`` (Python
literals: single quotes, ``None``/``True``), a JSON string inside a JSON string. :func:`decode` turns such a
string back into the value it stands for, safely: :func:`ast.literal_eval` only evaluates literals (no names,
calls or attribute access) and is only tried on strings that look like a container and are not huge.
"""

from __future__ import annotations

import ast
import json
from typing import Any, Callable

MAX_LITERAL_CHARS = 5_000_000
"""Larger strings are left as text: literal_eval's parser is recursive and memory-hungry on big inputs."""
MAX_DEPTH = 4
"""How deep :func:`find_container` looks through wrapper objects."""


def decode(value: Any) -> Any:
    """A string holding a JSON or Python-literal container (or ``None``/``True``/``False``), decoded; anything
    else as it is. Strings that merely contain text are never changed."""
    if not isinstance(value, str):
        return value
    s = value.strip()
    if s in ("None", "null"):
        return None
    if not s or s[0] not in "[{(" or len(s) > MAX_LITERAL_CHARS:
        return value
    try:
        out = json.loads(s)
    except ValueError:
        try:
            out = ast.literal_eval(s)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return value
    if isinstance(out, tuple):
        out = list(out)
    return out if isinstance(out, (dict, list)) else value


def decode_dict(value: Any) -> dict[str, Any] | None:
    """:func:`decode`, keeping only a dict result."""
    out = decode(value)
    return out if isinstance(out, dict) else None


def decode_list(value: Any) -> list[Any] | None:
    """:func:`decode`, keeping only a list result (a lone dict becomes a one-item list)."""
    out = decode(value)
    if isinstance(out, dict):
        return [out]
    return out if isinstance(out, list) else None


def parse_document(text: str) -> Any:
    """A whole file as JSON, else as one Python literal (a ``str(dict)`` dump); raises ``ValueError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        head = text.lstrip()[:1]
        if head in "[{" and len(text) <= MAX_LITERAL_CHARS and ("'" in text[:4096]):
            try:
                return ast.literal_eval(text.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
        raise exc


def find_container(data: Any, accept: Callable[[Any], bool], depth: int = MAX_DEPTH) -> Any:
    """The first value (breadth-first, at most ``depth`` wrappers down) that ``accept`` takes, or ``None``.

    Wrappers are dicts and one-element lists around the real payload (``{"results": {...}}``, ``[{...}]``),
    and strings holding either.
    """
    level = [data]
    for _ in range(depth + 1):
        nxt: list[Any] = []
        for v in level:
            v = decode(v)
            if accept(v):
                return v
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list) and len(v) == 1:
                nxt.append(v[0])
        level = nxt
    return None
