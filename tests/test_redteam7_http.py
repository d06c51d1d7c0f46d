"""Red-team cases of the HTTP-level fallback (profiler/integrations/http_fallback.py, http_body.py,
http_requests.py): hostile or odd bodies from a loopback server, read through real httpx/requests. The oracle
is what the server sent (the caller must get the same bytes; usage as the server reported it, once) and what
the parser may keep in memory (measured with tracemalloc, never with a clock)."""

from __future__ import annotations

import gzip
import http.server
import json
import logging
import threading
import tracemalloc
from typing import Any, Iterator

import pytest

from tokprof.profiler import profile, uninstrument
from tokprof.profiler.integrations import http_body, http_routes
from tokprof.profiler.policy import reset_internal_errors

httpx = pytest.importorskip("httpx")
requests = pytest.importorskip("requests")

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ANSWER = json.dumps({"id": "c1", "object": "chat.completion", "model": "gpt-4o-mini",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}).encode()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    routes: dict[str, tuple[int, dict[str, str], Any]] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        if callable(body):
            body = body()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v.replace("{base}", f"http://127.0.0.1:{self.server.server_address[1]}"))
        if isinstance(body, bytes):
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for part in body:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, Any]]]:
    routes: dict[str, Any] = {}
    handler = type("H", (_Handler,), {"routes": routes})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", routes
    srv.shutdown()
    srv.server_close()
    uninstrument()


def _usage(run: Any) -> list[tuple[int | None, int | None]]:
    return [(s.llm.usage.input_tokens, s.llm.usage.output_tokens) for s in run.llm_spans()]


def _internal_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]


# ---- a redirect is one call ---------------------------------------------------------------------------
@pytest.mark.parametrize("status", [307, 308])
def test_requests_redirect_keeping_post_is_recorded_once(server: Any, status: int) -> None:
    """requests follows a 307/308 by sending the POST again through Session.send (hooked): the final answer
    came back through both sends; it was recorded twice (usage doubled)."""
    base, routes = server
    routes["/final/v1/chat/completions"] = (200, {"content-type": "application/json"}, ANSWER)
    routes["/old/v1/chat/completions"] = (status, {"location": "{base}/final/v1/chat/completions"}, b"")
    with profile("redirect") as run:
        r = requests.post(base + "/old/v1/chat/completions", json=CHAT)
    assert r.content == ANSWER and [h.status_code for h in r.history] == [status]
    assert _usage(run) == [(5, 7)]


