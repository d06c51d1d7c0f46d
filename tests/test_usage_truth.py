"""Usage blocks of OpenAI-compatible servers tokprof must read with true numbers, and usage that cannot be true
(partial, impossible, a stream cut before its final chunk) repaired and labelled, never taken as provider truth.

Every test drives a real client library (openai, zai-sdk, the Volcengine Ark runtime, anthropic, google-genai,
litellm, dashscope) over HTTP to the loopback server (tests/llm_server.py) answering in the provider's
documented format. Oracles: the providers' own pages, cited per case, and hand arithmetic.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from decimal import Decimal
from typing import Any, Callable

import openai
import pytest

import llm_server as server_module
from llm_server import Reply
from tokprof.profiler import keys, profile, uninstrument
from tokprof.profiler.accounting import span_cost

MESSAGES = [{"role": "user", "content": "What is 101*3?"}]
TEXT = "Hello from the loopback server."  # the server's default answer, sent in pieces of 5 characters


@pytest.fixture(autouse=True)
def _clean():
    yield
    uninstrument()


def client(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="t", max_retries=0)


def one_span(run: Any) -> Any:
    (span,) = run.llm_spans()
    return span


def attrs(span: Any) -> dict[str, Any]:
    return span.attributes or {}


def counts(span: Any) -> dict[str, tuple[int, str]]:
    u = span.llm.usage
    return {k: (getattr(u, k), src) for k, src in u.sources.items()}


# ---------------------------------------------------------------------------------------------------
# 1. the documented dialects, read as the provider sent them (source "provider")
# ---------------------------------------------------------------------------------------------------
DIALECTS = {
    # https://api-docs.deepseek.com/guides/kv_cache: prompt_cache_hit_tokens + prompt_cache_miss_tokens = prompt
    "deepseek": ({"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050,
                  "prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200},
                 {"input_tokens": 1000, "cache_read_tokens": 800, "output_tokens": 50}),
    "deepseek-hit-miss-only": ({"completion_tokens": 50, "prompt_cache_hit_tokens": 800,
                                "prompt_cache_miss_tokens": 200},
                               {"input_tokens": 1000, "cache_read_tokens": 800, "output_tokens": 50}),
    # https://platform.moonshot.ai/docs/api/chat: moonshot-v1 context caching, top-level cached_tokens
    "moonshot-top-level-cached": ({"prompt_tokens": 900, "completion_tokens": 40, "total_tokens": 940,
                                   "cached_tokens": 600},
                                  {"input_tokens": 900, "cache_read_tokens": 600, "output_tokens": 40}),
    # https://www.alibabacloud.com/help/en/model-studio/context-cache (Qwen), https://docs.z.ai/guides/capabilities/cache
    # (GLM), https://www.volcengine.com/docs/82379/1494384 (Doubao), OpenAI's chat usage object
    "nested-cached-and-reasoning": ({"prompt_tokens": 1200, "completion_tokens": 80, "total_tokens": 1280,
                                     "prompt_tokens_details": {"cached_tokens": 1024},
                                     "completion_tokens_details": {"reasoning_tokens": 30}},
                                    {"input_tokens": 1200, "cache_read_tokens": 1024, "output_tokens": 80,
                                     "reasoning_tokens": 30}),
    # Ollama's /v1 endpoints: Usage{prompt_tokens, completion_tokens, total_tokens} = prompt_eval_count + eval_count,
    # on a stream's last chunk with stream_options.include_usage (ToUsage, ChatCompletionChunk.Usage in
    # https://github.com/ollama/ollama/blob/main/openai/openai.go)
    "ollama": ({"prompt_tokens": 26, "completion_tokens": 12, "total_tokens": 38},
               {"input_tokens": 26, "output_tokens": 12}),
    # MiniMax chatcompletion_v2 (https://platform.minimax.io/docs/api-reference/text-post): total_characters,
    # reasoning inside completion_tokens (214 of 223), base_resp status_code 0 = success
    "minimax-v2": ({"total_tokens": 249, "total_characters": 0, "prompt_tokens": 26, "completion_tokens": 223,
                    "completion_tokens_details": {"reasoning_tokens": 214}},
                   {"input_tokens": 26, "output_tokens": 223, "reasoning_tokens": 214}),
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("name", list(DIALECTS))
def test_openai_compatible_dialects_are_provider_truth(name: str, stream: bool, llm_server: Any) -> None:
    usage, want = DIALECTS[name]
    fields = {"base_resp": {"status_code": 0, "status_msg": ""}} if name == "minimax-v2" else {}
    llm_server.script(Reply(usage=usage, response_fields=fields))
    with profile("d") as run:
        out = client(llm_server).chat.completions.create(model="some-model", messages=MESSAGES, stream=stream)
        if stream:
            out = list(out)
    span = one_span(run)
    assert counts(span) == {k: (v, "provider") for k, v in want.items()}
    assert span.status == "ok" and "usage_note" not in attrs(span)
    assert not attrs(span).get(keys.STREAM_INCOMPLETE)


def test_vllm_continuous_usage_stats_last_running_total_wins(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """vLLM/SGLang ``stream_options.continuous_usage_stats``: every chunk carries the running usage (prompt
    fixed, completion growing); the final usage chunk holds the call's totals (``StreamOptions``,
    ``UsageInfo`` in https://github.com/vllm-project/vllm/blob/main/vllm/entrypoints/openai/protocol.py;
    chunks without usage say ``usage: null``, as the loopback server sends them)."""
    real = server_module._Handler._chat_chunks

    def running(self: Any, body: dict[str, Any], reply: Reply, include: bool) -> Any:
        for n, (event, chunk) in enumerate(real(self, body, reply, include)):
            if isinstance(chunk, dict) and chunk.get("choices"):
                chunk["usage"] = {"prompt_tokens": 42, "completion_tokens": n, "total_tokens": 42 + n}
            yield event, chunk

    monkeypatch.setattr(server_module._Handler, "_chat_chunks", running)
    llm_server.script(Reply(input_tokens=42, output_tokens=9))
    with profile("v") as run:
        list(client(llm_server).chat.completions.create(
            model="m", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True}))  # type: ignore[typeddict-unknown-key]
    assert counts(one_span(run)) == {"input_tokens": (42, "provider"), "output_tokens": (9, "provider"),
                                     "cache_read_tokens": (0, "provider"), "reasoning_tokens": (0, "provider")}


@pytest.mark.parametrize("include", [None, False], ids=["tokprof-asks", "caller-declines"])
def test_groq_x_groq_usage_on_legacy_completions_stream(include: bool | None, llm_server: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Groq sends ``x_groq.usage`` in the last chunk whether or not ``include_usage`` was asked
    (groq-python ``types/chat/chat_completion_chunk.py``); the legacy completions route too."""
    def groq(self: Any, path: str, body: dict[str, Any], reply: Reply) -> bool:
        if not path.endswith("/v1/completions"):
            return False
        pieces = [{"id": "cmpl-1", "object": "text_completion", "created": 1, "model": body["model"],
                   "choices": [{"text": p, "index": 0, "logprobs": None, "finish_reason": None}]} for p in reply.pieces()]
        pieces[-1]["choices"][0]["finish_reason"] = "stop"
        pieces[-1]["x_groq"] = {"id": "req_1", "usage": {"prompt_tokens": 17, "completion_tokens": 6,
                                                         "total_tokens": 23}}
        self._send_sse(iter([(None, p) for p in pieces] + [(None, "[DONE]")]))
        return True

    monkeypatch.setattr(server_module._Handler, "_extra_route", groq)
    kw: dict[str, Any] = {} if include is None else {"stream_options": {"include_usage": include}}
    with profile("g") as run:
        text = "".join(c.choices[0].text for c in client(llm_server).completions.create(
            model="llama-3.1-8b-instant", prompt="Say hi", stream=True, **kw) if c.choices)
    assert text == TEXT
    assert counts(one_span(run)) == {"input_tokens": (17, "provider"), "output_tokens": (6, "provider")}


