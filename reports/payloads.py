"""Message payloads for the report: each distinct message stored once, with an estimated token count.

An agent re-sends its whole history on every call, so a run of 10,000 calls references the same messages
hundreds of thousands of times. The report stores every distinct message once (keyed by a hash of its
canonical JSON) and each call refers to its messages by index into that table.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from tokprof.profiler.providers.tokenizers import tokenizer_for

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
        fn = fn if isinstance(fn, dict) else {}  # a file's tool call can hold "function": null
        args = fn.get("arguments", "")
        if not isinstance(args, str):
            args = json.dumps(args, ensure_ascii=False, default=str)
        parts.append(f"{fn.get('name', '?')}({args})")
    return "\n".join(parts)


def _heuristic_count(text: str) -> int:
    # ~4 characters per token for English and code with BPE tokenizers; good enough to split a call's
    # provider-reported total between its parts (the totals shown are never this estimate).
    return (len(text) + 3) // 4


def _model_counter() -> Callable[[str, str | None], tuple[int, str]]:
    """Count a text for a model with the offline tokenizer registry when present (``counted`` when the
    tokenizer is exact for that model, else ``estimated``), else with a character heuristic."""
    try:
        tokenizer_for("gpt-4o").count("probe")
    except Exception:  # noqa: BLE001 - registry missing or broken: the heuristic still splits totals
        return lambda text, model: (_heuristic_count(text), "estimated")

    def count(text: str, model: str | None) -> tuple[int, str]:
        try:
            choice = tokenizer_for(model or "gpt-4o")
            return choice.count(text), ("counted" if choice.exact else "estimated")
        except Exception:  # noqa: BLE001
            return _heuristic_count(text), "estimated"

    return count


class PayloadTable:
    """Distinct messages in first-seen order; ``add`` returns a message's index in the table."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._by_hash: dict[str, int] = {}
        self._by_id: dict[int, int] = {}
        self._keep: list[Any] = []  # keep memoised objects alive so their id() stays unique
        self._count = _model_counter()
        self.sources: dict[str, int] = {}

    @property
    def source(self) -> str:
        """How the per-message counts were made: ``counted``, ``estimated`` or ``counted/estimated``."""
        return "/".join(sorted(self.sources, key=lambda k: -self.sources[k])) or "estimated"

    def add(self, msg: Any, model: str | None = None) -> int:
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
            tokens, src = self._count(text, model)
            self.sources[src] = self.sources.get(src, 0) + 1
            item: dict[str, Any] = {
                "role": str(role),
                "text": text,
                "tokens": tokens + MESSAGE_OVERHEAD_TOKENS,
                "src": src,
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

    def count_text(self, text: str, model: str | None = None) -> int:
        return self._count(text, model)[0]
