"""A small real HTTP server speaking enough of the OpenAI and Anthropic APIs for the SDK integration tests.

It listens on 127.0.0.1 on a free port (stdlib ``ThreadingHTTPServer`` in a daemon thread) and answers
scripted completions with realistic usage blocks:

* OpenAI ``POST /v1/chat/completions`` (JSON, or SSE chunks with a final usage-only chunk when
  ``stream_options.include_usage`` is set) and ``POST /v1/responses`` (JSON, or the SSE event sequence
  ``response.created`` ... ``response.completed``).
* Anthropic ``POST /v1/messages`` (JSON, or the SSE event stream ``message_start`` (with usage),
  ``content_block_start/delta/stop``, ``ping``, ``message_delta`` (with usage), ``message_stop``).

Replies are taken in order from :meth:`LLMServer.script`; when the script is empty a default reply is used.
A reply with ``status`` >= 400 answers with an API error body of that status. Every request is kept in
:attr:`LLMServer.requests` so tests can check what the SDK really sent.

Real SDK clients point at it: ``OpenAI(base_url=server.openai_url, api_key="test", max_retries=0)``,
``Anthropic(base_url=server.anthropic_url, api_key="test", max_retries=0)``.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator


@dataclass
class Reply:
    """One scripted completion. Token counts follow tokprof's convention (``input_tokens`` includes cached
    and cache-write tokens); the server converts to each API's own way of reporting them."""

    text: str = "Hello from the loopback server."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``[{"id": "call_1", "name": "add", "arguments": {"a": 1}}]``"""
    input_tokens: int = 42
    output_tokens: int = 7
    cached_tokens: int = 0
    """OpenAI ``cached_tokens`` / Anthropic ``cache_read_input_tokens``."""
    cache_write_tokens: int = 0
    """Anthropic ``cache_creation_input_tokens``; OpenAI ``cache_write_tokens`` (sent only when non-zero)."""
    reasoning_tokens: int = 0
    """OpenAI ``reasoning_tokens`` / Anthropic ``thinking_tokens`` (part of ``output_tokens``)."""
    status: int = 200
    error_message: str = "scripted failure"
    usage: dict[str, Any] | None = None
    """A usage block sent verbatim in the API's own dialect (DeepSeek hit/miss, Kimi ``cached_tokens``, Qwen
    explicit cache, Anthropic TTL split, Gemini ``usageMetadata``...) instead of one built from the counts above."""
    usage_in_choice: bool = False
    """Chat stream: put the usage in the last chunk's ``choices[0].usage`` (Kimi/Moonshot) instead of a
    usage-only chunk."""
    delta_usage: dict[str, Any] | None = None
    """Anthropic stream: extra fields for ``message_delta``'s usage (e.g. a gateway's ``input_tokens: 0``)."""
    x_groq_usage: bool = False
    """Chat stream: also put the usage in the last content chunk's ``x_groq.usage`` (Groq)."""
    response_fields: dict[str, Any] = field(default_factory=dict)
    """Chat completion (non-streamed): extra top-level fields of the response body (e.g. ``service_tier``)."""
    usage_in_last_chunk: bool = False
    """Chat stream: put the usage on the chunk that carries ``finish_reason`` (GLM / Z.ai), without being asked."""

    def pieces(self, size: int = 5) -> list[str]:
        return [self.text[i:i + size] for i in range(0, len(self.text), size)]