# ---------------------------------------------------------------------------------------------------
# partial usage: never provider truth, counted locally and labelled
# ---------------------------------------------------------------------------------------------------
def test_total_only_usage_is_counted_and_labelled_estimated(llm_server: Any) -> None:
    # MiniMax's older chatcompletion_v2 stream/answers report usage {"total_tokens": N} alone
    llm_server.script(Reply(usage={"total_tokens": 61}))
    with profile("p") as run:
        client(llm_server).chat.completions.create(model="MiniMax-Text-01", messages=MESSAGES)
    span = one_span(run)
    u = span.llm.usage
    assert set(u.sources.values()) == {"estimated"} and u.input_tokens > 0 and u.output_tokens > 0
    assert "only total_tokens (61)" in attrs(span)["usage_note"]


@pytest.mark.parametrize("usage,kept,missing", [
    ({"prompt_tokens": 42}, "input_tokens", "output_tokens"),
    ({"completion_tokens": 7, "total_tokens": 49}, "output_tokens", "input_tokens"),
    ({"prompt_tokens": True, "completion_tokens": 7}, "output_tokens", "input_tokens"),  # bool: not a count
    ({"prompt_tokens": "42", "completion_tokens": 7.5}, "input_tokens", "output_tokens"),  # fractional
], ids=["prompt-only", "completion-only", "bool-prompt", "fractional-completion"])
def test_partial_usage_keeps_the_true_side_and_counts_the_other(usage: dict[str, Any], kept: str, missing: str,
                                                                  llm_server: Any) -> None:
    llm_server.script(Reply(usage=usage))
    with profile("p") as run:
        client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = one_span(run)
    u = span.llm.usage
    assert u.source(kept) == "provider" and u.source(missing) in ("counted", "estimated")
    assert getattr(u, missing) > 0
    assert f"no valid {missing.split('_')[0]} count" in attrs(span)["usage_note"]


