"""The live layer on instrumented SDK clients (``profile(..., instrument=["openai", "anthropic"])``),
through :mod:`tokprof.profiler.integrations.middleware`:

* OpenAI chat requests: the session's message passes rewrite ``messages``;
* Anthropic requests: the ``prompt-cache`` plan's breakpoints become ``cache_control`` markers on the
  planned blocks (the request is planned as the profiler records it: the system prompt, then the
  messages in OpenAI form, so the plan's indices are those of the simulated pass);
* both: a repeated deterministic request (temperature 0 or a seed) is answered from the block's memory.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from tokprof.optimizers.live.session import LiveSession, current_session, expect_requests
from tokprof.optimizers.response_cache import is_deterministic
from tokprof.profiler.integrations.anthropic import messages_to_openai
from tokprof.profiler.integrations.middleware import Middleware, add_middleware, remove_middleware

MIDDLEWARE_NAME = "tokprof-live"
"""The middleware's name: what ``transformed_by`` and ``served_by`` say on a span it acted on."""

SDK_CACHE_MAX_ENTRIES = 1024
"""At most this many SDK responses are kept per ``profile(optimize=["response-cache"])`` block."""


def _request_key(api: str, kwargs: dict[str, Any]) -> str:
    return api + "\n" + json.dumps(kwargs, sort_keys=True, ensure_ascii=False, default=str)


def before_request(api: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one request's keyword arguments for the active session (unchanged outside one)."""
    live = current_session()
    if live is None:
        return kwargs
    if api == "openai.chat.completions" and isinstance(kwargs.get("messages"), list):
        messages = [dict(m) for m in kwargs["messages"]]
        rw = live.rewrite(messages, kwargs.get("model"), "openai")
        expect_requests([(len(rw.messages), rw.deltas)])
        if rw.messages != messages:
            live.bump("requests", "transformed")
            return {**kwargs, "messages": rw.messages}
    elif api == "anthropic.messages" and "prompt-cache" in live.passes:
        return anthropic_breakpoints(live, kwargs)
    return kwargs


def _block_ends(message: dict[str, Any]) -> list[int]:
    """For each OpenAI-form message one Anthropic message becomes (see ``messages_to_openai``): the index
    of the content block that ends it."""
    content = message.get("content")
    if isinstance(content, str):
        return [0]
    blocks = [b if isinstance(b, dict) else {} for b in content or []]
    if message.get("role") == "assistant":
        return [len(blocks) - 1] if blocks else []
    ends = [i for i, b in enumerate(blocks) if b.get("type") == "tool_result"]
    rest = [i for i, b in enumerate(blocks) if b.get("type") != "tool_result"]
    return ends + ([rest[-1]] if rest else [])


def anthropic_breakpoints(live: LiveSession, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with ``cache_control`` where the ``prompt-cache`` pass plans breakpoints for this request."""
    system = kwargs.get("system")
    raw = [dict(m) for m in kwargs.get("messages") or []]
    as_openai = messages_to_openai(system, raw)
    rw = live.rewrite(as_openai, kwargs.get("model"), "anthropic")
    expect_requests([(len(as_openai), rw.deltas)])
    if not rw.plan:
        return kwargs
    marker: dict[str, Any] = {"type": "ephemeral"}
    if rw.plan.get("ttl") == "1h":
        marker["ttl"] = "1h"
    # OpenAI-form index -> (Anthropic message index or "system", block index)
    places: list[tuple[Any, int]] = []
    if system:
        places.append(("system", -1))
    for j, m in enumerate(raw):
        places.extend((j, b) for b in _block_ends(m))
    kwargs = dict(kwargs)
    for i in rw.plan["breakpoints"]:
        if i >= len(places):
            continue
        where, b = places[i]
        if where == "system":
            blocks: list[dict[str, Any]] = (
                [{"type": "text", "text": system}] if isinstance(system, str) else [dict(x) for x in system or []])
            blocks[-1] = {**blocks[-1], "cache_control": marker}
            kwargs["system"] = system = blocks
            continue
        msg = raw[where]
        content = msg.get("content")
        blocks = ([{"type": "text", "text": content}] if isinstance(content, str)
                  else [dict(x) for x in content or []])
        if 0 <= b < len(blocks):
            blocks[b] = {**blocks[b], "cache_control": marker}
            raw[where] = {**msg, "content": blocks}
    kwargs["messages"] = raw
    return kwargs


def lookup(api: str, kwargs: dict[str, Any]) -> Any:
    live = current_session()
    if live is None or "response-cache" not in live.passes or not is_deterministic(kwargs):
        return None
    hit = live.sdk_cache.get(_request_key(api, kwargs))
    if hit is not None:
        live.bump("response-cache", "hits")
    return hit


def after_response(api: str, kwargs: dict[str, Any], response: Any) -> None:
    live = current_session()
    if live is not None and "response-cache" in live.passes and is_deterministic(kwargs):
        cache = live.sdk_cache
        cache.setdefault(_request_key(api, kwargs), response)
        while len(cache) > SDK_CACHE_MAX_ENTRIES:  # bounded: drop the oldest responses first
            cache.pop(next(iter(cache)), None)


_lock = threading.Lock()
_depth = 0
_MIDDLEWARE = Middleware(MIDDLEWARE_NAME, before_request, lookup, after_response)


def enter(session: LiveSession) -> None:
    """Plug the middleware in for a live block (reference-counted across nested blocks)."""
    global _depth
    with _lock:
        _depth += 1
        if _depth == 1:
            add_middleware(_MIDDLEWARE)


def exit(session: LiveSession) -> None:  # noqa: A001 - the pair of enter()
    global _depth
    with _lock:
        _depth -= 1
        if _depth == 0:
            remove_middleware(_MIDDLEWARE)
