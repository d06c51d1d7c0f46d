"""The bounded, thread-safe memo of incremental prompt counting (:class:`MessageTokenCache`): each
message's tokens by content, and per conversation the last prompt's running totals."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from typing import Any


class MessageTokenCache:
    """The counting memo: bounded, safe to share between threads. Three parts:

    * **texts** — per tiktoken encoding, an LRU map ``text -> tokens`` for the texts the OpenAI template
      sums (message contents, tool-call arguments). The key is the string itself: Python caches a string's
      hash on the object, so looking up a text an agent re-sends (the same string, call after call) costs
      O(1) whatever its length, and equality is exact (no collision risk).
    * **messages** — for the other templates (whose wrappers make a message's count more than a sum of
      texts) and unusual messages: an LRU map from a message's key (tokenizer and template, role, content,
      name, tool calls) to ``(tokens, characters held)``.
    * **conversations** — per conversation (found by its first two messages), up to 8 remembered prompts
      as ``[snapshot, running totals]``: shallow copies of the prompt's messages and the sums of their
      first i counts. A new prompt that starts with a snapshot (compared by value) reuses its total in one
      step and only looks at its new messages. At most ``max_prefixes`` conversations are kept.

    Texts and messages together are bounded by ``max_entries`` and by ``max_chars``, the total length of
    the strings their keys keep alive. Reads are lock-free (single dict operations are atomic under the
    GIL: keys are strings or tuples of strings, so no Python-level ``__eq__``/``__hash__`` runs); compound
    updates take one lock per counted prompt. Without contention the counters and the bounds' accounting are
    exact; two threads tokenizing the same new text at once may both count it, which only makes eviction
    start a little early (and is forgotten once the memo empties).
    """

    __slots__ = ("max_entries", "max_chars", "max_prefixes", "_data", "_texts", "_entries", "_chars", "_prefixes",
                 "_lock", "hits", "misses", "prefix_hits")
    _PER_HEAD = 8

    def __init__(self, max_entries: int = 100_000, max_chars: int = 64_000_000, max_prefixes: int = 256) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_prefixes = max_prefixes
        self._data: OrderedDict[Any, tuple[int, int]] = OrderedDict()
        self._texts: dict[str, OrderedDict[str, int]] = {}
        self._entries = 0  # texts + messages held (a counter: len() of every memo costs more per call)
        self._chars = 0
        self._prefixes: OrderedDict[Any, list[list[list]]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0  # texts or messages looked up one by one and found
        self.misses = 0  # texts or messages tokenized (and stored)
        self.prefix_hits = 0  # messages whose count came from a verified re-sent prefix

    def get(self, key: Any) -> int | None:
        """The count stored under a message key (or ``None``)."""
        entry = self._data.get(key)
        if entry is None:
            self.misses += 1
            return None
        try:
            self._data.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile; the value we read is still right
            pass
        self.hits += 1
        return entry[0]

    def put(self, key: Any, value: int, size: int = 0) -> None:
        """Store ``value`` under a message key; ``size``: characters the key keeps alive (counted against
        ``max_chars``)."""
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._chars -= old[1]
            else:
                self._entries += 1
            self._data[key] = (value, size)
            self._chars += size
            self._evict()

    def _text_memo(self, encoding: str) -> OrderedDict[str, int]:
        memo = self._texts.get(encoding)
        if memo is None:
            with self._lock:
                memo = self._texts.setdefault(encoding, OrderedDict())
        return memo

    def _evict(self) -> None:
        """Drop least recently used entries until within bounds, from the largest memo first (the caller
        holds the lock)."""
        while self._entries > self.max_entries or self._chars > self.max_chars:
            candidates: list[OrderedDict[Any, Any]] = [self._data, *self._texts.values()]
            memos = [m for m in candidates if m]
            if not memos:
                self._entries = self._chars = 0  # nothing held: forget what racing stores double-counted
                return
            memo: OrderedDict[Any, Any] = max(memos, key=len)
            key, value = memo.popitem(last=False)
            self._entries -= 1
            self._chars -= value[1] if memo is self._data else len(key)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._texts.clear()
            self._prefixes.clear()
            self._entries = self._chars = 0
            self.hits = self.misses = self.prefix_hits = 0

    @property
    def chars(self) -> int:
        """Total length of the strings held by the keys."""
        return self._chars

    def __len__(self) -> int:
        return len(self._data) + sum(map(len, self._texts.values()))


default_cache = MessageTokenCache()
"""The process-wide memo used unless a call passes its own (or ``cache=None`` to count from scratch)."""


def text_digest(*parts: Any) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        if isinstance(p, str):
            b = p.encode("utf-8", "surrogatepass")
        elif isinstance(p, bytes):
            b = p
        else:
            b = json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.digest()
