"""``minify`` (lossless): JSON tool outputs re-serialised without whitespace; plain-text outputs without
trailing spaces and runs of blank lines. Nothing else is removed or reshaped.

Two opt-in options make it lossy (and the pass instance then says ``lossless = False``): ``drop_empty``
drops ``null`` / ``""`` / ``[]`` / ``{}`` fields (a ``null`` can be an answer: "insurance: null"), and
``tables`` turns lists of similar records (search results, an id-keyed map of payment methods) into one
``{"columns": [...], "rows": [[...], ...]}`` table (every value kept, but no longer under its key path).
Cutting long outputs to head + tail is the separate, lossy ``truncate-outputs`` pass
(:mod:`tokprof.optimizers.compression.truncate`); the old ``max_tokens`` option of ``minify`` is accepted
and ignored with a warning, so a live configuration that set it can no longer cut silently.

A pure function of each tool message, so every call of a conversation sees the same rewritten history
(the prompt prefix stays cacheable).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tokprof.optimizers.base import register
from tokprof.optimizers.compression.common import Rewritten, rough_tokens, text_of, with_text
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.profiler.model import Message

_EMPTY: tuple[Any, ...] = (None, "", [], {})
_SAFE_CUT = re.compile(r"[\s,;{}\[\]]")


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _prune(v)
            if any(v is e or (type(v) is type(e) and v == e) for e in _EMPTY):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_prune(v) for v in value if v is not None]
    return value


def _flat_row(item: dict[str, Any]) -> dict[str, Any] | None:
    """One table row: scalar fields, and nested objects of scalars as ``outer.inner`` columns."""
    row: dict[str, Any] = {}
    for k, v in item.items():
        if isinstance(v, dict):
            if not v or any(isinstance(w, (dict, list)) for w in v.values()):
                return None
            for k2, w in v.items():
                row[f"{k}.{k2}"] = w
        elif isinstance(v, list):
            return None
        else:
            row[k] = v
    return row


def _table(items: list[dict[str, Any]], key_column: list[str] | None = None) -> dict[str, Any] | None:
    rows = [_flat_row(x) for x in items]
    if any(r is None for r in rows):
        return None
    cols = list(dict.fromkeys(k for r in rows for k in r))  # type: ignore[union-attr]
    table_rows = [[r.get(c) for c in cols] for r in rows]  # type: ignore[union-attr]
    if key_column is not None:
        cols = ["(key)", *cols]
        table_rows = [[k, *row] for k, row in zip(key_column, table_rows)]
    return {"columns": cols, "rows": table_rows}


def columnar(value: Any) -> Any:
    """Lists (and id-keyed maps) of two or more similar objects as one ``{"columns", "rows"}`` table:
    every value is kept, each field name is written once instead of once per item."""
    if isinstance(value, list):
        if len(value) >= 2 and all(isinstance(x, dict) for x in value):
            t = _table(value)
            if t is not None:
                return t
        return [columnar(x) for x in value]
    if isinstance(value, dict):
        vals = list(value.values())
        if len(vals) >= 2 and all(isinstance(x, dict) and x for x in vals):
            t = _table(vals, [str(k) for k in value])
            if t is not None:
                return t
        return {k: columnar(v) for k, v in value.items()}
    return value


def minify_json_text(text: str, tables: bool = False, drop_empty: bool = False) -> str | None:
    """``text`` as compact JSON (with ``drop_empty``, without empty fields; with ``tables``, lists of
    similar objects as column/row tables), or ``None`` when it is not JSON."""
    s = text.strip()
    if not s or s[0] not in "{[":
        return None
    try:
        data = json.loads(s)
    except ValueError:
        return None
    if drop_empty:
        data = _prune(data)
    if tables:
        data = columnar(data)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def tidy_text(text: str) -> str:
    """Plain text: trailing spaces removed and runs of blank lines collapsed (nothing a model reads)."""
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text)


def _cut_back(text: str, pos: int) -> int:
    """The last safe cut position at or before ``pos`` (on whitespace/punctuation, not in a token)."""
    for i in range(min(pos, len(text) - 1), max(0, pos - 200), -1):
        if _SAFE_CUT.match(text[i]):
            return i + 1
    return pos


def _cut_forward(text: str, pos: int) -> int:
    for i in range(max(0, pos), min(len(text), pos + 200)):
        if _SAFE_CUT.match(text[i]):
            return i
    return pos


def head_tail(text: str, max_tokens: int, head_share: float = 0.6) -> str:
    """``text`` cut to about ``max_tokens`` (len/4) keeping its head and tail, with a marker between."""
    if rough_tokens(text) <= max_tokens:
        return text
    budget = max_tokens * 4
    h = _cut_back(text, int(budget * head_share))
    t = _cut_forward(text, len(text) - int(budget * (1 - head_share)))
    if t <= h:
        return text
    elided = rough_tokens(text[h:t])
    return (f"{text[:h]}\n…[truncate-outputs: about {elided:,} tokens elided from the middle of this output; "
            f"call the tool again with a narrower query to see them]…\n{text[t:]}")


def minify_message(m: Message, max_tokens: int | None = None, tables: bool = False,
                   drop_empty: bool = False) -> Message:
    """A tool message minified (other messages are returned unchanged). ``max_tokens``: cut to head + tail
    above it (lossy; what ``truncate-outputs`` does; ``None``: never)."""
    if m.get("role") not in ("tool", "function") or not isinstance(m.get("content"), str):
        return m
    text = text_of(m.get("content"))
    new = minify_json_text(text, tables, drop_empty)
    if new is None:
        new = tidy_text(text)
    if max_tokens is not None:
        new = head_tail(new, max_tokens)
    return m if new == m.get("content") else with_text(m, new)


@register
class MinifyPass(MessagePass):
    name = "minify"
    description = "JSON tool outputs without whitespace, text outputs without trailing blanks (lossless)"
    risk = "none: only whitespace removed"
    lossless = True
    defaults = {"max_tokens": None, "tables": False, "drop_empty": False}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options.get("max_tokens") is not None:
            import warnings

            warnings.warn("minify no longer cuts long outputs (max_tokens ignored): use the lossy "
                          "'truncate-outputs' pass", DeprecationWarning, stacklevel=2)
        if self.options["tables"] or self.options["drop_empty"]:
            self.lossless = False  # type: ignore[misc]  # options that reshape or drop fields
            self.risk = "low: empty fields dropped or records reshaped into tables"  # type: ignore[misc]

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        out = [minify_message(m, None, self.options["tables"], self.options["drop_empty"]) for m in messages]
        n = sum(1 for a, b in zip(messages, out) if a is not b)
        saved = sum(rough_tokens(text_of(a.get("content"))) - rough_tokens(text_of(b.get("content")))
                    for a, b in zip(messages, out) if a is not b)
        return Rewritten(out, f"minified {n} tool output(s) (~{saved:,} tokens)", {"minified": n})
