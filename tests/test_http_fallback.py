"""The HTTP-level fallback (profiler/integrations/http_fallback.py): LLM calls of client libraries tokprof has
no SDK patch for, recorded from httpx/httpx2/requests. Each case drives a real client library (or a raw
httpx/requests post) over real HTTP to the loopback server (tests/llm_server.py, tests/llm_server_native.py)
in the provider's documented format; the oracle is what the server sent, costs are computed here by hand from
the price rows (profiler/providers/data/prices.json: gpt-4o-mini 0.15 / 0.075 cached / 0.60 per million,
claude-sonnet-4-5 3 / 0.30 read / 3.75 write / 15, gemini-2.5-flash 0.30 / 0.03 cached / 2.50)."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from decimal import Decimal
from typing import Any

import pytest

import llm_server_native  # noqa: F401  (Ollama and Cohere routes)
from llm_server import Reply
from tokprof.profiler import keys, profile, span, uninstrument
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.integrations import http_body, http_fallback, http_routes
from tokprof.profiler.policy import reset_internal_errors

httpx = pytest.importorskip("httpx")
requests = pytest.importorskip("requests")

M = Decimal(1_000_000)
MSG = [{"role": "user", "content": "What is the capital of France?"}]
CHAT = {"model": "gpt-4o-mini", "messages": MSG}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


@pytest.fixture(autouse=True)
def _restore():
    yield
    uninstrument()


def _one(run: Any) -> Any:
    llm = run.llm_spans()
    assert len(llm) == 1, [(s.name, s.attributes) for s in llm]
    return llm[0]


def _counts(s: Any) -> tuple[int, int, int, int]:
    u = s.llm.usage
    return u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens


def _provider_labelled(s: Any) -> None:
    assert set(s.llm.usage.sources.values()) == {"provider"}, s.llm.usage.sources


# ---- raw httpx / requests, OpenAI-compatible ------------------------------------------------------------
def test_httpx_post_exact_usage_and_cost(llm_server: Any) -> None:
    llm_server.script(Reply(text="Paris.", input_tokens=1000, cached_tokens=400, output_tokens=50))
    with profile("raw") as run:
        with span("agent step"):
            r = httpx.post(llm_server.openai_url + "/chat/completions", json=CHAT)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "Paris."  # intact
    s = _one(run)
    assert s.attributes[keys.RECORDED_BY] == "http" and s.name == "http.chat.completions"
    (step,) = [x for x in run.spans if x.name == "agent step"]
    assert s.parent_id == step.span_id
    assert s.llm.messages == MSG and s.llm.model == "gpt-4o-mini"
    assert s.llm.output["content"] == "Paris."
    assert _counts(s) == (1000, 50, 400, 0)
    _provider_labelled(s)
    # hand: (1000 - 400) x 0.15 + 400 x 0.075 + 50 x 0.60 per million = 90 + 30 + 30 = 150 / 1e6
    assert span_cost(s, "USD").amount == Decimal(150) / M


def _sse_body(client_read: Any) -> bytes:
    return b"".join(client_read())


def test_httpx_stream_bytes_unchanged_and_usage_read(llm_server: Any) -> None:
    def read() -> list[bytes]:
        with httpx.Client() as c, c.stream("POST", llm_server.openai_url + "/chat/completions", json=STREAM) as r:
            return list(r.iter_bytes())

    llm_server.script(Reply(input_tokens=321, output_tokens=12))
    plain = read()  # outside a profile: nothing is hooked
    llm_server.script(Reply(input_tokens=321, output_tokens=12))
    with profile("stream") as run:
        seen = read()
    strip = [line for line in b"".join(seen).split(b"\n") if b'"id"' not in line and b"created" not in line]
    assert strip == [line for line in b"".join(plain).split(b"\n") if b'"id"' not in line and b"created" not in line]
    assert b'"usage"' in b"".join(seen)  # the caller still sees the usage chunk it asked for
    s = _one(run)
    assert _counts(s)[:2] == (321, 12) and s.llm.output["content"] == Reply().text
    _provider_labelled(s)
    assert keys.STREAM_INCOMPLETE not in (s.attributes or {})


def test_httpx_async_and_requests(llm_server: Any) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as c:
            (await c.post(llm_server.openai_url + "/chat/completions", json=CHAT)).raise_for_status()
            async with c.stream("POST", llm_server.openai_url + "/chat/completions", json=STREAM) as r:
                async for _ in r.aiter_lines():
                    pass

    llm_server.script(Reply(input_tokens=10, output_tokens=1), Reply(input_tokens=20, output_tokens=2),
                      Reply(input_tokens=30, output_tokens=3), Reply(input_tokens=40, output_tokens=4))
    with profile("mixed") as run:
        asyncio.run(go())
        assert requests.post(llm_server.openai_url + "/chat/completions", json=CHAT).json()["usage"]["prompt_tokens"] == 30
        with requests.post(llm_server.openai_url + "/chat/completions", json=STREAM, stream=True) as r:
            lines = [line for line in r.iter_lines() if line]
    assert lines[-1] == b"data: [DONE]"
    assert [_counts(s)[:2] for s in run.llm_spans()] == [(10, 1), (20, 2), (30, 3), (40, 4)]


def test_stream_consumed_partially_is_incomplete_with_counted_usage(llm_server: Any) -> None:
    llm_server.script(Reply(text="one two three four five six", input_tokens=500, output_tokens=9),
                      Reply(text="one two three four five six", input_tokens=500, output_tokens=9))
    with profile("partial") as run:
        with httpx.Client() as c, c.stream("POST", llm_server.openai_url + "/chat/completions", json=STREAM) as r:
            first = next(r.iter_lines())
        r2 = requests.post(llm_server.openai_url + "/chat/completions", json=STREAM, stream=True)
        next(r2.iter_content(64))
        r2.close()
    assert first.startswith("data: ")
    spans = run.llm_spans()
    assert len(spans) == 2
    for s in spans:
        assert s.attributes[keys.STREAM_INCOMPLETE] is True
        u = s.llm.usage  # the usage chunk never came: counted locally and labelled, never taken as 0
        assert u.input_tokens > 0 and set(u.sources.values()) == {"estimated"}


def test_stream_left_open_ends_at_profile_exit(llm_server: Any) -> None:
    with profile("abandoned") as run:
        c = httpx.Client()
        r = c.send(c.build_request("POST", llm_server.openai_url + "/chat/completions", json=STREAM), stream=True)
        next(r.iter_raw())
    s = _one(run)
    assert s.end_ns is not None and s.attributes[keys.STREAM_INCOMPLETE] is True
    r.close()
    c.close()


# ---- errors pass unchanged ------------------------------------------------------------------------
def test_http_error_and_user_exceptions_unchanged(llm_server: Any) -> None:
    llm_server.script(Reply(status=429, error_message="slow down"))
    with profile("errors") as run:
        r = httpx.post(llm_server.openai_url + "/chat/completions", json=CHAT)
        assert r.status_code == 429 and r.json()["error"]["message"] == "slow down"
        with pytest.raises(httpx.HTTPStatusError):
            r.raise_for_status()
        with pytest.raises(KeyError, match="mine"):
            with httpx.Client() as c, c.stream("POST", llm_server.openai_url + "/chat/completions",
                                               json=STREAM) as sr:
                for _ in sr.iter_lines():
                    raise KeyError("mine")
        with pytest.raises(httpx.ConnectError):
            httpx.post("http://127.0.0.1:9/v1/chat/completions", json=CHAT)  # nothing listens there
    failed, cut, refused = run.llm_spans()
    assert failed.status == "error" and "429" in failed.error
    assert failed.llm.usage.sources["input_tokens"] == "estimated"  # whether a 429 is billed is not known
    assert cut.attributes[keys.STREAM_INCOMPLETE] is True
    assert refused.status == "error" and "ConnectError" in refused.error


def test_tokprof_errors_are_swallowed_and_logged_once(llm_server: Any, monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("tokprof bug")

    reset_internal_errors()
    monkeypatch.setattr(http_routes, "match", boom)
    with caplog.at_level(logging.WARNING, logger="tokprof"), profile("bug") as run:
        for _ in range(2):
            assert httpx.post(llm_server.openai_url + "/chat/completions", json=CHAT).json()["usage"]["prompt_tokens"] == 42
    assert run.llm_spans() == []
    assert len([r for r in caplog.records if "http fallback request" in r.getMessage()]) == 1


def test_a_body_tokprof_cannot_parse_leaves_the_stream_intact(llm_server: Any, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    def boom(self: Any, chunk: bytes) -> None:
        raise ValueError("parser bug")

    def read() -> bytes:
        with httpx.Client() as c, c.stream("POST", llm_server.openai_url + "/chat/completions", json=STREAM) as r:
            return b"".join(r.iter_bytes())

    plain = read()
    reset_internal_errors()
    monkeypatch.setattr(http_body.Sink, "feed", boom)
    with caplog.at_level(logging.WARNING, logger="tokprof"), profile("parser") as run:
        seen = read()
    assert len(seen) == len(plain) and seen.endswith(b"data: [DONE]\n\n")
    s = _one(run)  # still one call: the prompt counted locally and labelled, never 0
    assert s.llm.usage.input_tokens > 0 and set(s.llm.usage.sources.values()) == {"estimated"}
    assert len([r for r in caplog.records if "http fallback response body" in r.getMessage()]) == 1


def test_not_llm_requests_off_switch_and_outside_profile(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    httpx.post(llm_server.openai_url + "/chat/completions", json=CHAT)  # no profile: nothing to record
    with profile("other") as run:
        httpx.post(llm_server.url + "/v1/files", json={"purpose": "x"})  # not an LLM route
        httpx.post(llm_server.openai_url + "/chat/completions", json={"model": "gpt-4o-mini"})  # no messages
        assert http_fallback.begin_exchange("POST", llm_server.openai_url + "/chat/completions", lambda: b"not json") is None
    assert run.llm_spans() == []
    monkeypatch.setenv("TOKPROF_HTTP_FALLBACK", "0")
    with profile("off") as run:
        httpx.post(llm_server.openai_url + "/chat/completions", json=CHAT)
    assert run.llm_spans() == []


# ---- no double counting --------------------------------------------------------------------------
def test_sdk_calls_recorded_once(llm_server: Any) -> None:
    import anthropic
    import openai

    with profile("sdk") as run:
        oa = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
        oa.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        for _ in oa.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True):
            pass
        an = anthropic.Anthropic(base_url=llm_server.anthropic_url, api_key="t", max_retries=0)
        with an.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MSG) as st:
            st.get_final_message()
        httpx.post(llm_server.openai_url + "/chat/completions", json=CHAT)  # after them: recorded here
    spans = run.llm_spans()
    assert len(llm_server.requests) == 4 and len(spans) == 4
    assert [(s.attributes or {}).get(keys.RECORDED_BY) for s in spans] == [None, None, None, "http"]
    assert all(_counts(s)[:2] == (42, 7) for s in spans)


def test_under_a_langchain_model_span_only_the_usage_goes_up(llm_server: Any) -> None:
    pytest.importorskip("langchain_ollama")
    from langchain_ollama import ChatOllama

    llm_server.script(Reply(input_tokens=77, output_tokens=5))
    with profile("lc") as run:
        ChatOllama(model="llama3.2", base_url=llm_server.url).invoke("hi")
    s = _one(run)
    assert keys.RECORDED_BY not in (s.attributes or {})  # LangChain's span, not a second one
    assert _counts(s)[:2] == (77, 5)


# ---- other dialects over raw HTTP ------------------------------------------------------------------
def test_anthropic_and_gemini_rest(llm_server: Any) -> None:
    llm_server.script(Reply(input_tokens=1000, cached_tokens=300, cache_write_tokens=200, output_tokens=50),
                      Reply(input_tokens=1000, cached_tokens=600, output_tokens=50, reasoning_tokens=20))
    gemini = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "systemInstruction": {"parts": [{"text": "be brief"}]}}
    with profile("rest") as run:
        requests.post(llm_server.url + "/v1/messages",
                      json={"model": "claude-sonnet-4-5", "max_tokens": 100, "system": "be brief", "messages": MSG})
        with httpx.Client() as c, c.stream("POST", llm_server.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                                           params={"alt": "sse"}, json=gemini) as r:
            r.read()
    claude, gem = run.llm_spans()
    assert _counts(claude) == (1000, 50, 300, 200) and claude.llm.messages[0] == {"role": "system", "content": "be brief"}
    # hand: 500 fresh x 3 + 300 x 0.30 + 200 x 3.75 + 50 x 15 = 1500 + 90 + 750 + 750 = 3090 per million
    assert span_cost(claude, "USD").amount == Decimal(3090) / M
    assert (gem.llm.provider, gem.llm.model) == ("google", "gemini-2.5-flash")
    assert _counts(gem)[:3] == (1000, 50, 600) and gem.llm.usage.reasoning_tokens == 20
    # hand: 400 x 0.30 + 600 x 0.03 + 50 x 2.50 = 120 + 18 + 125 = 263 per million
    assert span_cost(gem, "USD").amount == Decimal(263) / M


def test_embeddings_and_a_json_answer_read_as_a_stream(llm_server: Any) -> None:
    llm_server.script(Reply(input_tokens=64), Reply(input_tokens=65, output_tokens=3))
    with profile("emb") as run:
        httpx.post(llm_server.openai_url + "/embeddings", json={"model": "text-embedding-3-small", "input": ["a", "b"]})
        with httpx.Client() as c, c.stream("POST", llm_server.openai_url + "/chat/completions", json=CHAT) as r:
            body = json.loads(r.read())  # send(stream=True), a plain JSON answer: parsed whole at its end
    assert body["usage"]["prompt_tokens"] == 65
    s, chat = run.llm_spans()
    assert s.attributes[keys.LLM_OPERATION] == keys.EMBEDDINGS and _counts(s)[:2] == (64, 0)
    assert span_cost(s, "USD").amount == 64 * Decimal("0.02") / M
    assert _counts(chat)[:2] == (65, 3) and keys.STREAM_INCOMPLETE not in (chat.attributes or {})


def test_redirect_is_not_a_call(llm_server: Any) -> None:
    with profile("redirect") as run:
        ex = http_fallback.begin_exchange("POST", llm_server.openai_url + "/chat/completions", lambda: json.dumps(CHAT))
        assert ex is not None and http_fallback.answered(ex, 307, {"location": "/x"}, lambda: b"") is False
    assert run.llm_spans() == []


# ---- client libraries with their own HTTP client ---------------------------------------------------
def test_ollama_chat_stream_generate_async(llm_server: Any) -> None:
    ollama = pytest.importorskip("ollama")
    llm_server.script(*(Reply(text="Paris is the capital.", input_tokens=26 + i, output_tokens=5 + i) for i in range(4)))
    with profile("ollama") as run:
        client = ollama.Client(host=llm_server.url)
        assert client.chat(model="llama3.2", messages=MSG).message.content == "Paris is the capital."
        text = "".join(c.message.content for c in client.chat(model="llama3.2", messages=MSG, stream=True))
        client.generate(model="llama3.2", prompt="hi", system="short")
        asyncio.run(ollama.AsyncClient(host=llm_server.url).chat(model="llama3.2", messages=MSG))
    assert text == "Paris is the capital."
    spans = run.llm_spans()
    assert [_counts(s)[:2] for s in spans] == [(26, 5), (27, 6), (28, 7), (29, 8)]
    assert {s.llm.provider for s in spans} == {"ollama"} and spans[1].llm.output["content"] == text
    assert spans[2].llm.messages == [{"role": "system", "content": "short"}, {"role": "user", "content": "hi"}]
    assert span_cost(spans[0], "USD") is None or span_cost(spans[0], "USD").amount is None  # no price: unknown


def test_cohere_billed_units_win(llm_server: Any) -> None:
    cohere = pytest.importorskip("cohere")
    llm_server.script(Reply(input_tokens=100, output_tokens=20, cached_tokens=30),
                      Reply(input_tokens=101, output_tokens=21))
    with profile("cohere") as run:
        client = cohere.ClientV2(api_key="t", base_url=llm_server.url)
        client.chat(model="command-r", messages=MSG)
        for _ in client.chat_stream(model="command-r", messages=MSG):
            pass
    chat, stream = run.llm_spans()
    # the server's usage.tokens say 103 / 104 input (3 unbilled tokens Cohere adds): billed units are paid
    assert _counts(chat)[:3] == (100, 20, 30) and _counts(stream)[:2] == (101, 21)
    assert stream.llm.output["content"] == Reply().text and stream.llm.finish_reason == "COMPLETE"


def test_groq_and_mistral_sdks(llm_server: Any) -> None:
    groq = pytest.importorskip("groq")
    mistralai = pytest.importorskip("mistralai")
    Mistral = getattr(mistralai, "Mistral", None) or __import__("mistralai.client", fromlist=["Mistral"]).Mistral
    llm_server.script(Reply(input_tokens=11, output_tokens=1), Reply(input_tokens=12, output_tokens=2, x_groq_usage=True),
                      Reply(input_tokens=13, output_tokens=3), Reply(input_tokens=14, output_tokens=4, usage_in_last_chunk=True))
    with profile("vendors") as run:
        g = groq.Groq(api_key="t", base_url=llm_server.url, max_retries=0)
        g.chat.completions.create(model="llama-3.1-8b-instant", messages=MSG)
        for _ in g.chat.completions.create(model="llama-3.1-8b-instant", messages=MSG, stream=True):
            pass  # Groq's x_groq.usage on the last chunk, sent without include_usage
        m = Mistral(api_key="t", server_url=llm_server.url)
        m.chat.complete(model="mistral-small-latest", messages=MSG)
        for _ in m.chat.stream(model="mistral-small-latest", messages=MSG):
            pass
    spans = run.llm_spans()
    assert [_counts(s)[:2] for s in spans] == [(11, 1), (12, 2), (13, 3), (14, 4)]
    for s in spans:
        _provider_labelled(s)
    assert [r.path for r in llm_server.requests] == ["/openai/v1/chat/completions"] * 2 + ["/v1/chat/completions"] * 2


def test_openai_stream_without_usage_is_estimated_not_zero(llm_server: Any) -> None:
    with profile("no usage") as run:
        with httpx.Client() as c, c.stream("POST", llm_server.openai_url + "/chat/completions",
                                           json={**CHAT, "stream": True}) as r:
            r.read()  # the request bytes are never changed: usage the caller did not ask for is not added
    s = _one(run)
    assert s.llm.usage.output_tokens > 0 and set(s.llm.usage.sources.values()) == {"estimated"}
    assert "include_usage" not in json.dumps(llm_server.requests[0].body)


# ---- libraries built on the patched SDKs -------------------------------------------------------------
def test_pydantic_ai_anthropic_counts_one_call(llm_server: Any) -> None:
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider

    with profile("pai") as run:
        Agent(AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(base_url=llm_server.anthropic_url,
                                                                             api_key="t"))).run_sync("hi")
    refused, sent = run.llm_spans()  # its first, non-streaming try is refused by the SDK before any request
    assert refused.status == "error" and refused.attributes[keys.NOT_SENT] is True
    assert _counts(refused)[:2] == (0, 0) and set(refused.llm.usage.sources.values()) == {"counted"}
    assert _counts(sent)[:2] == (42, 7) and len(llm_server.requests) == 1
    # hand: 42 x 3 + 7 x 15 = 126 + 105 = 231 per million, all of it the sent call's
    assert sum(span_cost(s, "USD").amount for s in (refused, sent)) == Decimal(231) / M


def test_smolagents_openai_server_model(llm_server: Any) -> None:
    smolagents = pytest.importorskip("smolagents")
    with profile("smol") as run:
        smolagents.OpenAIServerModel(model_id="gpt-4o-mini", api_base=llm_server.openai_url, api_key="t")(
            [{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    s = _one(run)
    assert _counts(s)[:2] == (42, 7) and keys.RECORDED_BY not in (s.attributes or {})


# ---- the body parser on its own -----------------------------------------------------------------------
def test_sink_gzip_sse_split_anywhere() -> None:
    from tokprof.profiler.integrations.openai import ChatAdapter
    from tokprof.profiler.model import LLMCall

    events = [{"id": "c1", "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {"content": "Hel"}}]},
              {"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
              {"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}}]
    raw = ("".join(f"data: {json.dumps(e)}\r\n\r\n" for e in events) + "data: [DONE]\n\n").encode()
    packed = gzip.compress(raw)
    sink = http_body.Sink(ChatAdapter(), "text/event-stream; charset=utf-8", "gzip")
    for i in range(0, len(packed), 7):  # chunk borders fall inside lines and inside the gzip stream
        sink.feed(packed[i:i + 7])
    call = LLMCall(provider="openai", model="gpt-4o-mini")
    sink.finish(call)
    assert call.output["content"] == "Hello" and (call.usage.input_tokens, call.usage.output_tokens) == (9, 2)


def test_sink_gemini_json_array_stream() -> None:
    # streamGenerateContent without alt=sse answers one JSON array of chunks (application/json); usage is
    # cumulative, the last report wins (https://ai.google.dev/api/generate-content#UsageMetadata)
    chunks = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "Bon"}]}}],
               "usageMetadata": {"promptTokenCount": 30}},
              {"candidates": [{"content": {"role": "model", "parts": [{"text": "jour"}]}, "finishReason": "STOP"}],
               "usageMetadata": {"promptTokenCount": 30, "candidatesTokenCount": 4, "thoughtsTokenCount": 6},
               "modelVersion": "gemini-2.5-flash"}]
    adapter = http_routes.GeminiRestAdapter("gemini-2.5-flash")
    call = adapter.request({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    sink = http_body.Sink(adapter, "application/json; charset=UTF-8", "")
    data = json.dumps(chunks).encode()
    sink.feed(data[:17])
    sink.feed(data[17:])
    sink.finish(call)
    assert call.output["content"] == "Bonjour" and call.finish_reason == "STOP"
    assert (call.usage.input_tokens, call.usage.output_tokens, call.usage.reasoning_tokens) == (30, 10, 6)


def test_anthropic_stream_over_raw_httpx(llm_server: Any) -> None:
    llm_server.script(Reply(text="Bonjour", input_tokens=900, cached_tokens=800, output_tokens=30))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": MSG, "stream": True}
    with profile("anthropic sse") as run:
        with httpx.Client() as c, c.stream("POST", llm_server.url + "/v1/messages", json=body) as r:
            events = [line for line in r.iter_lines() if line.startswith("event:")]
    assert events[0] == "event: message_start" and events[-1] == "event: message_stop"
    s = _one(run)
    assert _counts(s) == (900, 30, 800, 0) and s.llm.output["content"] == "Bonjour"
    # hand: 100 fresh x 3 + 800 x 0.30 + 30 x 15 = 300 + 240 + 450 = 990 per million
    assert span_cost(s, "USD").amount == Decimal(990) / M