# ---- hostile bodies: no false "internal error", same bytes ----------------------------------------------
@pytest.mark.parametrize("lib", ["httpx", "requests"])
def test_non_json_request_body_on_llm_path_is_left_alone_silently(server: Any, lib: str,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """A POST whose path looks like an LLM API but whose body is not JSON (form data, binary) is simply not
    an LLM call: it was reported as a tokprof internal error (UnicodeDecodeError / JSONDecodeError)."""
    base, routes = server
    routes["/v1/chat/completions"] = (200, {"content-type": "application/json"}, ANSWER)
    reset_internal_errors()
    with caplog.at_level(logging.WARNING, logger="tokprof"), profile("form") as run:
        for body in (b"\xff\xfe binary", b"a=1&b=2"):
            if lib == "httpx":
                r = httpx.post(base + "/v1/chat/completions", content=body)
            else:
                r = requests.post(base + "/v1/chat/completions", data=body)
            assert r.content == ANSWER
    assert run.llm_spans() == []
    assert _internal_errors(caplog) == []


def test_deeply_nested_json_is_junk_not_an_internal_error(server: Any, caplog: pytest.LogCaptureFixture) -> None:
    """JSON nested past Python's recursion limit raised RecursionError (not a ValueError) out of the parser:
    logged as a tokprof internal error. It is junk from the server: the call is counted locally, silently."""
    base, routes = server
    nested = b"[" * 200_000 + b"]" * 200_000
    routes["/v1/chat/completions"] = (200, {"content-type": "application/json"}, nested)
    routes["/s/v1/chat/completions"] = (200, {"content-type": "text/event-stream"},
                                        b"data: " + nested + b"\n\ndata: [DONE]\n\n")
    reset_internal_errors()
    with caplog.at_level(logging.WARNING, logger="tokprof"), profile("nested") as run:
        assert httpx.post(base + "/v1/chat/completions", json=CHAT).content == nested
        with httpx.stream("POST", base + "/s/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            assert b"".join(r.iter_bytes()).startswith(b"data: [[[")
        # a request body nested that deep: not an LLM call tokprof can read
        assert httpx.post(base + "/v1/chat/completions", content=nested).content == nested
    assert len(run.llm_spans()) == 2
    assert _internal_errors(caplog) == []


# ---- bounded memory and work ---------------------------------------------------------------------------
def _sink(mode: str = "text/event-stream", encoding: str = "") -> http_body.Sink:
    return http_body.Sink(http_routes.ChatAdapter(), mode, encoding)


def test_gzip_bomb_is_not_inflated_beyond_the_body_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each gzip chunk was decompressed whole before the size check: 100 KB of gzip became 100 MB at once
    (and a caller reading ``iter_raw`` never decompresses it at all)."""
    monkeypatch.setattr(http_body, "MAX_BODY", 1 << 20)
    bomb = gzip.compress(b"\0" * (100 << 20), 9)
    sink = _sink(encoding="gzip")
    tracemalloc.start()
    try:
        for i in range(0, len(bomb), 64 * 1024):
            sink.feed(bomb[i:i + 64 * 1024])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sink.unreadable
    assert peak < 8 << 20, peak // (1 << 20)


def test_gzip_bomb_over_httpx_iter_raw_reaches_caller_unchanged(server: Any) -> None:
    base, routes = server
    bomb = gzip.compress(b"\0" * (40 << 20), 9)
    routes["/v1/chat/completions"] = (200, {"content-type": "text/event-stream", "content-encoding": "gzip"},
                                      lambda: (bomb[i:i + 65536] for i in range(0, len(bomb), 65536)))
    with profile("bomb") as run:
        with httpx.stream("POST", base + "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            assert b"".join(r.iter_raw()) == bomb
    assert len(run.llm_spans()) == 1


def test_sse_data_lines_without_blank_line_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """``data:`` lines with no blank line to end the event were all kept (a list of strings growing with the
    stream): a long or hostile stream grew memory without bound."""
    monkeypatch.setattr(http_body, "MAX_BODY", 1 << 20)
    sink = _sink()
    line = b"data: " + b"y" * 1000 + b"\n"
    tracemalloc.start()
    try:
        for _ in range(10_000):  # 10 MB
            sink.feed(line)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current < 3 << 20, current // (1 << 20)


def test_giant_sse_line_in_small_chunks_is_not_copied_per_chunk() -> None:
    """Each chunk copied the whole pending line (``bytes(buffer).split``): a multi-megabyte line read in
    small chunks (``iter_content(512)``, ``iter_lines``) cost time quadratic in its length. Measured as the
    memory one small chunk's feed allocates, which must not grow with the pending line."""
    sink = _sink()
    sink.feed(b"data: " + b"z" * (4 << 20))  # a 4 MB line, no newline yet
    tracemalloc.start()
    try:
        costs = []
        for _ in range(50):
            tracemalloc.reset_peak()
            before, _ = tracemalloc.get_traced_memory()
            sink.feed(b"z" * 512)
            _, peak = tracemalloc.get_traced_memory()
            costs.append(peak - before)
    finally:
        tracemalloc.stop()
    # the buffer's own occasional growth (amortised, a few reallocations) is allowed; a copy per chunk is not
    assert sum(c > 256 * 1024 for c in costs) <= 3, costs


def test_giant_sse_line_read_in_small_chunks_gives_same_bytes_and_usage(server: Any) -> None:
    base, routes = server
    content = "x" * (2 << 20)
    stream = (b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": content},
                                                   "finish_reason": "stop"}]}).encode() + b"\n\n"
              + b': keep-alive comment\n\ndata: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,'
                b'"total_tokens":12}}\n\ndata: [DONE]\n\n')
    routes["/v1/chat/completions"] = (200, {"content-type": "text/event-stream"}, lambda: iter([stream]))
    with profile("giant") as run:
        r = requests.post(base + "/v1/chat/completions", json={**CHAT, "stream": True}, stream=True)
        assert b"".join(r.iter_content(512)) == stream
    assert _usage(run) == [(5, 7)]
    assert run.llm_spans()[0].llm.output["content"] == content


# ---- a body read whole through requests' raw is complete ------------------------------------------------
def test_requests_raw_read_whole_body_is_complete(server: Any) -> None:
    """``response.raw.read()`` (no size) returns the whole body; the call was still marked incomplete (a cut
    stream) because the tee waited for an empty read that never comes."""
    base, routes = server
    stream = (b'data: {"choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":"stop"}]}\n\n'
              b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}\n\n'
              b"data: [DONE]\n\n")
    routes["/v1/chat/completions"] = (200, {"content-type": "text/event-stream"}, lambda: iter([stream[:40], stream[40:]]))
    with profile("raw") as run:
        r = requests.post(base + "/v1/chat/completions", json={**CHAT, "stream": True}, stream=True)
        assert r.raw.read(decode_content=True) == stream
        r.close()
    (s,) = run.llm_spans()
    assert _usage(run) == [(5, 7)] and s.llm.output["content"] == "hello"
    assert not s.attributes.get("stream_incomplete"), s.attributes


# ---- hosts ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("url,provider", [
    ("https://api.deepseek.com./v1", "deepseek"),  # a fully qualified name (trailing dot) is the same host
    ("https://user:secret@API.DeepSeek.com:443/v1", "deepseek"),
    ("http://[::1]:8080/v1", None),
    ("http://[::1/v1", None),  # malformed IPv6: unknown, never an exception
    ("https://api.deepseek.com.evil.example/v1", None),
])
def test_host_provider_odd_urls(url: str, provider: str | None) -> None:
    from tokprof.profiler.providers.hosts import host_provider

    assert host_provider(url) == provider


