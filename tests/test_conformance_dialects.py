"""Every provider's usage dialect read into tokprof's convention (input includes cache; output includes
reasoning), checked against hand arithmetic on payloads shaped as each provider documents them."""

from __future__ import annotations

import pytest

from tokprof.profiler.integrations import usage_dialects as ud
from tokprof.profiler.model import LLMCall, Usage

USER = [{"role": "user", "content": "hello"}]


def fields(u: Usage) -> dict[str, int]:
    return {k: getattr(u, k) for k in u.sources}


CASES = {
    # OpenAI chat: prompt_tokens includes cached_tokens.
    "openai-chat": (ud.chat_usage, {
        "prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
        "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 128}},
        dict(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=128)),
    "openai-responses": (ud.responses_usage, {
        "input_tokens": 1500, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 80,
        "output_tokens_details": {"reasoning_tokens": 40}, "total_tokens": 1580},
        dict(input_tokens=1500, output_tokens=80, cache_read_tokens=1024, reasoning_tokens=40)),
    # DeepSeek top level: prompt = hit + miss.
    "deepseek-toplevel": (ud.chat_usage, {
        "prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
        "prompt_cache_hit_tokens": 1024, "prompt_cache_miss_tokens": 176},
        dict(input_tokens=1200, output_tokens=50, cache_read_tokens=1024)),
    "deepseek-hit-miss-only": (ud.chat_usage, {
        "completion_tokens": 50, "prompt_cache_hit_tokens": 1024, "prompt_cache_miss_tokens": 176},
        dict(input_tokens=1200, output_tokens=50, cache_read_tokens=1024)),
    "deepseek-reasoner-nested": (ud.chat_usage, {
        "prompt_tokens": 900, "completion_tokens": 700, "prompt_cache_hit_tokens": 640, "prompt_cache_miss_tokens": 260,
        "prompt_tokens_details": {"cached_tokens": 640}, "completion_tokens_details": {"reasoning_tokens": 600}},
        dict(input_tokens=900, output_tokens=700, cache_read_tokens=640, reasoning_tokens=600)),
    # moonshot-v1 context caching: cached_tokens at the top level.
    "moonshot-v1-toplevel": (ud.chat_usage, {
        "prompt_tokens": 3000, "completion_tokens": 20, "total_tokens": 3020, "cached_tokens": 2500},
        dict(input_tokens=3000, output_tokens=20, cache_read_tokens=2500)),
    "kimi-k2-nested": (ud.chat_usage, {
        "prompt_tokens": 3000, "completion_tokens": 20, "prompt_tokens_details": {"cached_tokens": 2048}},
        dict(input_tokens=3000, output_tokens=20, cache_read_tokens=2048)),
    "qwen-implicit": (ud.chat_usage, {
        "prompt_tokens": 3019, "completion_tokens": 104, "total_tokens": 3123,
        "prompt_tokens_details": {"cached_tokens": 2048}},
        dict(input_tokens=3019, output_tokens=104, cache_read_tokens=2048)),
    "qwen-explicit": (ud.chat_usage, {
        "prompt_tokens": 3019, "completion_tokens": 104, "total_tokens": 3123,
        "prompt_tokens_details": {"cached_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 1500},
                                  "cache_creation_input_tokens": 1500, "cache_type": "ephemeral"}},
        dict(input_tokens=3019, output_tokens=104, cache_read_tokens=0, cache_write_tokens=1500)),
    "qwen-thinking": (ud.chat_usage, {
        "prompt_tokens": 20, "completion_tokens": 900, "completion_tokens_details": {"reasoning_tokens": 850}},
        dict(input_tokens=20, output_tokens=900, reasoning_tokens=850)),
    "glm": (ud.chat_usage, {
        "prompt_tokens": 1800, "completion_tokens": 60, "total_tokens": 1860,
        "prompt_tokens_details": {"cached_tokens": 1536}},
        dict(input_tokens=1800, output_tokens=60, cache_read_tokens=1536)),
    "doubao": (ud.chat_usage, {
        "prompt_tokens": 1800, "completion_tokens": 500, "prompt_tokens_details": {"cached_tokens": 1024},
        "completion_tokens_details": {"reasoning_tokens": 400}},
        dict(input_tokens=1800, output_tokens=500, cache_read_tokens=1024, reasoning_tokens=400)),
    "minimax-openai": (ud.chat_usage, {
        "prompt_tokens": 700, "completion_tokens": 33, "total_tokens": 733, "prompt_tokens_details": {"cached_tokens": 512}},
        dict(input_tokens=700, output_tokens=33, cache_read_tokens=512)),
    # Anthropic: input_tokens excludes the cache; 5m/1h split.
    "anthropic": (ud.anthropic_usage, {
        "input_tokens": 50, "cache_read_input_tokens": 10000, "cache_creation_input_tokens": 3000,
        "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        "output_tokens": 400},
        dict(input_tokens=13050, output_tokens=400, cache_read_tokens=10000, cache_write_tokens=3000,
             cache_write_1h_tokens=2000)),
    "minimax-anthropic": (ud.anthropic_usage, {
        "input_tokens": 108, "cache_read_input_tokens": 1024, "cache_creation_input_tokens": 0, "output_tokens": 91},
        dict(input_tokens=1132, output_tokens=91, cache_read_tokens=1024, cache_write_tokens=0)),
    # Gemini: prompt includes cached content; thoughts are billed as output, not in candidates.
    "gemini": (ud.gemini_usage, {
        "prompt_token_count": 5000, "cached_content_token_count": 4096, "candidates_token_count": 120,
        "thoughts_token_count": 380, "total_token_count": 5500},
        dict(input_tokens=5000, output_tokens=500, cache_read_tokens=4096, reasoning_tokens=380)),
    "gemini-rest-camel": (ud.gemini_usage, {
        "promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        dict(input_tokens=10, output_tokens=5)),
    # langchain-anthropic moves TTL-split writes out of cache_creation.
    "langchain-anthropic-ttl": (ud.langchain_usage, {
        "input_tokens": 13050, "output_tokens": 400, "total_tokens": 13450,
        "input_token_details": {"cache_read": 10000, "cache_creation": 0, "ephemeral_5m_input_tokens": 1000,
                                "ephemeral_1h_input_tokens": 2000}},
        dict(input_tokens=13050, output_tokens=400, cache_read_tokens=10000, cache_write_tokens=3000,
             cache_write_1h_tokens=2000)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_dialect(name: str) -> None:
    reader, payload, expected = CASES[name]
    usage = reader(payload)
    assert fields(usage) == expected
    assert set(usage.sources.values()) == {"provider"}
    # The generic reader picks the same dialect from the keys alone.
    assert fields(ud.any_usage(payload)) == expected


def test_unreported_count_stays_unknown() -> None:
    u = ud.chat_usage({"prompt_tokens": 10, "completion_tokens": 2})
    assert not u.known("cache_read_tokens") and not u.known("reasoning_tokens")
    assert not ud.chat_usage(None).sources


def test_anthropic_stream_merge_keeps_message_start_input() -> None:
    merged: dict = {}
    ud.merge_stream_usage(merged, {"input_tokens": 30, "cache_read_input_tokens": 900, "output_tokens": 1})
    ud.merge_stream_usage(merged, {"input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 77})
    assert fields(ud.anthropic_usage(merged)) == dict(input_tokens=930, output_tokens=77, cache_read_tokens=900)


def test_reconcile_input_excluding_cache() -> None:
    call = LLMCall(model="m", messages=USER, usage=ud.chat_usage(
        {"prompt_tokens": 50, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 1000}}))
    note = ud.reconcile(call)
    assert call.usage.input_tokens == 1050 and call.usage.cache_read_tokens == 1000
    assert note and "excluded" in note


def test_reconcile_zero_input_dropped_for_counting() -> None:
    call = LLMCall(model="gpt-4o", messages=USER, usage=ud.chat_usage({"prompt_tokens": 0, "completion_tokens": 5}))
    note = ud.reconcile(call)
    assert not call.usage.known("input_tokens") and call.usage.known("output_tokens")
    assert note and "0 input tokens" in note
    from tokprof.profiler.accounting import fill_usage

    fill_usage(call)
    assert call.usage.source("input_tokens") == "counted" and call.usage.input_tokens > 0


def test_reconcile_leaves_sound_usage() -> None:
    call = LLMCall(model="m", messages=USER, usage=ud.chat_usage({"prompt_tokens": 9, "completion_tokens": 1}))
    assert ud.reconcile(call) is None and call.usage.input_tokens == 9
