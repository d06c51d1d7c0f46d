"""The conformance matrix's data: each provider dialect as its server sends it, what tokprof must record,
and the client paths that carry it. Shared by tests/test_conformance_clients.py and
benchmarks/conformance_matrix.py.

``expected`` is written by hand from the payload (tokprof's convention: input includes cache reads and
writes, output includes reasoning), never computed by the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Dialect:
    name: str
    route: str
    """``chat`` (OpenAI-compatible), ``responses``, ``anthropic``, ``gemini``."""
    model: str
    usage: dict[str, Any]
    expected: dict[str, int]
    reply: dict[str, Any] = field(default_factory=dict)
    """Extra Reply fields (usage_in_choice, delta_usage)."""
    stream_only: bool = False


DIALECTS: list[Dialect] = [
    Dialect("openai", "chat", "gpt-4o",
            {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
             "prompt_tokens_details": {"cached_tokens": 1920}, "completion_tokens_details": {"reasoning_tokens": 0}},
            dict(input_tokens=2006, output_tokens=300, cache_read_tokens=1920, reasoning_tokens=0)),
    Dialect("deepseek-toplevel", "chat", "deepseek-chat",
            {"prompt_tokens": 1200, "completion_tokens": 50, "total_tokens": 1250,
             "prompt_cache_hit_tokens": 1024, "prompt_cache_miss_tokens": 176},
            dict(input_tokens=1200, output_tokens=50, cache_read_tokens=1024)),
    Dialect("deepseek-nested-reasoner", "chat", "deepseek-reasoner",
            {"prompt_tokens": 900, "completion_tokens": 700, "prompt_cache_hit_tokens": 640,
             "prompt_cache_miss_tokens": 260, "prompt_tokens_details": {"cached_tokens": 640},
             "completion_tokens_details": {"reasoning_tokens": 600}},
            dict(input_tokens=900, output_tokens=700, cache_read_tokens=640, reasoning_tokens=600)),
    Dialect("kimi-k2", "chat", "kimi-k2-0905-preview",
            {"prompt_tokens": 3000, "completion_tokens": 20, "total_tokens": 3020,
             "prompt_tokens_details": {"cached_tokens": 2048}},
            dict(input_tokens=3000, output_tokens=20, cache_read_tokens=2048)),
    Dialect("kimi-k2-stream-in-choice", "chat", "kimi-k2-0905-preview",
            {"prompt_tokens": 3000, "completion_tokens": 20, "total_tokens": 3020, "cached_tokens": 2048},
            dict(input_tokens=3000, output_tokens=20, cache_read_tokens=2048),
            reply={"usage_in_choice": True}, stream_only=True),
    Dialect("moonshot-v1", "chat", "moonshot-v1-8k",
            {"prompt_tokens": 3000, "completion_tokens": 20, "total_tokens": 3020, "cached_tokens": 2500},
            dict(input_tokens=3000, output_tokens=20, cache_read_tokens=2500)),
    Dialect("qwen-implicit", "chat", "qwen-plus",
            {"prompt_tokens": 3019, "completion_tokens": 104, "total_tokens": 3123,
             "prompt_tokens_details": {"cached_tokens": 2048}},
            dict(input_tokens=3019, output_tokens=104, cache_read_tokens=2048)),
    Dialect("qwen-explicit", "chat", "qwen-plus",
            {"prompt_tokens": 3019, "completion_tokens": 104, "total_tokens": 3123,
             "prompt_tokens_details": {"cached_tokens": 0, "cache_creation": {"ephemeral_5m_input_tokens": 1500},
                                       "cache_creation_input_tokens": 1500, "cache_type": "ephemeral"}},
            dict(input_tokens=3019, output_tokens=104, cache_read_tokens=0, cache_write_tokens=1500)),
    Dialect("qwen-thinking", "chat", "qwen-plus",
            {"prompt_tokens": 20, "completion_tokens": 900, "total_tokens": 920,
             "completion_tokens_details": {"reasoning_tokens": 850}},
            dict(input_tokens=20, output_tokens=900, reasoning_tokens=850)),
    Dialect("glm", "chat", "glm-4.5",
            {"prompt_tokens": 1800, "completion_tokens": 60, "total_tokens": 1860,
             "prompt_tokens_details": {"cached_tokens": 1536}},
            dict(input_tokens=1800, output_tokens=60, cache_read_tokens=1536)),
    Dialect("doubao", "chat", "doubao-seed-1-6-250615",
            {"prompt_tokens": 1800, "completion_tokens": 500, "total_tokens": 2300,
             "prompt_tokens_details": {"cached_tokens": 1024}, "completion_tokens_details": {"reasoning_tokens": 400}},
            dict(input_tokens=1800, output_tokens=500, cache_read_tokens=1024, reasoning_tokens=400)),
    Dialect("minimax-openai", "chat", "minimax-m2",
            {"prompt_tokens": 700, "completion_tokens": 33, "total_tokens": 733,
             "prompt_tokens_details": {"cached_tokens": 512}},
            dict(input_tokens=700, output_tokens=33, cache_read_tokens=512)),
    Dialect("openai-responses", "responses", "gpt-4o",
            {"input_tokens": 1500, "input_tokens_details": {"cached_tokens": 1024}, "output_tokens": 80,
             "output_tokens_details": {"reasoning_tokens": 40}, "total_tokens": 1580},
            dict(input_tokens=1500, output_tokens=80, cache_read_tokens=1024, reasoning_tokens=40)),
    Dialect("anthropic-5m", "anthropic", "claude-sonnet-4-5",
            {"input_tokens": 50, "cache_read_input_tokens": 10000, "cache_creation_input_tokens": 1000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 0}},
            dict(input_tokens=11050, output_tokens=77, cache_read_tokens=10000, cache_write_tokens=1000,
                 cache_write_1h_tokens=0)),
    Dialect("anthropic-1h", "anthropic", "claude-sonnet-4-5",
            {"input_tokens": 50, "cache_read_input_tokens": 10000, "cache_creation_input_tokens": 3000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}},
            dict(input_tokens=13050, output_tokens=77, cache_read_tokens=10000, cache_write_tokens=3000,
                 cache_write_1h_tokens=2000)),
    Dialect("anthropic-gateway-delta-zero", "anthropic", "claude-sonnet-4-5",
            {"input_tokens": 30, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 0},
            dict(input_tokens=930, output_tokens=77, cache_read_tokens=900, cache_write_tokens=0),
            reply={"delta_usage": {"input_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}},
            stream_only=True),
    Dialect("minimax-anthropic", "anthropic", "minimax-m2",
            {"input_tokens": 108, "cache_read_input_tokens": 1024, "cache_creation_input_tokens": 0},
            dict(input_tokens=1132, output_tokens=77, cache_read_tokens=1024, cache_write_tokens=0)),
    Dialect("gemini", "gemini", "gemini-2.5-flash",
            {"promptTokenCount": 5000, "cachedContentTokenCount": 4096, "candidatesTokenCount": 120,
             "thoughtsTokenCount": 380, "totalTokenCount": 5500},
            dict(input_tokens=5000, output_tokens=500, cache_read_tokens=4096, reasoning_tokens=380)),
]
"""Anthropic-route dialects: the server sends ``output_tokens`` = 77 (Reply.output_tokens)."""

DIALECTS += [
    # DashScope's native API (dashscope.Generation.call): its own field names, ``input_tokens`` including the
    # cache (https://help.aliyun.com/en/model-studio/qwen-api-via-dashscope,
    # https://www.alibabacloud.com/help/en/model-studio/context-cache)
    Dialect("qwen-dashscope-implicit", "dashscope", "qwen-plus",
            {"input_tokens": 3019, "output_tokens": 104, "total_tokens": 3123,
             "prompt_tokens_details": {"cached_tokens": 2048}},
            dict(input_tokens=3019, output_tokens=104, cache_read_tokens=2048)),
    Dialect("qwen-dashscope-explicit", "dashscope", "qwen-plus",
            {"input_tokens": 3019, "output_tokens": 104, "total_tokens": 3123,
             "prompt_tokens_details": {"cached_tokens": 0, "cache_creation_input_tokens": 1500,
                                       "cache_type": "ephemeral"}},
            dict(input_tokens=3019, output_tokens=104, cache_read_tokens=0, cache_write_tokens=1500)),
    Dialect("qwen-dashscope-thinking", "dashscope", "qwen-plus",
            {"input_tokens": 20, "output_tokens": 900, "total_tokens": 920,
             "output_tokens_details": {"reasoning_tokens": 850}},
            dict(input_tokens=20, output_tokens=900, reasoning_tokens=850)),
]
BY_NAME = {d.name: d for d in DIALECTS}


@dataclass(frozen=True)
class Path:
    client: str
    """openai, litellm, anthropic, google-genai."""
    route: str
    call: str
    """create, parse, raw, streaming-response, stream-helper (per client)."""
    is_async: bool
    stream: bool

    @property
    def id(self) -> str:
        return f"{self.client}.{self.call}{'-stream' if self.stream else ''}{'-async' if self.is_async else ''}"


def _both(client: str, route: str, call: str, streams: tuple[bool, ...]) -> list[Path]:
    return [Path(client, route, call, a, s) for s in streams for a in (False, True)]


PATHS: list[Path] = [
    *_both("openai", "chat", "create", (False, True)),
    *_both("openai", "chat", "parse", (False,)),
    *_both("openai", "chat", "raw", (False, True)),
    *_both("openai", "chat", "streaming-response", (False, True)),
    *_both("openai", "chat", "stream-helper", (True,)),
    *_both("litellm", "chat", "completion", (False, True)),
    *_both("openai", "responses", "create", (False, True)),
    *_both("openai", "responses", "parse", (False,)),
    *_both("openai", "responses", "raw", (False,)),
    *_both("openai", "responses", "stream-helper", (True,)),
    *_both("anthropic", "anthropic", "create", (False, True)),
    *_both("anthropic", "anthropic", "raw", (False,)),
    *_both("anthropic", "anthropic", "stream-helper", (True,)),
    *_both("anthropic", "anthropic", "beta", (False,)),
    *_both("google-genai", "gemini", "generate", (False, True)),
    *_both("langchain", "chat", "ChatOpenAI", (False, True)),
    *_both("langchain", "chat", "ChatDeepSeek", (False, True)),
    *_both("langchain", "anthropic", "ChatAnthropic", (False, True)),
]
PATHS += [
    *_both("dashscope", "dashscope", "Generation.call", (False, True)),
    *_both("volcengine-ark", "chat", "create", (False, True)),
    *[Path("zai-sdk", "chat", "create", False, s) for s in (False, True)],  # zai-sdk has no asyncio client
]


FULL_DIALECT_CALLS = {("openai", "create"), ("litellm", "completion"), ("openai", "responses-create"),
                      ("anthropic", "create"), ("anthropic", "stream-helper"), ("google-genai", "generate"),
                      ("langchain", "ChatOpenAI"), ("langchain", "ChatAnthropic")}
"""Paths driven with every dialect of their route; the other call paths (parse, raw, streaming-response,
stream helpers, beta) only change how the SDK is entered, so they take a representative subset."""
FULL_DIALECT_CALLS |= {("dashscope", "Generation.call"), ("volcengine-ark", "create"), ("zai-sdk", "create")}
NATIVE_DIALECTS = {"volcengine-ark": ("openai", "doubao"), "zai-sdk": ("openai", "glm")}
"""A provider's own SDK meets its own provider's dialect (and the plain OpenAI one) only: the Ark SDK's usage
model drops the fields it does not declare (DeepSeek's top-level ``prompt_cache_hit_tokens``...), which no
Doubao answer carries."""
REPRESENTATIVE = ("openai", "deepseek-toplevel", "deepseek-nested-reasoner", "qwen-explicit", "kimi-k2-stream-in-choice", "openai-responses",
                  "anthropic-1h", "anthropic-gateway-delta-zero", "gemini")


def combos() -> list[tuple[Path, Dialect]]:
    """Every (path, dialect) pair that makes sense: same route; a stream-only dialect on streamed paths."""
    out = []
    for p in PATHS:
        call = f"responses-{p.call}" if p.route == "responses" else p.call
        full = (p.client, call) in FULL_DIALECT_CALLS
        out += [(p, d) for d in DIALECTS if p.route == d.route and (p.stream or not d.stream_only)
                and (full or d.name in REPRESENTATIVE) and d.name in NATIVE_DIALECTS.get(p.client, (d.name,))]
    return out
