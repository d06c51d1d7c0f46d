"""``minify``: JSON tool outputs without whitespace and empty fields; very long outputs cut to head + tail.

Lists of similar records (search results, an id-keyed map of payment methods) become one
``{"columns": [...], "rows": [[...], ...]}`` table, so each field name is written once, not once per item.

A pure function of each tool message, so every call of a conversation sees the same rewritten history
(the prompt prefix stays cacheable). Dropping ``null`` / ``""`` / ``[]`` / ``{}`` fields and JSON
whitespace loses no value the model could cite; the head/tail cut does, so it only fires above
``max_tokens`` and never cuts inside an identifier (cuts fall on whitespace or JSON punctuation).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tokprof.optimizers.base import register
from tokprof.optimizers.compression.common import Rewritten, rough_tokens, text_of, with_text
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.profiler.model import Message

_EMPTY = (None, "", [], {})
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


def minify_json_text(text: str, tables: bool = True) -> str | None:
    """``text`` as compact JSON without empty fields (and, with ``tables``, lists of similar objects as
    column/row tables), or ``None`` when it is not JSON."""
    s = text.strip()
    if not s or s[0] not in "{[":
        return None
    try:
        data = json.loads(s)
    except ValueError:
        return None
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
    return (f"{text[:h]}\n…[minify: about {elided:,} tokens elided from the middle of this output; "
            f"call the tool again with a narrower query to see them]…\n{text[t:]}")


def minify_message(m: Message, max_tokens: int = 3000, tables: bool = True) -> Message:
    """A tool message minified (other messages are returned unchanged)."""
    if m.get("role") not in ("tool", "function") or not isinstance(m.get("content"), str):
        return m
    text = text_of(m.get("content"))
    new = minify_json_text(text, tables)
    if new is None:
        new = tidy_text(text)
    new = head_tail(new, max_tokens)
    return m if new == m.get("content") else with_text(m, new)


@register
class MinifyPass(MessagePass):
    name = "minify"
    description = ("JSON tool outputs without whitespace and empty fields, lists of records as tables; very "
                   "long outputs cut to head+tail")
    risk = "low: only whitespace, empty fields and repeated field names removed unless an output exceeds max_tokens"
    defaults = {"max_tokens": 3000, "tables": True}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        out = [minify_message(m, self.options["max_tokens"], self.options["tables"]) for m in messages]
        n = sum(1 for a, b in zip(messages, out) if a is not b)
        saved = sum(rough_tokens(text_of(a.get("content"))) - rough_tokens(text_of(b.get("content")))
                    for a, b in zip(messages, out) if a is not b)
        return Rewritten(out, f"minified {n} tool output(s) (~{saved:,} tokens)", {"minified": n})
