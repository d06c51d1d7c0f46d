"""Anthropic SDK instrumentation against the real loopback HTTP server (tests/llm_server.py): the real
client, ``base_url`` pointed at 127.0.0.1, no mocked transports."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest
from anthropic.resources.messages.messages import AsyncMessages, Messages

from llm_server import Reply
from tokprof.profiler import instrument, profile, trace, uninstrument
from tokprof.profiler.model import Run, Usage

MODEL = "claude-haiku-4-5"
SYSTEM = [{"type": "text", "text": "You are a calculator.", "cache_control": {"type": "ephemeral"}}]
MESSAGES = [
    {"role": "user", "content": "What is 2+3?"},
    {"role": "assistant", "content": [
        {"type": "text", "text": "Let me add."},
        {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 2, "b": 3}},
    ]},
    {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "5"},
        {"type": "text", "text": "Go on."},
    ]},
]
TOOLS = [{"name": "add", "description": "Add two integers.",
          "input_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}]
# tokprof convention: input includes cache read + write. The server reports input_tokens = 2000-1500-300.
USAGE_REPLY = dict(input_tokens=2000, cached_tokens=1500, cache_write_tokens=300, output_tokens=90,
                   reasoning_tokens=40)
EXPECTED = (2000, 1500, 300, 90, 40)


def usage_tuple(u: Usage) -> tuple[int, int, int, int, int]:
    return (u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens)


@pytest.fixture
def client(llm_server: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=llm_server.anthropic_url, api_key="test", max_retries=0)


@pytest.fixture
def aclient(llm_server: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=llm_server.anthropic_url, api_key="test", max_retries=0)


@pytest.fixture(autouse=True)
def _clean_instrumentation():
    yield
    uninstrument("anthropic")


def _methods() -> list[Any]:
    return [Messages.__dict__["create"], AsyncMessages.__dict__["create"], Messages.__dict__["stream"],
            AsyncMessages.__dict__["stream"]]


def test_uninstrument_restores_the_very_same_methods() -> None:
    before = _methods()
    instrument("anthropic")
    assert all(a is not b for a, b in zip(before, _methods()))
    uninstrument("anthropic")
    assert all(a is b for a, b in zip(before, _methods()))


def test_create_records_request_in_openai_format_and_usage_with_cache_added(client: anthropic.Anthropic,
                                                                             llm_server: Any) -> None:
    llm_server.script(Reply(text="The sum is 5.", **USAGE_REPLY))
    with profile("create", instrument=["anthropic"]) as run:
        msg = client.messages.create(model=MODEL, max_tokens=256, system=SYSTEM, messages=MESSAGES, tools=TOOLS,
                                     stop_sequences=["END"])
    # The SDK's own view: input_tokens excludes the cache.
    assert msg.usage.input_tokens == 200
    (span,) = run.llm_spans()
    call = span.llm
    assert span.name == "anthropic.messages.create"
    assert call.provider == "anthropic" and call.model == MODEL
    assert call.params == {"max_tokens": 256, "stop_sequences": ["END"]}
    assert usage_tuple(call.usage) == EXPECTED
    assert all(call.usage.source(f) == "provider" for f in ("input_tokens", "cache_read_tokens",
                                                            "cache_write_tokens", "output_tokens",
                                                            "reasoning_tokens"))
    assert call.messages == [
        {"role": "system", "content": [{"type": "text", "text": "You are a calculator.",
                                        "cache_control": {"type": "ephemeral"}}]},
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": "Let me add.",
         "tool_calls": [{"id": "toolu_1", "type": "function",
                         "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "5"},
        {"role": "user", "content": "Go on."},
    ]
    assert call.tools == [{"type": "function", "function": {"name": "add", "description": "Add two integers.",
                                                            "parameters": TOOLS[0]["input_schema"]}}]
    assert call.output == {"role": "assistant", "content": "The sum is 5."}
    assert call.finish_reason == "end_turn" and call.response_id == msg.id


def test_create_stream_true_sync_and_async(client: anthropic.Anthropic, aclient: anthropic.AsyncAnthropic,
                                           llm_server: Any) -> None:
    tool_reply = dict(text="", tool_calls=[{"id": "toolu_7", "name": "add", "arguments": {"a": 1, "b": 41}}])
    llm_server.script(Reply(**tool_reply, **USAGE_REPLY), Reply(**USAGE_REPLY))
    with profile("stream", instrument=["anthropic"]) as run:
        stream = client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES[:1], stream=True)
        assert isinstance(stream, anthropic.Stream)
        events = [e.type for e in stream]

        async def consume() -> list[str]:
            s = await aclient.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES[:1], stream=True)
            return [e.type async for e in s]

        aevents = asyncio.run(consume())
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "message_delta" in aevents
    first, second = run.llm_spans()
    assert [usage_tuple(s.llm.usage) for s in (first, second)] == [EXPECTED, EXPECTED]
    assert first.llm.output == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "toolu_7", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 41}'}}]}
    assert first.llm.finish_reason == "tool_use"
    assert second.llm.output == {"role": "assistant", "content": "Hello from the loopback server."}


def test_messages_stream_helper_sync(client: anthropic.Anthropic, llm_server: Any) -> None:
    llm_server.script(Reply(text="Streaming works.", **USAGE_REPLY))
    with profile("helper", instrument=["anthropic"]) as run:
        with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES[:1]) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "Streaming works." and final.usage.output_tokens == 90
    (span,) = run.llm_spans()
    assert span.name == "anthropic.messages.stream"
    assert usage_tuple(span.llm.usage) == EXPECTED
    assert span.llm.output == {"role": "assistant", "content": "Streaming works."}


def test_messages_stream_helper_async(aclient: anthropic.AsyncAnthropic, llm_server: Any) -> None:
    llm_server.script(Reply(text="Async streaming.", **USAGE_REPLY))

    async def main() -> tuple[Run, str]:
        async with profile("ahelper", instrument=["anthropic"]) as run:
            async with aclient.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES[:1]) as stream:
                text = "".join([t async for t in stream.text_stream])
        return run, text

    run, text = asyncio.run(main())
    assert text == "Async streaming."
    (span,) = run.llm_spans()
    assert usage_tuple(span.llm.usage) == EXPECTED


def test_async_create_nested_under_trace(aclient: anthropic.AsyncAnthropic, llm_server: Any) -> None:
    llm_server.script(Reply(**USAGE_REPLY))

    @trace(name="think")
    async def think() -> None:
        await aclient.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES[:1])

    async def main() -> Run:
        async with profile("nest", instrument=["anthropic"]) as run:
            await think()
        return run

    run = asyncio.run(main())
    (span,) = run.llm_spans()
    assert run.by_id()[span.parent_id].name == "think"
    assert usage_tuple(span.llm.usage) == EXPECTED


def test_errors_propagate_unchanged_and_are_recorded(client: anthropic.Anthropic, llm_server: Any) -> None:
    llm_server.script(Reply(status=400, error_message="prompt is too long"),
                      Reply(status=400, error_message="bad stream"))
    with profile("err", instrument=["anthropic"]) as run:
        with pytest.raises(anthropic.BadRequestError, match="prompt is too long"):
            client.messages.create(model=MODEL, max_tokens=64, messages=MESSAGES[:1])
        with pytest.raises(anthropic.BadRequestError, match="bad stream"):
            with client.messages.stream(model=MODEL, max_tokens=64, messages=MESSAGES[:1]) as s:
                s.until_done()
    spans = run.llm_spans()
    assert len(spans) == 2 and all(s.status == "error" for s in spans)
    assert "prompt is too long" in spans[0].error and "bad stream" in spans[1].error


def test_messages_stream_refusing_its_arguments_is_recorded_like_create(client: anthropic.Anthropic) -> None:
    with profile("bad-args", instrument=["anthropic"]) as run:
        with pytest.raises(TypeError) as bare:
            client.messages.stream(model=MODEL, messages=MESSAGES[:1])  # max_tokens missing
    spans = run.llm_spans()
    assert len(spans) == 1 and spans[0].status == "error" and spans[0].end_ns is not None
    assert str(bare.value) in spans[0].error