# ---------------------------------------------------------------------------------------------------
# 2. impossible usage: repaired and labelled (hand arithmetic)
# ---------------------------------------------------------------------------------------------------
def test_total_below_input_plus_output_is_not_truth(llm_server: Any) -> None:
    # 100 + 50 = 150 > total 120: one of the three is false and nothing says which
    llm_server.script(Reply(usage={"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 120}))
    with profile("i") as run:
        client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = one_span(run)
    u = span.llm.usage
    assert set(u.sources.values()) == {"estimated"}
    assert (u.input_tokens, u.output_tokens) != (100, 50)
    assert "total_tokens 120 < input 100 + output 50" in attrs(span)["usage_note"]
    assert span_cost(span).source == "estimated"


def test_cached_above_input_reads_input_as_excluding_the_cache(llm_server: Any) -> None:
    # input 100 excluding a 300-token cache read: input = 100 + 300 = 400; gpt-4o USD row input 2.5,
    # cache_read 1.25, output 10 per 1M: (100 * 2.5 + 300 * 1.25 + 10 * 10) / 1M = 0.000725
    llm_server.script(Reply(usage={"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110,
                                   "prompt_tokens_details": {"cached_tokens": 300}}))
    with profile("i") as run:
        client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = one_span(run)
    assert counts(span) == {"input_tokens": (400, "provider"), "cache_read_tokens": (300, "provider"),
                            "output_tokens": (10, "provider")}
    assert "input = 400" in attrs(span)["usage_note"]
    assert span_cost(span).amount == (100 * Decimal("2.5") + 300 * Decimal("1.25") + 10 * 10) / 10**6 == Decimal("0.000725")


def test_reasoning_above_output_without_a_total_is_read_beside_and_labelled(llm_server: Any) -> None:
    # reasoning 40 > completion 10, no total: counted beside (xAI's way), output = 10 + 40 = 50
    llm_server.script(Reply(usage={"prompt_tokens": 100, "completion_tokens": 10,
                                   "completion_tokens_details": {"reasoning_tokens": 40}}))
    with profile("i") as run:
        client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = one_span(run)
    assert counts(span) == {"input_tokens": (100, "provider"), "output_tokens": (50, "provider"),
                            "reasoning_tokens": (40, "provider")}
    assert "output = 50" in attrs(span)["usage_note"]


def test_reasoning_above_output_when_the_total_holds_no_more_is_dropped(llm_server: Any) -> None:
    # total 110 = 100 + 10: the output already holds everything, so reasoning 40 is the false count
    llm_server.script(Reply(usage={"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110,
                                   "completion_tokens_details": {"reasoning_tokens": 40}}))
    with profile("i") as run:
        client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = one_span(run)
    assert counts(span) == {"input_tokens": (100, "provider"), "output_tokens": (10, "provider")}
    assert "reasoning count is dropped" in attrs(span)["usage_note"]


def test_zero_output_for_a_non_empty_answer_is_counted(llm_server: Any) -> None:
    llm_server.script(Reply(usage={"prompt_tokens": 100, "completion_tokens": 0, "total_tokens": 100}))
    with profile("i") as run:
        client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    span = one_span(run)
    u = span.llm.usage
    assert u.source("input_tokens") == "provider" and u.input_tokens == 100
    assert u.source("output_tokens") in ("counted", "estimated") and u.output_tokens > 0
    assert "0 output tokens for a non-empty answer" in attrs(span)["usage_note"]


def test_responses_and_anthropic_routes_go_through_the_same_check(llm_server: Any) -> None:
    import anthropic

    # Responses: input 30 + output 9 = 39 > total 20; Anthropic: gateway placeholder, then the check sees
    # reasoning (thinking 50) > output 5 with no total and reads it beside: output 55
    llm_server.script(
        Reply(usage={"input_tokens": 30, "output_tokens": 9, "total_tokens": 20,
                     "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}),
        Reply(output_tokens=5,
              usage={"input_tokens": 30, "output_tokens": 5, "output_tokens_details": {"thinking_tokens": 50}}))
    with profile("i") as run:
        client(llm_server).responses.create(model="gpt-4o", input="What is 101*3?")
        anthropic.Anthropic(base_url=llm_server.anthropic_url, api_key="t", max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    a, b = run.llm_spans()
    assert set(a.llm.usage.sources.values()) == {"estimated"} and "total_tokens 20" in attrs(a)["usage_note"]
    assert b.llm.usage.output_tokens == 55 and "output = 55" in attrs(b)["usage_note"]


def test_minimax_base_resp_error_marks_the_call_failed(llm_server: Any) -> None:
    # HTTP 200 with base_resp.status_code 1008 (insufficient balance) and no answer
    llm_server.script(Reply(text="", usage={"total_tokens": 0},
                            response_fields={"base_resp": {"status_code": 1008, "status_msg": "insufficient balance"}}))
    with profile("m") as run:
        r = client(llm_server).chat.completions.create(model="MiniMax-M1", messages=MESSAGES)
    assert r.base_resp["status_code"] == 1008  # type: ignore[attr-defined]  # the caller's response is untouched
    span = one_span(run)
    assert span.status == "error" and span.error == "provider error in base_resp: status_code 1008"
    assert "insufficient" not in span.error
    assert "provider" not in span.llm.usage.sources.values()


# ---------------------------------------------------------------------------------------------------
# 3. a stream the server closes quietly before its final chunk: incomplete, output estimated
# ---------------------------------------------------------------------------------------------------
@pytest.fixture
def cut_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """The server sends the first ``n`` SSE events, then ends the body cleanly (no finish reason, no usage,
    no ``[DONE]``): what a proxy or a crashed worker does."""
    def cut(n: int) -> None:
        real = server_module._Handler._send_sse
        monkeypatch.setattr(server_module._Handler, "_send_sse",
                            lambda self, events: real(self, itertools.islice(events, n)))
    return cut


def _check_cut(span: Any, text: str, provider_input: int | None = None) -> None:
    assert attrs(span).get(keys.STREAM_INCOMPLETE) is True, span.attributes
    assert span.status == "ok"
    assert (span.llm.output or {}).get("content") == text
    u = span.llm.usage
    assert u.source("output_tokens") == "estimated" and u.output_tokens > 0
    assert "provider" not in {u.source("output_tokens"), u.source("reasoning_tokens")}
    if provider_input is None:
        assert set(u.sources.values()) == {"estimated"}
    else:
        assert (u.input_tokens, u.source("input_tokens")) == (provider_input, "provider")
    assert span_cost(span) is None or span_cost(span).source == "estimated"


def test_cut_openai_chat_stream(llm_server: Any, cut_after: Callable[[int], None]) -> None:
    cut_after(4)  # role chunk + 3 pieces of 5 characters
    with profile("c") as run:
        got = "".join(c.choices[0].delta.content or "" for c in client(llm_server).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True))
    assert got == TEXT[:15]
    _check_cut(one_span(run), TEXT[:15])


def test_cut_zai_stream(llm_server: Any, cut_after: Callable[[int], None]) -> None:
    import zai

    cut_after(3)
    llm_server.script(Reply(usage_in_last_chunk=True))
    with profile("c") as run:
        stream = zai.ZaiClient(api_key="t", base_url=llm_server.url + "/api/paas/v4").chat.completions.create(
            model="glm-4.6", messages=MESSAGES, stream=True)
        got = "".join(c.choices[0].delta.content or "" for c in stream)
    assert got == TEXT[:10]
    _check_cut(one_span(run), TEXT[:10])


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
def test_cut_ark_stream(is_async: bool, llm_server: Any, cut_after: Callable[[int], None]) -> None:
    import volcenginesdkarkruntime as ark

    cut_after(3)
    kw = dict(model="doubao-seed-1.6", messages=MESSAGES, stream=True)
    with profile("c") as run:
        if is_async:
            async def go() -> str:
                c = ark.AsyncArk(base_url=llm_server.url + "/api/v3", api_key="t", max_retries=0)
                return "".join([x.choices[0].delta.content or "" async for x in await c.chat.completions.create(**kw)])
            got = asyncio.run(go())
        else:
            c = ark.Ark(base_url=llm_server.url + "/api/v3", api_key="t", max_retries=0)
            got = "".join(x.choices[0].delta.content or "" for x in c.chat.completions.create(**kw))
    assert got == TEXT[:10]
    _check_cut(one_span(run), TEXT[:10])


def test_cut_anthropic_stream_keeps_message_start_input_only(llm_server: Any, cut_after: Callable[[int], None]) -> None:
    import anthropic

    # message_start (input 42, placeholder output), content_block_start, 2 deltas: no message_delta
    cut_after(4)
    with profile("c") as run:
        events = list(anthropic.Anthropic(base_url=llm_server.anthropic_url, api_key="t", max_retries=0)
                      .messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES, stream=True))
    assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
    assert "message_delta" not in [e.type for e in events]
    got = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert got and TEXT.startswith(got) and got != TEXT
    _check_cut(one_span(run), got, provider_input=42)


def test_cut_gemini_stream(llm_server: Any, cut_after: Callable[[int], None]) -> None:
    from google import genai
    from google.genai import types

    cut_after(2)
    c = genai.Client(api_key="t", http_options=types.HttpOptions(base_url=llm_server.url))
    with profile("c") as run:
        got = "".join(ch.text or "" for ch in c.models.generate_content_stream(model="gemini-2.5-flash",
                                                                                contents="What is 101*3?"))
    assert got == TEXT[:10]
    _check_cut(one_span(run), TEXT[:10])


def test_cut_litellm_stream_raises_its_own_error_unchanged(llm_server: Any, cut_after: Callable[[int], None]) -> None:
    """litellm itself notices the missing finish reason and raises (``MidStreamFallbackError``): the caller
    gets litellm's exception unchanged, the span fails, and its output is never provider truth."""
    import litellm

    cut_after(4)
    got: list[str] = []
    with profile("c") as run:
        with pytest.raises(litellm.exceptions.MidStreamFallbackError):
            for c in litellm.completion(model="openai/gpt-4o", messages=MESSAGES, api_base=llm_server.openai_url,
                                        api_key="t", stream=True):
                got.append(c.choices[0].delta.content or "")
    (span,) = run.llm_spans()
    assert span.status == "error" and "MidStreamFallbackError" in span.error
    assert "provider" not in span.llm.usage.sources.values()
    assert span.llm.usage.output_tokens > 0 or not "".join(got)


@pytest.mark.parametrize("api", ["generation", "client"])
def test_cut_dashscope_stream(api: str, llm_server: Any, cut_after: Callable[[int], None],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    import dashscope

    cut_after(3)  # three events whose finish_reason is the text "null"; cumulative usage on each
    llm_server.script(Reply(input_tokens=1200, output_tokens=80))
    with profile("c") as run:
        if api == "generation":
            monkeypatch.setattr(dashscope, "base_http_api_url", llm_server.dashscope_url)
            monkeypatch.setattr(dashscope, "api_key", "t")
            chunks = list(dashscope.Generation.call(model="qwen-plus", messages=MESSAGES, result_format="message",
                                                    stream=True, incremental_output=True))
            got = "".join(c.output.choices[0].message.content for c in chunks)
        else:
            c = dashscope.Client(api_key="t", base_url=llm_server.dashscope_url, max_retries=0)
            got = "".join(c.chat.completions.create(model="qwen-plus", messages=MESSAGES, stream=True).text_stream)
    assert got == TEXT[:15]
    _check_cut(one_span(run), TEXT[:15], provider_input=1200)


def test_complete_stream_is_not_marked_cut(llm_server: Any) -> None:
    with profile("c") as run:
        list(client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    span = one_span(run)
    assert not attrs(span).get(keys.STREAM_INCOMPLETE)
    assert set(span.llm.usage.sources.values()) == {"provider"}


# ---------------------------------------------------------------------------------------------------
# 4. dashscope's async "Unclosed client session" warning is dashscope's own, not tokprof's
# ---------------------------------------------------------------------------------------------------
def test_tokprof_adds_no_unclosed_aiohttp_session_to_dashscope_async(llm_server: Any, tmp_path: Any) -> None:
    """dashscope keeps one shared aiohttp session per event loop (``api_entities/aio_session.py``
    ``get_shared_aio_session``) and does not close it when ``asyncio.run`` ends the loop, so aiohttp warns
    "Unclosed client session" at exit with or without tokprof. Traced, the same calls warn no more often."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "agent.py"
    script.write_text(f"""
import asyncio, gc, sys
import dashscope
dashscope.base_http_api_url, dashscope.api_key = {llm_server.dashscope_url!r}, "t"
M = [{{"role": "user", "content": "hi"}}]
async def go():
    await dashscope.AioGeneration.call(model="qwen-plus", messages=M, result_format="message")
    gen = await dashscope.AioGeneration.call(model="qwen-plus", messages=M, result_format="message", stream=True,
                                             incremental_output=True)
    async for _ in gen:
        pass
    c = dashscope.AsyncClient(api_key="t", base_url={llm_server.dashscope_url!r}, max_retries=0)
    await c.chat.completions.create(model="qwen-plus", messages=M)
    async for _ in await c.chat.completions.create(model="qwen-plus", messages=M, stream=True):
        pass
if sys.argv[1] == "traced":
    from tokprof.profiler import profile
    with profile("ds") as run:
        asyncio.run(go())
    assert len(run.llm_spans()) == 4, run.llm_spans()
else:
    asyncio.run(go())
gc.collect()
""")
    warned = {}
    for mode in ("plain", "traced"):
        out = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=120,
                             cwd=Path(__file__).parent)
        assert out.returncode == 0, out.stderr
        warned[mode] = out.stderr.count("Unclosed client session")
    assert warned["traced"] == warned["plain"], warned


def test_cut_openai_responses_stream_keeps_the_text_delivered(llm_server: Any, cut_after: Callable[[int], None]) -> None:
    # response.created, response.in_progress, output_item.added, content_part.added, 3 text deltas: no completed
    cut_after(7)
    with profile("c") as run:
        events = list(client(llm_server).responses.create(model="gpt-4o", input="What is 101*3?", stream=True))
    got = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert got == TEXT[:15] and "response.completed" not in [e.type for e in events]
    span = one_span(run)
    assert span.llm.finish_reason == "in_progress"
    _check_cut(span, TEXT[:15])


# ---------------------------------------------------------------------------------------------------
# record_llm_call: a usage dict the user hands over goes through the same check
# ---------------------------------------------------------------------------------------------------
def test_record_llm_call_usage_goes_through_the_one_check() -> None:
    from tokprof.profiler import record_llm_call

    with profile("r") as run:
        record_llm_call(model="gpt-4o", messages=MESSAGES, output="303",
                        usage={"input_tokens": -3, "output_tokens": True})  # junk: never provider truth
        record_llm_call(model="gpt-4o", messages=MESSAGES, output="303",
                        usage={"input_tokens": 10, "output_tokens": 2, "cache_read_tokens": 30})
        record_llm_call(model="gpt-4o", messages=MESSAGES, output="303",
                        usage={"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 9})  # a provider block
        record_llm_call(model="gpt-4o", messages=MESSAGES, output="303",
                        usage={"prompt_tokens": 12, "completion_tokens": 2, "total_tokens": 14,
                               "prompt_tokens_details": {"cached_tokens": 8}})
    junk, cached, impossible, fine = run.llm_spans()
    assert "provider" not in junk.llm.usage.sources.values() and junk.llm.usage.input_tokens > 0
    # input 10 excluding a 30-token cache read: 10 + 30 = 40
    assert (cached.llm.usage.input_tokens, cached.llm.usage.cache_read_tokens) == (40, 30)
    assert "input = 40" in attrs(cached)["usage_note"]
    assert set(impossible.llm.usage.sources.values()) == {"estimated"}
    assert "total_tokens 9 < input 12 + output 2" in attrs(impossible)["usage_note"]
    assert counts(fine) == {"input_tokens": (12, "provider"), "output_tokens": (2, "provider"),
                            "cache_read_tokens": (8, "provider")}
    assert "usage_note" not in attrs(fine)


# ---------------------------------------------------------------------------------------------------
# a layer above the SDK (LangChain) takes the SDK's checked usage and its note
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True], ids=["invoke", "stream"])
def test_langchain_over_the_sdk_gets_the_checked_usage(stream: bool, llm_server: Any) -> None:
    from langchain_openai import ChatOpenAI

    llm_server.script(Reply(usage={"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 120}),
                      Reply(usage={"total_tokens": 61}),
                      Reply(usage={"prompt_tokens": 100, "completion_tokens": 10,
                                   "completion_tokens_details": {"reasoning_tokens": 40}}))
    model = ChatOpenAI(model="gpt-4o", base_url=llm_server.openai_url, api_key="t", max_retries=0, streaming=stream)
    with profile("lc") as run:
        for _ in range(3):
            model.invoke("What is 101*3?")
    impossible, total_only, beside = run.llm_spans()
    # LangChain's own copy of the first block says 100 + 50 as if true: the SDK's check is what counts
    assert set(impossible.llm.usage.sources.values()) == {"estimated"}
    assert "total_tokens 120 < input 100 + output 50" in attrs(impossible)["usage_note"]
    assert set(total_only.llm.usage.sources.values()) == {"estimated"}
    assert "only total_tokens (61)" in attrs(total_only)["usage_note"]
    assert counts(beside) == {"input_tokens": (100, "provider"), "output_tokens": (50, "provider"),
                              "reasoning_tokens": (40, "provider")}
    assert "output = 50" in attrs(beside)["usage_note"]


def test_stream_dropped_mid_body_raises_the_clients_own_error_unchanged(llm_server: Any,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server drops the connection inside the chunked body (no terminating chunk): the client raises;
    traced, the very same exception type reaches the caller, the span fails and nothing is provider truth."""
    def dropped(self: Any, events: Any) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _, data in itertools.islice(events, 3):
            raw = ("data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n").encode()
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    monkeypatch.setattr(server_module._Handler, "_send_sse", dropped)

    def consume() -> tuple[str, type]:
        got: list[str] = []
        try:
            for c in client(llm_server).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True):
                got.append(c.choices[0].delta.content or "" if c.choices else "")
        except Exception as exc:  # noqa: BLE001 - the test compares what the caller sees
            return "".join(got), type(exc)
        raise AssertionError("the client did not raise")

    plain_text, plain_error = consume()
    with profile("c") as run:
        traced_text, traced_error = consume()
    assert (traced_text, traced_error) == (plain_text, plain_error)
    span = one_span(run)
    assert span.status == "error" and plain_error.__name__ in span.error
    assert "provider" not in span.llm.usage.sources.values()
