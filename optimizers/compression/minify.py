"""``minify``: JSON tool outputs without whitespace and empty fields; very long outputs cut to head + tail.

A pure function of each tool message, so every call of a conversation sees the same rewritten history
(the prompt prefix stays cacheable). Dropping ``null`` / ``""`` / ``[]`` / ``{}`` fields and JSON
whitespace loses no value the model could cite; the head/tail cut does, so it only fires above
``max_tokens`` and never cuts inside an identifier (cuts fall on whitespace or JSON punctuation).
"""

from __future__ import annotations

import json
import re
from typing import Any

from optimizers.base import register
from optimizers.compression.common import Rewritten, rough_tokens, text_of, with_text
from optimizers.compression.runner import MessagePass
from profiler.model import Message

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


def minify_json_text(text: str) -> str | None:
    """``text`` as compact JSON without empty fields, or ``None`` when it is not JSON."""
    s = text.strip()
    if not s or s[0] not in "{[":
        return None
    try:
        data = json.loads(s)
    except ValueError:
        return None
    return json.dumps(_prune(data), ensure_ascii=False, separators=(",", ":"))


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


def minify_message(m: Message, max_tokens: int = 3000) -> Message:
    """A tool message minified (other messages are returned unchanged)."""
    if m.get("role") not in ("tool", "function") or not isinstance(m.get("content"), str):
        return m
    text = text_of(m.get("content"))
    new = minify_json_text(text)
    if new is None:
        new = tidy_text(text)
    new = head_tail(new, max_tokens)
    return m if new == m.get("content") else with_text(m, new)


@register
class MinifyPass(MessagePass):
    name = "minify"
    description = "JSON tool outputs without whitespace and empty fields; very long outputs cut to head+tail"
    risk = "low: only whitespace and empty fields removed unless an output exceeds max_tokens"
    defaults = {"max_tokens": 3000}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        out = [minify_message(m, self.options["max_tokens"]) for m in messages]
        n = sum(1 for a, b in zip(messages, out) if a is not b)
        saved = sum(rough_tokens(text_of(a.get("content"))) - rough_tokens(text_of(b.get("content")))
                    for a, b in zip(messages, out) if a is not b)
        return Rewritten(out, f"minified {n} tool output(s) (~{saved:,} tokens)", {"minified": n})
