"""Message payloads for the report: each distinct message stored once, with an estimated token count.

An agent re-sends its whole history on every call, so a run of 10,000 calls references the same messages
hundreds of thousands of times. The report stores every distinct message once (keyed by a hash of its
canonical JSON) and each call refers to its messages by index into that table.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens a chat format spends on a message's role and separators (OpenAI's is 3-4)."""


def message_text(msg: Any) -> str:
    """The readable text of a chat message: its content parts, then any tool calls as ``name(args)``."""
    if not isinstance(msg, dict):
        return str(msg)
    parts: list[str] = []
    content = msg.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for p in content:
            if isinstance(p, dict):
                if isinstance(p.get("text"), str):
                    parts.append(p["text"])
                elif p.get("type"):
                    parts.append(f"[{p['type']}]")
            elif isinstance(p, str):
                parts.append(p)
    elif content is not None:
        parts.append(str(content))
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function", tc) if isinstance(tc, dict) else {}
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False, default=str)
        parts.append(f"{fn.get('name', '?')}({args})")
    return "\n".join(parts)


def _heuristic_count(text: str) -> int:
    # ~4 characters per token for English and code with BPE tokenizers; good enough to split a call's
    # provider-reported total between its parts (the totals shown are never this estimate).
    return (len(text) + 3) // 4


def _text_counter() -> tuple[Callable[[str], int], str]:
    """The best offline text counter available, and the source label of its counts."""
    try:  # A's tokenizer registry, when present: counts are exact for the model family
        from profiler import tokenizers  # type: ignore[attr-defined]

        enc = tokenizers.get_tokenizer("gpt-4o")  # type: ignore[attr-defined]
        encode = getattr(enc, "encode_ordinary", None) or enc.encode
        encode("probe")
        return (lambda text: len(encode(text))), "estimated"
    except Exception:  # noqa: BLE001 - not available yet, or a different API: fall back
        return _heuristic_count, "estimated"


class PayloadTable:
    """Distinct messages in first-seen order; ``add`` returns a message's index in the table."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._by_hash: dict[str, int] = {}
        self._by_id: dict[int, int] = {}
        self._keep: list[Any] = []  # keep memoised objects alive so their id() stays unique
        self._count, self.source = _text_counter()

    def add(self, msg: Any) -> int:
        idx = self._by_id.get(id(msg))
        if idx is not None:
            return idx
        canonical = json.dumps(msg, sort_keys=True, ensure_ascii=False, default=str)
        h = hashlib.sha1(canonical.encode("utf-8")).hexdigest()
        idx = self._by_hash.get(h)
        if idx is None:
            idx = len(self.items)
            self._by_hash[h] = idx
            text = message_text(msg)
            role = msg.get("role", "?") if isinstance(msg, dict) else "?"
            item: dict[str, Any] = {
                "role": str(role),
                "text": text,
                "tokens": self._count(text) + MESSAGE_OVERHEAD_TOKENS,
                "hash": h[:12],
            }
            if isinstance(msg, dict) and msg.get("name"):
                item["name"] = str(msg["name"])
            self.items.append(item)
        self._by_id[id(msg)] = idx
        self._keep.append(msg)
        return idx

    def tokens(self, idx: int) -> int:
        return self.items[idx]["tokens"]

    def count_text(self, text: str) -> int:
        return self._count(text)