def test_http_route_provider_uses_the_one_host_table() -> None:
    """The HTTP routes labelled the provider from the raw host table: an Azure OpenAI resource or a host
    written with a trailing dot got the dialect's default instead of the host's provider."""
    assert http_routes.match("POST", "https://api.deepseek.com./chat/completions", CHAT).provider == "deepseek"
    assert http_routes.match("POST", "https://r.openai.azure.com/openai/deployments/d/chat/completions",
                             CHAT).provider == "openai"


# ---- a stream outliving its profile ---------------------------------------------------------------------
def test_stream_read_after_the_profile_exits_is_not_parsed_any_more(server: Any) -> None:
    """The profile's exit records a stream still open (incomplete); the caller may read on afterwards. The
    copy was still parsed and kept (up to 32 MB per response) for a call already recorded."""
    base, routes = server
    head = b'data: {"choices":[{"index":0,"delta":{"content":"a"}}]}\n\n'
    tail = b"data: " + b"q" * (8 << 20)  # one long line still to come
    routes["/v1/chat/completions"] = (200, {"content-type": "text/event-stream"}, lambda: iter([head, tail]))
    with profile("outlived") as run:
        client = httpx.Client()
        r = client.send(client.build_request("POST", base + "/v1/chat/completions", json={**CHAT, "stream": True}),
                        stream=True)
    (s,) = run.llm_spans()
    assert s.attributes.get("stream_incomplete") is True
    tracemalloc.start()
    try:
        got = b"".join(r.iter_raw())
        del got
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        r.close()
        client.close()
    assert current < 2 << 20, current // (1 << 20)


# ---- content-encoding: deflate as servers send it -------------------------------------------------------
@pytest.mark.parametrize("wbits", [15, -15])
def test_deflate_stream_raw_or_zlib_wrapped_is_read(server: Any, wbits: int) -> None:
    """``Content-Encoding: deflate`` is sent both zlib-wrapped (RFC 9110) and as a raw deflate stream (a
    common server mistake httpx and urllib3 both accept). The raw form was unreadable here: the provider's
    usage was lost and the call counted locally."""
    import zlib

    stream = (b'data: {"choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":"stop"}]}\n\n'
              b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}\n\n'
              b"data: [DONE]\n\n")
    c = zlib.compressobj(9, zlib.DEFLATED, wbits)
    packed = c.compress(stream) + c.flush()
    base, routes = server
    routes["/v1/chat/completions"] = (200, {"content-type": "text/event-stream", "content-encoding": "deflate"},
                                      lambda: iter([packed[:20], packed[20:]]))
    with profile("deflate") as run:
        with httpx.stream("POST", base + "/v1/chat/completions", json={**CHAT, "stream": True}) as r:
            assert b"".join(r.iter_bytes()) == stream
    assert _usage(run) == [(5, 7)]
    assert set(run.llm_spans()[0].llm.usage.sources.values()) == {"provider"}


def test_raw_deflate_in_one_byte_chunks_is_read() -> None:
    import zlib

    event = b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}\n\n'
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = c.compress(event) + c.flush()
    sink = _sink(encoding="deflate")
    for i in range(len(packed)):
        sink.feed(packed[i:i + 1])
    call = http_routes.ChatAdapter().request(CHAT)
    sink.finish(call)
    assert (call.usage.input_tokens, call.usage.output_tokens) == (5, 7)


# ---- requests' raw stays the caller's own object ------------------------------------------------------------
@pytest.mark.parametrize("how", ["iter_content", "readinto", "read"])
def test_requests_raw_is_still_the_urllib3_response(server: Any, how: str) -> None:
    """The fallback used to put a stand-in object in ``response.raw``: code that checked
    ``isinstance(r.raw, urllib3.HTTPResponse)`` saw False, and ``readinto`` bypassed the copy (usage then
    counted locally). Now the raw's own methods are wrapped: the type holds, every way of reading gives the
    same bytes, and the provider's usage (5, 7) is recorded once."""
    import urllib3

    base, routes = server
    stream = (b'data: {"choices":[{"index":0,"delta":{"content":"hello"},"finish_reason":"stop"}]}\n\n'
              b'data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}\n\n'
              b"data: [DONE]\n\n")
    routes["/v1/chat/completions"] = (200, {"content-type": "text/event-stream"}, lambda: iter([stream[:40], stream[40:]]))
    with profile("raw-type") as run:
        r = requests.post(base + "/v1/chat/completions", json={**CHAT, "stream": True}, stream=True)
        assert isinstance(r.raw, urllib3.HTTPResponse)
        if how == "iter_content":
            got = b"".join(r.iter_content(16))
        elif how == "readinto":
            buf, parts = bytearray(32), []
            while n := r.raw.readinto(buf):
                parts.append(bytes(buf[:n]))
            got = b"".join(parts)
        else:
            got = b"".join(iter(lambda: r.raw.read(16), b""))
        r.close()
    assert got == stream
    (s,) = run.llm_spans()
    assert _usage(run) == [(5, 7)] and s.llm.output["content"] == "hello"