@dataclass
class Recorded:
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class LLMServer:
    """The loopback server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self) -> None:
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.requests: list[Recorded] = []
        self._ids = itertools.count(1)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.responder: Any = None
        """Optional ``body -> Reply`` used when the script is empty: a stand-in model answering from the
        context it is given (``tokprof verify`` tests)."""

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "LLMServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="llm-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "LLMServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_url(self) -> str:
        return self.url  # the Anthropic SDK adds /v1/messages itself

    @property
    def dashscope_url(self) -> str:
        return f"{self.url}/api/v1"  # dashscope.base_http_api_url; the SDK adds /services/aigc/...

    # ---- scripting ----------------------------------------------------------------------------
    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def _next(self, path: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self.requests.append(Recorded(path, body, headers))
            if self._script:
                return self._script.popleft()
        return self.responder(body) if self.responder is not None else Reply()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):04d}"


class _Handler(BaseHTTPRequestHandler):
    owner: LLMServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK adds ~40 ms
    # to every keep-alive request.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    # ---- plumbing -------------------------------------------------------------------------------
    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", self.owner.new_id("req_"))
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: Iterator[tuple[str | None, Any]]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event, data in events:
            text = (f"event: {event}\n" if event else "") + "data: " + (
                data if isinstance(data, str) else json.dumps(data)) + "\n\n"
            raw = text.encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        path = self.path.split("?")[0]
        reply = self.owner._next(path, body, {k.lower(): v for k, v in self.headers.items()})
        anthropic = path.endswith("/messages")
        if self._extra_route(path, body, reply):  # type: ignore[attr-defined]  # embeddings, counting...
            return
        if ":generateContent" in path or ":streamGenerateContent" in path:
            self._gemini(path, reply)
            return
        if path.endswith("/services/aigc/text-generation/generation"):
            self._dashscope(body, reply)
            return
        if reply.status >= 400:
            if anthropic:
                self._send_json(reply.status, {"type": "error", "error": {"type": "invalid_request_error",
                                                                          "message": reply.error_message}})
            else:
                self._send_json(reply.status, {"error": {"message": reply.error_message,
                                                         "type": "invalid_request_error", "code": None}})
            return
        stream = bool(body.get("stream"))
        if path.endswith("/chat/completions"):
            if stream:
                include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
                self._send_sse(self._chat_chunks(body, reply, include_usage))
            else:
                self._send_json(200, self._chat_completion(body, reply))
        elif path.endswith("/responses"):
            if stream:
                self._send_sse(self._responses_events(body, reply))
            else:
                self._send_json(200, self._response(body, reply, "completed"))
        elif anthropic:
            if stream:
                self._send_sse(self._anthropic_events(body, reply))
            else:
                self._send_json(200, self._anthropic_message(body, reply))
        else:
            self._send_json(404, {"error": {"message": f"no route {path}", "type": "not_found"}})

    # ---- OpenAI chat completions --------------------------------------------------------------
    @staticmethod
    def _chat_usage(reply: Reply) -> dict[str, Any]:
        if reply.usage is not None:
            return dict(reply.usage)
        usage = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
            "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
        if reply.cache_write_tokens:
            usage["prompt_tokens_details"]["cache_write_tokens"] = reply.cache_write_tokens
        return usage

    def _chat_completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {"id": tc["id"], "type": "function",
                 "function": {"name": tc["name"], "arguments": json.dumps(tc["arguments"])}}
                for tc in reply.tool_calls
            ]
        return {
            "id": self.owner.new_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "system_fingerprint": "fp_loopback",
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if reply.tool_calls else "stop"}],
            "usage": self._chat_usage(reply),
            **reply.response_fields,
        }

    def _chat_chunks(self, body: dict[str, Any], reply: Reply, include_usage: bool) -> Iterator[tuple[None, Any]]:
        cid, created, model = self.owner.new_id("chatcmpl-"), int(time.time()), body.get("model")

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            c: dict[str, Any] = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                                 "system_fingerprint": "fp_loopback",
                                 "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            if include_usage:
                c["usage"] = None
            return c

        yield None, chunk({"role": "assistant", "content": ""})
        for piece in reply.pieces():
            yield None, chunk({"content": piece})
        for i, tc in enumerate(reply.tool_calls):
            args = json.dumps(tc["arguments"])
            yield None, chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                               "function": {"name": tc["name"], "arguments": ""}}]})
            for j in range(0, len(args), 6):
                yield None, chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j:j + 6]}}]})
        last = chunk({}, "tool_calls" if reply.tool_calls else "stop")
        if reply.x_groq_usage:
            last["x_groq"] = {"id": "req_loopback", "usage": self._chat_usage(reply)}
        if reply.usage_in_last_chunk:
            last["usage"] = self._chat_usage(reply)
        if reply.usage_in_choice:
            last["choices"][0]["usage"] = self._chat_usage(reply)
            last.pop("usage", None)
            yield None, last
            yield None, "[DONE]"
            return
        yield None, last
        if include_usage:
            yield None, {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "system_fingerprint": "fp_loopback", "choices": [], "usage": self._chat_usage(reply)}
        yield None, "[DONE]"

    # ---- OpenAI responses ---------------------------------------------------------------------
    def _response(self, body: dict[str, Any], reply: Reply, status: str, rid: str | None = None) -> dict[str, Any]:
        output: list[dict[str, Any]] = []
        if reply.text:
            output.append({"type": "message", "id": "msg_" + (rid or "x"), "status": "completed",
                           "role": "assistant",
                           "content": [{"type": "output_text", "text": reply.text, "annotations": []}]})
        for tc in reply.tool_calls:
            output.append({"type": "function_call", "id": "fc_" + tc["id"], "call_id": tc["id"],
                           "name": tc["name"], "arguments": json.dumps(tc["arguments"]), "status": "completed"})
        done = status == "completed"
        return {
            "id": rid or self.owner.new_id("resp_"),
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model"),
            "output": output if done else [],
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "instructions": body.get("instructions"),
            "metadata": {},
            "error": None,
            "incomplete_details": None,
            "temperature": body.get("temperature", 1.0),
            "top_p": 1.0,
            "text": {"format": {"type": "text"}},
            "truncation": "disabled",
            "usage": None if not done else dict(reply.usage) if reply.usage is not None else {
                "input_tokens": reply.input_tokens,
                "input_tokens_details": {"cached_tokens": reply.cached_tokens},
                "output_tokens": reply.output_tokens,
                "output_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
                "total_tokens": reply.input_tokens + reply.output_tokens,
            },
        }

    def _responses_events(self, body: dict[str, Any], reply: Reply) -> Iterator[tuple[str, Any]]:
        rid = self.owner.new_id("resp_")
        seq = itertools.count()
        yield "response.created", {"type": "response.created", "sequence_number": next(seq),
                                   "response": self._response(body, reply, "in_progress", rid)}
        yield "response.in_progress", {"type": "response.in_progress", "sequence_number": next(seq),
                                       "response": self._response(body, reply, "in_progress", rid)}
        item_id = "msg_" + rid
        if reply.text:
            yield "response.output_item.added", {
                "type": "response.output_item.added", "sequence_number": next(seq), "output_index": 0,
                "item": {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant",
                         "content": []}}
            yield "response.content_part.added", {
                "type": "response.content_part.added", "sequence_number": next(seq), "item_id": item_id,
                "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}
            for piece in reply.pieces():
                yield "response.output_text.delta", {
                    "type": "response.output_text.delta", "sequence_number": next(seq), "item_id": item_id,
                    "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}
            yield "response.output_text.done", {
                "type": "response.output_text.done", "sequence_number": next(seq), "item_id": item_id,
                "output_index": 0, "content_index": 0, "text": reply.text, "logprobs": []}
            yield "response.content_part.done", {
                "type": "response.content_part.done", "sequence_number": next(seq), "item_id": item_id,
                "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": reply.text, "annotations": []}}
            yield "response.output_item.done", {
                "type": "response.output_item.done", "sequence_number": next(seq), "output_index": 0,
                "item": {"type": "message", "id": item_id, "status": "completed", "role": "assistant",
                         "content": [{"type": "output_text", "text": reply.text, "annotations": []}]}}
        yield "response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                     "response": self._response(body, reply, "completed", rid)}

    # ---- Anthropic messages -------------------------------------------------------------------
    @staticmethod
    def _anthropic_usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
        if reply.usage is not None:
            return {**reply.usage, "output_tokens": output_tokens}
        usage: dict[str, Any] = {
            # Anthropic reports the uncached remainder as input_tokens.
            "input_tokens": reply.input_tokens - reply.cached_tokens - reply.cache_write_tokens,
            "cache_creation_input_tokens": reply.cache_write_tokens,
            "cache_read_input_tokens": reply.cached_tokens,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }
        if reply.reasoning_tokens:
            usage["output_tokens_details"] = {"thinking_tokens": reply.reasoning_tokens}
        return usage

    @staticmethod
    def _anthropic_content(reply: Reply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for tc in reply.tool_calls:
            content.append({"type": "tool_use", "id": tc["id"], "name": tc["name"], "input": tc["arguments"]})
        return content

    def _anthropic_message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return {
            "id": self.owner.new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": self._anthropic_content(reply),
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": self._anthropic_usage(reply, reply.output_tokens),
        }

    def _anthropic_events(self, body: dict[str, Any], reply: Reply) -> Iterator[tuple[str, Any]]:
        start = self._anthropic_message(body, reply)
        start_usage = self._anthropic_usage(reply, 1)
        details = start_usage.pop("output_tokens_details", None)  # output-side details come at the end
        start.update(content=[], stop_reason=None, usage=start_usage)
        yield "message_start", {"type": "message_start", "message": start}
        index = 0
        if reply.text:
            yield "content_block_start", {"type": "content_block_start", "index": index,
                                          "content_block": {"type": "text", "text": ""}}
            yield "ping", {"type": "ping"}
            for piece in reply.pieces():
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "text_delta", "text": piece}}
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
            index += 1
        for tc in reply.tool_calls:
            yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                "type": "tool_use", "id": tc["id"], "name": tc["name"], "input": {}}}
            args = json.dumps(tc["arguments"])
            for j in range(0, len(args), 6):
                yield "content_block_delta", {"type": "content_block_delta", "index": index,
                                              "delta": {"type": "input_json_delta", "partial_json": args[j:j + 6]}}
            yield "content_block_stop", {"type": "content_block_stop", "index": index}
            index += 1
        yield "message_delta", {"type": "message_delta",
                                "delta": {"stop_reason": "tool_use" if reply.tool_calls else "end_turn",
                                          "stop_sequence": None},
                                "usage": {"output_tokens": reply.output_tokens,
                                          **({"output_tokens_details": details} if details else {}),
                                          **(reply.delta_usage or {})}}
        yield "message_stop", {"type": "message_stop"}

    # ---- Gemini generateContent -------------------------------------------------------------
    @staticmethod
    def _gemini_usage(reply: Reply) -> dict[str, Any]:
        """``usageMetadata`` as the Gemini API sends it (https://ai.google.dev/api/generate-content#UsageMetadata):
        the prompt count includes cached content; thoughts are not part of the candidates count."""
        if reply.usage is not None:
            return dict(reply.usage)
        usage = {"promptTokenCount": reply.input_tokens,
                 "candidatesTokenCount": reply.output_tokens - reply.reasoning_tokens,
                 "totalTokenCount": reply.input_tokens + reply.output_tokens}
        if reply.cached_tokens:
            usage["cachedContentTokenCount"] = reply.cached_tokens
        if reply.reasoning_tokens:
            usage["thoughtsTokenCount"] = reply.reasoning_tokens
        return usage

    def _gemini(self, path: str, reply: Reply) -> None:
        model = path.split("/models/")[-1].split(":")[0]
        if reply.status >= 400:
            self._send_json(reply.status, {"error": {"code": reply.status, "message": reply.error_message,
                                                     "status": "INVALID_ARGUMENT"}})
            return
        rid = self.owner.new_id("gem-")

        def answer(parts: list[dict[str, Any]], finish: str | None, usage: dict[str, Any] | None) -> dict[str, Any]:
            cand: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if finish:
                cand["finishReason"] = finish
            out: dict[str, Any] = {"candidates": [cand], "modelVersion": model, "responseId": rid}
            if usage is not None:
                out["usageMetadata"] = usage
            return out

        calls = [{"functionCall": {"name": tc["name"], "args": tc["arguments"]}} for tc in reply.tool_calls]
        if ":streamGenerateContent" in path:
            pieces = reply.pieces()
            events = [(None, answer([{"text": p}], None, None)) for p in pieces[:-1]]
            events.append((None, answer(([{"text": pieces[-1]}] if pieces else []) + calls, "STOP",
                                        self._gemini_usage(reply))))
            self._send_sse(iter(events))
        else:
            parts = ([{"text": reply.text}] if reply.text else []) + calls
            self._send_json(200, answer(parts, "STOP", self._gemini_usage(reply)))

    # ---- DashScope native (Alibaba Qwen) --------------------------------------------------------
    @staticmethod
    def _dashscope_usage(reply: Reply, output_tokens: int) -> dict[str, Any]:
        """DashScope's own usage block (https://help.aliyun.com/en/model-studio/qwen-api-via-dashscope):
        ``input_tokens`` includes the cached part; a stream reports it cumulatively, event by event."""
        if reply.usage is not None:
            return dict(reply.usage)
        usage: dict[str, Any] = {"input_tokens": reply.input_tokens, "output_tokens": output_tokens,
                                 "total_tokens": reply.input_tokens + output_tokens}
        if reply.cached_tokens:
            usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
        if reply.reasoning_tokens:
            usage["output_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens}
        return usage

    def _dashscope(self, body: dict[str, Any], reply: Reply) -> None:
        rid = self.owner.new_id("ds-req-")
        if reply.status >= 400:
            self._send_json(reply.status, {"code": "InvalidParameter", "message": reply.error_message,
                                           "request_id": rid})
            return
        params = body.get("parameters") or {}

        def answer(content: str, finish: str, out_tokens: int) -> dict[str, Any]:
            return {"output": {"choices": [{"finish_reason": finish,
                                            "message": {"role": "assistant", "content": content}}]},
                    "usage": self._dashscope_usage(reply, out_tokens), "request_id": rid}

        if self.headers.get("X-DashScope-SSE", "").lower() != "enable" and not params.get("stream"):
            self._send_json(200, answer(reply.text, "stop", reply.output_tokens))
            return
        pieces = reply.pieces() or [""]
        incremental = bool(params.get("incremental_output"))

        def events() -> Iterator[tuple[str | None, Any]]:
            for i, piece in enumerate(pieces, 1):
                last = i == len(pieces)
                text = piece if incremental else "".join(pieces[:i])
                # output tokens so far: grows with the text, exactly reply.output_tokens on the last event
                yield "result", answer(text, "stop" if last else "null", reply.output_tokens * i // len(pieces))

        self._send_sse(events())


# ---- embeddings, legacy completions and token counting (the client paths of tests/test_client_paths.py) ----
EMBED_DIM = 8
"""Every loopback embedding has this many dimensions (values are deterministic, meaningless)."""


def _vector(i: int) -> list[float]:
    return [round(0.125 * ((i + k) % 7) - 0.375, 3) for k in range(EMBED_DIM)]


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _extra_route(self: _Handler, path: str, body: dict[str, Any], reply: Reply) -> bool:
    """Answers the routes added for the client-path probe; ``False`` leaves the request to ``do_POST``."""
    if reply.status >= 400 and not path.endswith(("/generation",)):
        if path.endswith(("/embeddings", "/completions", "/count_tokens")) and not path.endswith("/chat/completions"):
            self._send_json(reply.status, {"error": {"message": reply.error_message, "type": "invalid_request_error"}})
            return True
    usage = dict(reply.usage) if reply.usage is not None else None
    if path.endswith("/embeddings") and "/services/" not in path:
        # https://platform.openai.com/docs/api-reference/embeddings/create: usage {prompt_tokens, total_tokens}
        import base64
        import struct
        items = _as_list(body.get("input"))
        b64 = body.get("encoding_format") == "base64"  # the openai SDK asks for base64 by default
        data = []
        for i, _ in enumerate(items):
            vec = _vector(i)
            emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self._send_json(200, {"object": "list", "data": data, "model": body.get("model"),
                              "usage": usage or {"prompt_tokens": reply.input_tokens,
                                                 "total_tokens": reply.input_tokens}})
        return True
    if path.endswith("/completions") and not path.endswith("/chat/completions"):
        # legacy completions: https://platform.openai.com/docs/api-reference/completions/object
        cid, model = self.owner.new_id("cmpl-"), body.get("model")
        u = usage or {"prompt_tokens": reply.input_tokens, "completion_tokens": reply.output_tokens,
                      "total_tokens": reply.input_tokens + reply.output_tokens}
        def chunk(text: str, finish: str | None) -> dict[str, Any]:
            return {"id": cid, "object": "text_completion", "created": int(time.time()), "model": model,
                    "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}]}
        if body.get("stream"):
            events: list[tuple[str | None, Any]] = [(None, chunk(p, None)) for p in reply.pieces()]
            events.append((None, chunk("", "stop")))
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append((None, {**chunk("", None), "choices": [], "usage": u}))
            events.append((None, "[DONE]"))
            self._send_sse(iter(events))
        else:
            self._send_json(200, {**chunk(reply.text, "stop"), "usage": u})
        return True
    bedrock = path.startswith("/model/") and path.endswith("/invoke")
    if bedrock or path.endswith(":rawPredict"):
        # Anthropic on Bedrock (POST /model/{id}/invoke) and Vertex AI (...models/{id}:rawPredict): the model
        # is in the URL, the body and the answer are the Messages API's
        # (https://docs.anthropic.com/en/api/claude-on-amazon-bedrock, .../claude-on-vertex-ai)
        model = path.split("/model/")[1].rsplit("/invoke", 1)[0] if bedrock else \
            path.split("/models/")[1].split(":")[0]
        self._send_json(200, self._anthropic_message({**body, "model": model}, reply))
        return True
    if path.endswith("/messages/count_tokens"):
        # https://docs.anthropic.com/en/api/messages-count-tokens: {"input_tokens": N}
        self._send_json(200, {"input_tokens": reply.input_tokens})
        return True
    if ":batchEmbedContents" in path or ":embedContent" in path:
        # https://ai.google.dev/api/embeddings: no usage block on the Gemini API
        n = len(body.get("requests") or [body])
        payload: dict[str, Any] = {"embeddings": [{"values": _vector(i)} for i in range(n)]}
        self._send_json(200, payload if ":batch" in path else {"embedding": payload["embeddings"][0]})
        return True
    if ":countTokens" in path:
        self._send_json(200, {"totalTokens": reply.input_tokens})
        return True
    if path.endswith("/services/embeddings/text-embedding/text-embedding"):
        # https://help.aliyun.com/zh/model-studio/text-embedding-synchronous-api: usage {total_tokens}
        texts = _as_list((body.get("input") or {}).get("texts"))
        self._send_json(200, {"output": {"embeddings": [{"text_index": i, "embedding": _vector(i)}
                                                         for i in range(len(texts))]},
                              "usage": usage or {"total_tokens": reply.input_tokens},
                              "request_id": self.owner.new_id("ds-emb-")})
        return True
    if path.endswith("/services/aigc/multimodal-generation/generation"):
        # DashScope multimodal: content is a list of parts; usage input_tokens/output_tokens
        rid = self.owner.new_id("ds-mm-")
        u = usage or {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens,
                      "total_tokens": reply.input_tokens + reply.output_tokens}
        self._send_json(200, {"output": {"choices": [{"finish_reason": "stop", "message": {
            "role": "assistant", "content": [{"text": reply.text}]}}]}, "usage": u, "request_id": rid})
        return True
    return False


_Handler._extra_route = _extra_route  # type: ignore[attr-defined]
