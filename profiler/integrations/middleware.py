"""Middleware around instrumented SDK calls: the seam live optimization plugs into.

Each instrumented call (``openai.chat.completions``, ``openai.responses``, ``anthropic.messages``) runs,
in order:

1. every middleware's ``before_request(api, kwargs) -> kwargs`` (a request transform: compress the
   messages, add cache breakpoints...). It gets a shallow copy and must return new lists/dicts rather
   than edit the caller's messages in place. The span records the request as finally sent and names the
   middlewares that changed it (``transformed_by`` attribute).
2. for non-streaming calls, every ``lookup(api, kwargs) -> response | None`` until one returns a response
   (a response cache). A hit is returned to the caller as is (it must be the SDK's own response type),
   no HTTP request is made, and the span is marked ``served_from`` with zero billed tokens.
3. the real call, then every ``after_response(api, kwargs, response)`` (non-streaming; to fill a cache).

A failing middleware is reported once through ``internal_error`` and skipped: the call goes on as if it
were not there. Middleware runs only while the SDK is instrumented (inside or outside a profile).

>>> from tokprof.profiler.integrations import Middleware, add_middleware, instrument
>>> instrument("openai")
>>> remove = add_middleware(Middleware("my-cache", lookup=lambda api, kw: cache.get(key(kw)),
...                                    after_response=lambda api, kw, resp: cache.put(key(kw), resp)))
>>> remove()   # unregister
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Callable

from tokprof.profiler.policy import internal_error

__all__ = ["Middleware", "add_middleware", "remove_middleware", "middlewares"]

BeforeRequest = Callable[[str, dict[str, Any]], dict[str, Any]]
Lookup = Callable[[str, dict[str, Any]], Any]
AfterResponse = Callable[[str, dict[str, Any], Any], None]


@dataclass(frozen=True)
class Middleware:
    """Hooks around one instrumented SDK call; any of them may be ``None``."""

    name: str
    before_request: BeforeRequest | None = None
    lookup: Lookup | None = None
    after_response: AfterResponse | None = None


_lock = threading.Lock()
_middlewares: tuple[Middleware, ...] = ()
"""Immutable snapshot, replaced on change: the hot path reads it without a lock."""


def add_middleware(middleware: Middleware) -> Callable[[], None]:
    """Register ``middleware`` (runs after those already registered); returns a function removing it."""
    global _middlewares
    with _lock:
        _middlewares = (*_middlewares, middleware)
    return lambda: remove_middleware(middleware)


def remove_middleware(middleware: Middleware) -> None:
    global _middlewares
    with _lock:
        _middlewares = tuple(m for m in _middlewares if m is not middleware)


def middlewares() -> tuple[Middleware, ...]:
    return _middlewares


def apply_before(api: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Run the request transforms; returns the kwargs to send and the names of those that changed them."""
    changed: list[str] = []
    for m in _middlewares:
        if m.before_request is None:
            continue
        try:
            new = m.before_request(api, dict(kwargs))
        except Exception as exc:
            internal_error(f"middleware {m.name} before_request", exc)
            continue
        if isinstance(new, dict) and new != kwargs:
            kwargs = new
            changed.append(m.name)
    return kwargs, changed


def apply_lookup(api: str, kwargs: dict[str, Any]) -> tuple[Any, str | None]:
    """The first cached response for ``kwargs`` and the middleware that served it, or ``(None, None)``."""
    for m in _middlewares:
        if m.lookup is None:
            continue
        try:
            hit = m.lookup(api, kwargs)
        except Exception as exc:
            internal_error(f"middleware {m.name} lookup", exc)
            continue
        if hit is not None:
            return hit, m.name
    return None, None


def apply_after(api: str, kwargs: dict[str, Any], response: Any) -> None:
    for m in _middlewares:
        if m.after_response is None:
            continue
        try:
            m.after_response(api, kwargs, response)
        except Exception as exc:
            internal_error(f"middleware {m.name} after_response", exc)
