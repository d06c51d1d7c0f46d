"""OpenAI SDK instrumentation against the real loopback HTTP server (tests/llm_server.py): the real client,
``base_url`` pointed at 127.0.0.1, no mocked transports."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import openai
import pytest
from openai.resources.chat.completions.completions import AsyncCompletions, Completions
from openai.resources.responses.responses import AsyncResponses, Responses

from llm_server import Reply
from tokprof.profiler import instrument, profile, trace, uninstrument
from tokprof.profiler.integrations import Middleware, add_middleware, instrumented
from tokprof.profiler.model import Run, Usage

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+3?"},
]
TOOLS = [{"type": "function", "function": {"name": "add", "description": "Add two integers.",
                                           "parameters": {"type": "object",
                                                          "properties": {"a": {"type": "integer"},
                                                                         "b": {"type": "integer"}}}}}]
USAGE_REPLY = dict(input_tokens=1200, cached_tokens=1024, output_tokens=80, reasoning_tokens=32)


def usage_tuple(u: Usage) -> tuple[int, int, int, int]:
    return (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens)


EXPECTED = (1200, 1024, 80, 32)


@pytest.fixture
def client(llm_server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)


@pytest.fixture
def aclient(llm_server: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)


@pytest.fixture(autouse=True)
def _clean_instrumentation():
    yield
    uninstrument("openai")


def only_llm(run: Run):
    (span,) = run.llm_spans()
    return span


# ---------------------------------------------------------------------------------------------------
# instrument / uninstrument
# ---------------------------------------------------------------------------------------------------
def _methods() -> list[Any]:
    return [Completions.__dict__["create"], AsyncCompletions.__dict__["create"], Responses.__dict__["create"],
            AsyncResponses.__dict__["create"]]


def test_uninstrument_restores_the_very_same_methods() -> None:
    before = _methods()
    assert instrument("openai") == ["openai"]
    assert instrument("openai") == []  # idempotent
    assert instrumented() == ["openai"]
    patched = _methods()
    assert all(a is not b for a, b in zip(before, patched))
    assert all(getattr(p, "__wrapped__", None) is b for p, b in zip(patched, before))
    uninstrument("openai")
    assert all(a is b for a, b in zip(before, _methods()))
    assert instrumented() == []


def test_profile_instrument_patches_only_for_the_block(client: openai.OpenAI) -> None:
    before = _methods()
    with profile("block", instrument=["openai"]) as run:
        assert _methods()[0] is not before[0]
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert all(a is b for a, b in zip(before, _methods()))
    assert len(run.llm_spans()) == 1


def test_explicit_instrument_outlives_a_profile_block() -> None:
    instrument("openai")
    patched = _methods()
    with profile("block", instrument=["openai"]):
        pass
    assert _methods() == patched


def test_unknown_sdk_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="supported SDKs"):
        instrument("cohere")


# ---------------------------------------------------------------------------------------------------
# chat completions
# ---------------------------------------------------------------------------------------------------
def test_chat_sync_records_request_response_and_usage(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(text="", tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}],
                            **USAGE_REPLY))
    with profile("chat", instrument=["openai"]) as run:
        resp = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS,
                                              temperature=0.1, seed=7)
    assert resp.choices[0].message.tool_calls[0].function.name == "add"
    span = only_llm(run)
    call = span.llm
    assert span.parent_id == run.roots()[0].span_id and span.name == "openai.chat.completions.create"
    assert call.provider == "openai" and call.model == "gpt-4o-mini"
    assert call.messages == MESSAGES and call.tools == TOOLS
    assert call.params == {"temperature": 0.1, "seed": 7}
    assert call.output["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert call.finish_reason == "tool_calls" and call.response_id == resp.id
    assert usage_tuple(call.usage) == EXPECTED
    assert call.usage.source("input_tokens") == "provider"
    assert call.usage.source("cache_write_tokens") != "provider"  # not reported by the API
    # What was sent is what the caller asked for.
    assert llm_server.requests[-1].body["messages"] == MESSAGES


def _chunk_view(chunk: Any) -> tuple:
    c = chunk.choices[0] if chunk.choices else None
    return (bool(chunk.choices), c and c.delta.content, c and c.finish_reason,
            chunk.usage and chunk.usage.prompt_tokens)


def test_chat_stream_adds_include_usage_but_caller_sees_the_same_chunks(client: openai.OpenAI,
                                                                       llm_server: Any) -> None:
    llm_server.script(Reply(**USAGE_REPLY), Reply(**USAGE_REPLY))
    plain = [_chunk_view(c) for c in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                     stream=True)]
    assert "stream_options" not in llm_server.requests[-1].body
    with profile("stream", instrument=["openai"]) as run:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.Stream)
        with stream:
            seen = [_chunk_view(c) for c in stream]
    assert llm_server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert seen == plain  # the extra usage-only chunk was hidden
    call = only_llm(run).llm
    assert usage_tuple(call.usage) == EXPECTED
    assert call.output == {"role": "assistant", "content": "Hello from the loopback server."}
    assert call.finish_reason == "stop"


def test_chat_stream_caller_asking_for_usage_still_gets_it(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(**USAGE_REPLY))
    with profile("stream", instrument=["openai"]) as run:
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": True}))
    assert chunks[-1].usage.prompt_tokens == 1200 and chunks[-1].choices == []
    assert usage_tuple(only_llm(run).llm.usage) == EXPECTED


def test_chat_stream_caller_refusing_usage_is_respected(client: openai.OpenAI, llm_server: Any) -> None:
    with profile("stream", instrument=["openai"]) as run:
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": False}))
    assert llm_server.requests[-1].body["stream_options"] == {"include_usage": False}
    # No provider usage: whatever is there was filled by local counting, never passed off as provider's.
    assert only_llm(run).llm.usage.source("input_tokens") != "provider"


def test_chat_stream_tool_calls_are_reassembled(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(text="", tool_calls=[{"id": "call_9", "name": "add", "arguments": {"a": 10, "b": 32}}],
                            **USAGE_REPLY))
    with profile("stream", instrument=["openai"]) as run:
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS, stream=True):
            pass
    out = only_llm(run).llm.output
    assert out["tool_calls"] == [{"id": "call_9", "type": "function",
                                  "function": {"name": "add", "arguments": '{"a": 10, "b": 32}'}}]


def test_chat_stream_abandoned_early_still_ends_its_span(client: openai.OpenAI, llm_server: Any) -> None:
    with profile("stream", instrument=["openai"]) as run:
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        next(iter(stream))
        stream.close()
        del stream
        gc.collect()
    span = only_llm(run)
    assert span.end_ns is not None and span.attributes.get("stream_incomplete") is True


def test_chat_async_and_async_stream(aclient: openai.AsyncOpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(**USAGE_REPLY), Reply(**USAGE_REPLY))

    async def main() -> tuple[Run, list]:
        async with profile("async", instrument=["openai"]) as run:
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            assert isinstance(stream, openai.AsyncStream)
            chunks = [c async for c in stream]
        return run, chunks

    run, chunks = asyncio.run(main())
    assert all(c.choices for c in chunks)  # usage-only chunk hidden
    spans = run.llm_spans()
    assert len(spans) == 2 and [usage_tuple(s.llm.usage) for s in spans] == [EXPECTED, EXPECTED]


def test_api_errors_propagate_unchanged_and_are_recorded(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(status=400, error_message="context too long"))
    with profile("err", instrument=["openai"]) as run:
        with pytest.raises(openai.BadRequestError, match="context too long"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_llm(run)
    assert span.status == "error" and "BadRequestError" in span.error and "context too long" in span.error


def test_nests_under_trace_and_records_nothing_outside_a_profile(client: openai.OpenAI) -> None:
    instrument("openai")
    assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices  # no profile: fine

    @trace(name="plan")
    def plan() -> None:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with profile("nest") as run:
        plan()
    span = only_llm(run)
    assert run.by_id()[span.parent_id].name == "plan"


# ---------------------------------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------------------------------
def test_responses_sync_async_and_stream(client: openai.OpenAI, aclient: openai.AsyncOpenAI, llm_server: Any) -> None:
    llm_server.script(*(Reply(**USAGE_REPLY) for _ in range(4)))
    tools = [{"type": "function", "name": "add", "description": "Add.", "parameters": {"type": "object"}}]
    with profile("responses", instrument=["openai"]) as run:
        r = client.responses.create(model="gpt-4.1", instructions="Be terse.", input="What is 2+3?", tools=tools,
                                    max_output_tokens=100)
        events = [e.type for e in client.responses.create(model="gpt-4.1", input="hi", stream=True)]

        async def both() -> None:
            await aclient.responses.create(model="gpt-4.1", input="hi")
            async for _ in await aclient.responses.create(model="gpt-4.1", input="hi", stream=True):
                pass

        asyncio.run(both())
    assert events[-1] == "response.completed"
    spans = run.llm_spans()
    assert len(spans) == 4 and all(s.name == "openai.responses.create" for s in spans)
    assert [usage_tuple(s.llm.usage) for s in spans] == [EXPECTED] * 4
    first = spans[0].llm
    assert first.messages == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "What is 2+3?"}]
    assert first.tools == [{"type": "function", "function": {"name": "add", "description": "Add.",
                                                             "parameters": {"type": "object"}}}]
    assert first.params == {"max_output_tokens": 100}
    assert first.output == {"role": "assistant", "content": r.output_text}
    assert spans[1].llm.output["content"] == "Hello from the loopback server."


def test_responses_input_items_become_chat_messages(client: openai.OpenAI) -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "add 1 and 2"}]},
        {"type": "function_call", "call_id": "c1", "name": "add", "arguments": '{"a":1,"b":2}'},
        {"type": "function_call_output", "call_id": "c1", "output": "3"},
    ]
    with profile("items", instrument=["openai"]) as run:
        client.responses.create(model="gpt-4.1", input=items)
    assert only_llm(run).llm.messages == [
        {"role": "user", "content": "add 1 and 2"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": '{"a":1,"b":2}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3"},
    ]


# ---------------------------------------------------------------------------------------------------
# middleware seam (for live optimization)
# ---------------------------------------------------------------------------------------------------
def test_middleware_transform_and_cache_lookup(client: openai.OpenAI, llm_server: Any) -> None:
    cache: dict[str, Any] = {}

    def shorten(api: str, kwargs: dict) -> dict:
        return {**kwargs, "messages": kwargs["messages"][-1:]}

    def key(kwargs: dict) -> str:
        return repr(kwargs["messages"])

    remove = add_middleware(Middleware(
        "test-cache", before_request=shorten, lookup=lambda api, kw: cache.get(key(kw)),
        after_response=lambda api, kw, resp: cache.setdefault(key(kw), resp)))
    try:
        with profile("mw", instrument=["openai"]) as run:
            first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            second = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        remove()
    assert second is first and len(llm_server.requests) == 1  # the second call never left the process
    assert llm_server.requests[0].body["messages"] == MESSAGES[-1:]
    a, b = run.llm_spans()
    assert a.llm.messages == MESSAGES[-1:] and a.attributes["transformed_by"] == ["test-cache"]
    assert b.attributes["served_by"] == "test-cache"
    assert (b.llm.usage.input_tokens, b.llm.usage.output_tokens) == (0, 0)


def test_a_failing_middleware_never_breaks_the_call(client: openai.OpenAI) -> None:
    def boom(api: str, kwargs: dict) -> dict:
        raise RuntimeError("middleware bug")

    remove = add_middleware(Middleware("broken", before_request=boom, lookup=lambda a, k: 1 / 0))
    try:
        with profile("mw", instrument=["openai"]) as run:
            assert client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES).choices
    finally:
        remove()
    assert len(run.llm_spans()) == 1


def test_raw_and_streaming_response_wrappers_still_work(client: openai.OpenAI) -> None:
    with profile("raw", instrument=["openai"]):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
        assert raw.parse().choices[0].message.content
        with client.chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MESSAGES) as r:
            assert r.parse().usage.prompt_tokens == 42


def test_sdk_stream_helpers_are_recorded_too(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(**USAGE_REPLY), Reply(**USAGE_REPLY))
    with profile("helpers", instrument=["openai"]) as run:
        with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
            for _ in stream:
                pass
            assert stream.get_final_completion().choices[0].message.content == "Hello from the loopback server."
        with client.responses.stream(model="gpt-4.1", input="hi") as rstream:
            for _ in rstream:
                pass
            assert rstream.get_final_response().output_text == "Hello from the loopback server."
    assert [usage_tuple(s.llm.usage) for s in run.llm_spans()] == [EXPECTED, EXPECTED]


def test_overlapping_profile_blocks_keep_the_patch_until_the_last_one_ends() -> None:
    import contextvars

    # Out-of-order exits leave the active-span ContextVar of this context pointing at a dead block: run
    # the body in a throwaway copy of the context so later tests start clean.
    contextvars.copy_context().run(_overlapping_blocks)


def _overlapping_blocks() -> None:
    before = _methods()
    outer = profile("outer", instrument=["openai"])
    outer.__enter__()
    inner = profile("inner", instrument=["openai", "openai"])
    inner.__enter__()
    outer.__exit__(None, None, None)  # blocks on different threads may end in any order
    assert _methods()[0] is not before[0]
    inner.__exit__(None, None, None)
    assert all(a is b for a, b in zip(before, _methods()))


def test_profile_with_an_unknown_sdk_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    from tokprof.profiler import hooks

    hooks.reset_internal_errors()
    with profile("bad", instrument=["not-an-sdk"]) as run:
        pass
    assert run.spans and "supported SDKs" in caplog.text


def test_chat_stream_other_stream_options_are_kept(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(**USAGE_REPLY))
    with profile("stream", instrument=["openai"]) as run:
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                                     stream_options={"include_obfuscation": False}))
    assert llm_server.requests[-1].body["stream_options"] == {"include_obfuscation": False, "include_usage": True}
    assert all(c.choices for c in chunks)
    assert usage_tuple(only_llm(run).llm.usage) == EXPECTED


def test_saved_run_file_round_trips_the_sdk_span(client: openai.OpenAI, llm_server: Any, tmp_path: Any) -> None:
    from tokprof.profiler import load_run

    llm_server.script(Reply(text="", tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 1}}],
                            **USAGE_REPLY))
    with profile("saved", instrument=["openai"], save=tmp_path) as run:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS,
                                       response_format={"type": "text"})
    loaded = load_run(run.path)
    (span,) = loaded.llm_spans()
    assert usage_tuple(span.llm.usage) == EXPECTED
    assert span.llm.tools == TOOLS and span.llm.params == {"response_format": {"type": "text"}}
    assert span.llm.output == only_llm(run).llm.output


def test_a_rejected_call_is_counted_but_labelled_estimated_with_the_reason(client: openai.OpenAI,
                                                                             llm_server: Any) -> None:
    """HTTP 429 with no usage block: the prompt is counted (what was sent) but nothing says the provider
    billed it, so every count and the cost are ``estimated`` and the span names the status."""
    from tokprof.profiler.accounting import span_cost

    llm_server.script(Reply(status=429, error_message="rate limited"))
    with profile("rejected", instrument=["openai"]) as run:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    span = only_llm(run)
    u = span.llm.usage
    assert span.status == "error" and u.input_tokens > 0
    assert set(u.sources.values()) == {"estimated"}
    assert "HTTP 429" in span.attributes["usage_note"]
    cost = span_cost(span, "USD")
    assert cost is not None and cost.source == "estimated"
