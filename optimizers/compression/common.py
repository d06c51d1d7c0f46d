"""What every compression pass shares: message text access, token counting, and rewriting a call.

Each compression pass is a *pure function of one call's message list* (``compress(messages) ->
messages``). Because an agent re-sends its growing history, the same function applied to each call's
input rewrites every earlier message the same way on every call, so the prompt prefix stays stable
between compactions (a provider's prefix cache keeps hitting), and a pass can never peek at a call's
output or at later calls: it only ever sees that call's input. Block decisions (mask now, compact now)
are replayed from the message list itself: each assistant message in the list marks where an earlier
call happened, and its input was everything before it.

Token accounting of a rewritten call: new input tokens = recorded input tokens - tokens of the removed
messages + tokens of the inserted ones, counted with ``tokprof.profiler.providers.chat_format`` (the model's tokenizer);
when that is unavailable, a len/4 heuristic, labelled ``estimated``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from tokprof.profiler.policy import internal_error
from tokprof.profiler.model import TOKEN_SOURCES, LLMCall, Message, TokenSource
from tokprof.profiler.providers.chat_format import count_prompt

CHARS_PER_TOKEN = 4
"""The fallback heuristic (and the cheap size used for block decisions, which must not depend on which
tokenizer happens to be installed so that live and simulated decisions agree)."""


# ---- message text -----------------------------------------------------------------------------------
def text_of(content: Any) -> str:
    """The text of a message ``content`` (a string or a list of OpenAI content parts)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return "" if content == "None" else content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                if isinstance(p.get("text"), str):
                    parts.append(p["text"])
            elif isinstance(p, str):
                parts.append(p)
        return "\n".join(parts)
    return str(content)


def tool_call_text(m: Message) -> str:
    """Names and arguments of a message's tool calls, as text."""
    out = []
    for tc in m.get("tool_calls") or []:
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function") or tc
        args = fn.get("arguments")
        out.append(f"{fn.get('name') or ''}({args if isinstance(args, str) else json.dumps(args)})")
    return "\n".join(out)


def message_text(m: Message) -> str:
    """Everything a model reads in a message: its content and its tool calls."""
    t = text_of(m.get("content"))
    tc = tool_call_text(m)
    return f"{t}\n{tc}" if tc else t


def with_text(m: Message, text: str) -> Message:
    """A copy of ``m`` whose content is ``text`` (other fields kept)."""
    n = dict(m)
    n["content"] = text
    return n


def rough_tokens(text: str) -> int:
    """Cheap size for block decisions: chars / 4, rounded up."""
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def call_points(messages: list[Message]) -> list[int]:
    """Indices ``i`` such that ``messages[:i]`` was the input of an earlier call of the same
    conversation (each assistant message was produced by one), followed by the current call."""
    pts = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    return [*pts, len(messages)]


def tool_names_by_call_id(messages: list[Message]) -> dict[str, tuple[str, str]]:
    """tool_call_id -> (tool name, arguments text) from the assistant messages' tool calls."""
    out: dict[str, tuple[str, str]] = {}
    for m in messages:
        for tc in m.get("tool_calls") or []:
            if not isinstance(tc, dict):
                continue
            fn = tc.get("function") or tc
            args = fn.get("arguments")
            out[str(tc.get("id") or "")] = (str(fn.get("name") or "tool"),
                                            args if isinstance(args, str) else json.dumps(args or {}))
    return out


# ---- token counting ----------------------------------------------------------------------------------
def count_message_tokens(messages: list[Message], model: str | None) -> tuple[list[int], TokenSource]:
    """Tokens of each message as ``model``'s provider bills it, and how they were counted."""
    try:
        pc = count_prompt(messages, model or "gpt-4o")
        return list(pc.messages), pc.source
    except Exception as exc:  # a tokenizer failure must not stop the pass: fall back, labelled
        internal_error("compression.count_message_tokens", exc)
    return [rough_tokens(message_text(m)) + 4 for m in messages], "estimated"


def _weaker(a: TokenSource | None, b: TokenSource) -> TokenSource:
    if a is None:
        return b
    return a if TOKEN_SOURCES.index(a) >= TOKEN_SOURCES.index(b) else b


@dataclass
class Rewritten:
    """The new input of one call and what changed."""

    messages: list[Message]
    change: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    extra_tokens: int = 0
    """Tokens to add on top of the counted difference (an *estimated* simulated summary size)."""
    extra_source: TokenSource | None = None


def rewrite_call(call: LLMCall, new: Rewritten) -> tuple[int, int, TokenSource]:
    """Replace ``call``'s messages and update its usage; returns (tokens before, after, source).

    Only the messages that differ are counted; cache read/write tokens are reset to 0 because the
    prompt changed (the billing simulator's prompt-cache planning re-derives them)."""
    old_msgs = call.messages
    old_keys, new_keys = [_key(m) for m in old_msgs], [_key(m) for m in new.messages]  # each serialised once
    removed = _multiset_minus(old_msgs, old_keys, new_keys)
    inserted = _multiset_minus(new.messages, new_keys, old_keys)
    rem_counts, src1 = count_message_tokens(removed, call.model) if removed else ([], "counted")
    ins_counts, src2 = count_message_tokens(inserted, call.model) if inserted else ([], "counted")
    delta = sum(ins_counts) - sum(rem_counts) + new.extra_tokens
    u = call.usage
    before = u.input_tokens
    src: TokenSource = _weaker(src1, src2)
    if new.extra_source:
        src = _weaker(src, new.extra_source)
    if u.known("input_tokens"):
        after = max(0, before + delta)
        src = _weaker(src, "counted") if u.source("input_tokens") in ("provider", "counted") else "estimated"
    else:
        counts, s = count_message_tokens(new.messages, call.model)
        after = sum(counts) + new.extra_tokens + 3
        src = _weaker(s, src)
    call.messages = new.messages
    u.set("input_tokens", after, src)
    for name in ("cache_read_tokens", "cache_write_tokens"):
        if u.known(name) or getattr(u, name):
            u.set(name, 0, src)
    return before, after, src


def _key(m: Message) -> str:
    return json.dumps(m, sort_keys=True, default=str)


def _multiset_minus(a: list[Message], a_keys: list[str], b_keys: list[str]) -> list[Message]:
    """The messages of ``a`` with no counterpart in ``b`` (multiset difference by :func:`_key`, order of
    ``a``); ``a_keys``/``b_keys``: the keys of ``a`` and ``b``."""
    pool: dict[str, int] = {}
    for k in b_keys:
        pool[k] = pool.get(k, 0) + 1
    out = []
    for m, k in zip(a, a_keys):
        if pool.get(k, 0) > 0:
            pool[k] -= 1
        else:
            out.append(m)
    return out


Compressor = Callable[[list[Message]], Rewritten]
"""What a compression pass is, underneath: one call's input in, its rewrite out."""
