"""Native (non-OpenAI) routes for the loopback server of tests/llm_server.py: Ollama's ``/api/chat`` and
``/api/generate`` and Cohere's ``/v2/chat``, each in its provider's documented format. Importing this module
adds them (the HTTP-fallback tests and benchmarks/probe_paths.py do).

* Ollama (https://docs.ollama.com/api/chat, https://docs.ollama.com/api/usage): a JSON object, or when
  ``stream`` is true or absent (Ollama's default) newline-delimited JSON (``application/x-ndjson``); the counts
  ``prompt_eval_count`` / ``eval_count`` come on the object whose ``done`` is true.
* Cohere v2 chat (https://docs.cohere.com/reference/chat, https://docs.cohere.com/v2/docs/how-does-cohere-pricing-work):
  ``usage.billed_units`` (what is billed) and ``usage.tokens`` (what was processed); a stream is SSE events
  ``message-start``, ``content-start``, ``content-delta``, ``content-end``, ``message-end`` (usage in
  ``delta.usage``).
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

from llm_server import Reply, _Handler

_previous = _Handler._extra_route  # type: ignore[attr-defined]

COHERE_UNBILLED = 3
"""Cohere: ``usage.tokens`` counts this many more input tokens than ``billed_units`` (tokens Cohere adds
itself and does not bill, per its pricing page)."""


def _send_ndjson(self: _Handler, objects: Iterator[dict[str, Any]]) -> None:
    self.send_response(200)
    self.send_header("Content-Type", "application/x-ndjson")
    self.send_header("Transfer-Encoding", "chunked")
    self.end_headers()
    for obj in objects:
        raw = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()
    self.wfile.write(b"0\r\n\r\n")
    self.wfile.flush()


def _ollama(self: _Handler, path: str, body: dict[str, Any], reply: Reply) -> None:
    chat = path.endswith("/api/chat")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def obj(text: str, done: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"model": body.get("model"), "created_at": stamp, "done": done}
        if chat:
            out["message"] = {"role": "assistant", "content": text}
        else:
            out["response"] = text
        if done:
            usage = reply.usage or {"prompt_eval_count": reply.input_tokens, "eval_count": reply.output_tokens}
            out.update({"done_reason": "stop", "total_duration": 1000, "load_duration": 10,
                        "prompt_eval_duration": 100, "eval_duration": 800, **usage})
        return out

    if reply.status >= 400:
        self._send_json(reply.status, {"error": reply.error_message})
        return
    if body.get("stream", True):
        _send_ndjson(self, iter([obj(p, False) for p in reply.pieces()] + [obj("", True)]))
    else:
        self._send_json(200, obj(reply.text, True))


def _cohere_usage(reply: Reply) -> dict[str, Any]:
    if reply.usage is not None:
        return dict(reply.usage)
    return {"billed_units": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
            "tokens": {"input_tokens": reply.input_tokens + COHERE_UNBILLED, "output_tokens": reply.output_tokens},
            "cached_tokens": reply.cached_tokens}


def _cohere(self: _Handler, body: dict[str, Any], reply: Reply) -> None:
    if reply.status >= 400:
        self._send_json(reply.status, {"message": reply.error_message})
        return
    cid = self.owner.new_id("co-")
    if not body.get("stream"):
        self._send_json(200, {"id": cid, "finish_reason": "COMPLETE", "message": {
            "role": "assistant", "content": [{"type": "text", "text": reply.text}]}, "usage": _cohere_usage(reply)})
        return
    events: list[tuple[str | None, Any]] = [("message-start", {"type": "message-start", "id": cid, "delta": {
        "message": {"role": "assistant", "content": [], "tool_plan": "", "tool_calls": [], "citations": []}}}),
        ("content-start", {"type": "content-start", "index": 0,
                           "delta": {"message": {"content": {"type": "text", "text": ""}}}})]
    for piece in reply.pieces():
        events.append(("content-delta", {"type": "content-delta", "index": 0,
                                         "delta": {"message": {"content": {"text": piece}}}}))
    events.append(("content-end", {"type": "content-end", "index": 0}))
    events.append(("message-end", {"type": "message-end", "delta": {"finish_reason": "COMPLETE",
                                                                    "usage": _cohere_usage(reply)}}))
    self._send_sse(iter(events))


def _native_route(self: _Handler, path: str, body: dict[str, Any], reply: Reply) -> bool:
    if path.endswith(("/api/chat", "/api/generate")):
        _ollama(self, path, body, reply)
        return True
    if path.endswith("/v2/chat"):
        _cohere(self, body, reply)
        return True
    return bool(_previous(self, path, body, reply))


_Handler._extra_route = _native_route  # type: ignore[attr-defined]
