"""The HTTP-level fallback (``http_fallback.py``) on ``requests``: ``Session.send`` hooked; a streamed answer is
watched by wrapping the methods of the response's own ``raw`` (the caller keeps that object and its bytes)."""

from __future__ import annotations

import contextvars
import functools
from typing import Any

from tokprof.profiler.hooks import internal_error
from tokprof.profiler.integrations.http_fallback import Exchange, answered, begin_exchange, tee_chunks
from tokprof.profiler.integrations.sdk_patching import Patch, patch

__all__ = ["patch_requests"]


def _tee_raw(raw: Any, ex: Exchange) -> None:
    """Watch a streamed ``requests`` response's ``raw`` (a urllib3 response) in place: its ``stream()``,
    ``read()`` and ``close()`` are wrapped on the object itself, so the caller keeps the very object
    (``isinstance(r.raw, urllib3.HTTPResponse)`` holds; a stand-in object broke that) and gets the same bytes,
    while a decoded copy feeds the exchange. ``stream()`` reads through ``self.read``: inside it, ``read`` only
    passes through (each byte is fed once)."""
    orig_stream, orig_read, orig_close = raw.stream, raw.read, raw.close
    depth = [0]

    def undecoded(_chunk: Any) -> None:  # the caller asked for the bytes as sent (maybe compressed): not parsed
        ex.broken = True

    def stream(amt: Any = 2 ** 16, decode_content: Any = None) -> Any:
        depth[0] += 1
        try:
            yield from tee_chunks(orig_stream(amt, decode_content=decode_content), ex,
                                  ex.feed if decode_content else undecoded)
        finally:
            depth[0] -= 1

    def read(*args: Any, **kwargs: Any) -> Any:
        if depth[0]:
            return orig_read(*args, **kwargs)
        try:
            data = orig_read(*args, **kwargs)
        except BaseException as exc:
            ex.end(exc, False)
            raise
        if kwargs.get("decode_content") or str(raw.headers.get("content-encoding") or "identity") == "identity":
            ex.feed(data)
        else:
            ex.broken = True
        amt = args[0] if args else kwargs.get("amt")
        if not data or amt is None:  # an empty read is the end; a read without a size returned the whole body
            ex.end(None, True)
        return data

    def close() -> None:
        try:
            orig_close()
        finally:
            ex.end(None, False)

    raw.stream, raw.read, raw.close = stream, read, close


_HOPS: contextvars.ContextVar[list[Exchange] | None] = contextvars.ContextVar("tokprof_requests_hops", default=None)
"""The exchanges begun by the sends a recorded ``Session.send`` makes itself: requests follows a redirect that
keeps the POST (307/308) by sending it again through ``Session.send`` (hooked), and that send records the call."""


def _make_requests_send(original: Any) -> Any:
    @functools.wraps(original)
    def send(self: Any, request: Any, **kwargs: Any) -> Any:
        body = getattr(request, "body", None)
        ex = begin_exchange(getattr(request, "method", ""), getattr(request, "url", ""),
                    lambda: body if isinstance(body, (bytes, str)) else None)
        if ex is None:
            return original(self, request, **kwargs)
        outer = _HOPS.get()
        if outer is not None:
            outer.append(ex)
        hops: list[Exchange] = []
        token = _HOPS.set(hops)
        try:
            response = original(self, request, **kwargs)
        except BaseException as exc:
            if hops:  # the redirected send recorded the call (and its failure): never twice
                ex.state.done = True
            else:
                ex.fail(exc)
            raise
        finally:
            _HOPS.reset(token)
        if hops:
            # a redirect followed with the POST sent again: that send recorded the call; this span is
            # dropped, never ended (the response is the final hop's)
            ex.state.done = True
            return response
        read = not kwargs.get("stream")
        if answered(ex, getattr(response, "status_code", None), response.headers,
                     (lambda: response.content or b"") if read else None):
            try:
                ex.sink.decoder = None  # type: ignore[union-attr]  # only decoded bytes are fed
                _tee_raw(response.raw, ex)
            except Exception as exc:
                internal_error("http fallback stream", exc)
                ex.end(None, False)
        return response
    return send


def patch_requests() -> list[Patch]:
    import requests

    return [patch(requests.Session, "send", _make_requests_send)]
