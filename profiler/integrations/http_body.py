"""The response body of an LLM API call as the HTTP-level fallback (``http_fallback.py``) reads it: a copy of
the bytes the caller reads, parsed as they go by. SSE (``text/event-stream``) and NDJSON are read event by event
into the route's stream accumulator; any other body is kept whole and read as JSON at its end (a JSON array:
Gemini's ``streamGenerateContent`` without ``alt=sse``). gzip/deflate bodies are decompressed; other
encodings are left unread (the call is then counted locally, labelled)."""

from __future__ import annotations

import json
import zlib
from typing import Any

from tokprof.profiler.integrations import http_routes

__all__ = ["Sink", "NO_BODY", "MAX_BODY", "loads"]

MAX_BODY = 32 * 1024 * 1024
"""A request or response body larger than this is not parsed (the call is recorded from what was read)."""


_PIECE = 1 << 20
"""At most this many decompressed bytes are produced at a time."""


def loads(text: str | bytes) -> Any:
    """Parsed JSON, or ``None`` for anything that is not JSON tokprof can read: malformed, not UTF-8, or
    nested past Python's recursion limit (``RecursionError``, not a ``ValueError``). Junk from a server or a
    caller, never a tokprof error."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


class Sink:
    """Parses a copy of the response body: SSE and NDJSON event by event (each handed to the route's stream
    accumulator), anything else kept whole and read as JSON at the end. Implements the ``Accumulator``
    protocol for :meth:`CallState.end_stream`."""

    def __init__(self, adapter: Any, content_type: str, encoding: str) -> None:
        ct = content_type.lower()
        self.adapter = adapter
        self.mode = "sse" if "event-stream" in ct else "ndjson" if ("ndjson" in ct or "jsonl" in ct) else "body"
        self.events = adapter.accumulator() if self.mode != "body" else None
        self.buffer = bytearray()
        self.data: list[str] = []
        self.data_size = 0
        enc = encoding.lower().strip()
        self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS) if enc in ("gzip", "x-gzip") else \
            zlib.decompressobj() if enc == "deflate" else None
        self.deflate_head: bytes | None = b"" if enc == "deflate" else None
        self.unreadable = enc not in ("", "identity", "gzip", "x-gzip", "deflate")
        """An encoding tokprof does not decode (br, zstd): the body is not parsed; usage is counted."""

    def feed(self, chunk: bytes) -> None:
        if self.unreadable or not chunk:
            return
        if self.decoder is None:
            self._take(chunk)
            return
        # decompressed piece by piece: a gzip bomb (1000:1) must not inflate a whole network chunk at once
        while not self.unreadable:
            try:
                piece = self.decoder.decompress(chunk, _PIECE)
            except zlib.error:
                if self.deflate_head is None:
                    raise
                # "deflate" sent as a raw deflate stream, not zlib-wrapped (RFC 9110): a common server mistake
                # httpx and urllib3 both accept, so the caller got the body; read it the same way
                chunk, self.deflate_head = bytes(self.deflate_head) + chunk, None
                self.decoder = zlib.decompressobj(-zlib.MAX_WBITS)
                continue
            if self.deflate_head is not None:  # until the first output, the input is kept for that retry
                self.deflate_head = None if piece else self.deflate_head + chunk
            chunk = self.decoder.unconsumed_tail
            self._take(piece)
            if not chunk and len(piece) < _PIECE:
                return

    def _take(self, chunk: bytes) -> None:
        if not chunk:
            return
        if self.mode == "body" or b"\n" not in chunk:
            if len(self.buffer) + len(chunk) > MAX_BODY:
                self._give_up()  # a body (or one line) this large is not an LLM answer tokprof can read
                return
            self.buffer += chunk
            return
        # split only when a line ends: a giant line arriving in small chunks is copied once, not per chunk
        self.buffer += chunk
        *lines, rest = self.buffer.split(b"\n")
        self.buffer = rest
        for line in lines:
            self._line(line)
            if self.unreadable:
                return
        if len(self.buffer) > MAX_BODY:
            self._give_up()

    def _give_up(self) -> None:
        self.unreadable = True
        self.buffer = bytearray()
        self.data, self.data_size = [], 0

    observe = feed

    def _line(self, raw: bytes | bytearray) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        if self.mode == "ndjson":
            if text.strip():
                self._event(text)
        elif not text:  # SSE: a blank line ends an event
            self._dispatch()
        elif text.startswith("data:"):
            value = text[5:]
            self.data.append(value[1:] if value.startswith(" ") else value)
            self.data_size += len(value)
            if self.data_size > MAX_BODY:  # data lines with no blank line to end the event: not kept forever
                self._give_up()

    def _dispatch(self) -> None:
        data, self.data, self.data_size = "\n".join(self.data), [], 0
        if data and data.strip() != "[DONE]":
            self._event(data)

    def _event(self, text: str) -> None:
        obj = loads(text)
        if obj is None:
            return  # a keep-alive or a vendor's non-JSON line
        assert self.events is not None
        for item in obj if isinstance(obj, list) else [obj]:
            if isinstance(item, dict):
                self.events.observe(http_routes.View(item))

    def finish(self, call: Any) -> None:
        if self.unreadable:
            return
        if self.mode != "body":
            if self.buffer:
                self._line(bytes(self.buffer))
                self.buffer.clear()
            self._dispatch()
            assert self.events is not None
            self.events.finish(call)
            return
        obj = loads(bytes(self.buffer))
        if isinstance(obj, dict):
            self.adapter.fill(call, http_routes.View(obj))
        elif isinstance(obj, list):  # Gemini's streamGenerateContent without alt=sse: a JSON array
            acc = self.adapter.accumulator()
            for item in obj:
                if isinstance(item, dict):
                    acc.observe(http_routes.View(item))
            acc.finish(call)
        elif bytes(self.buffer.lstrip()[:5]) in (b"data:", b"event"):  # a stream read whole by the caller
            again = Sink(self.adapter, "text/event-stream", "")
            again.feed(bytes(self.buffer) + b"\n\n")
            again.finish(call)


class _NoBody:
    """The accumulator of a body tokprof could not read: nothing observed, nothing written."""

    def observe(self, item: Any) -> None:
        pass

    def finish(self, call: Any) -> None:
        pass


NO_BODY = _NoBody()
