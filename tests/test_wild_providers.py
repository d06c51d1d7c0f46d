"""Provider usage blocks tokprof had not read, through the real ``openai`` client over HTTP to the loopback
server (tests/llm_server.py) answering in each provider's documented format.

Oracles are the providers' own pages: xAI's reasoning worked example (https://docs.x.ai/docs/guides/reasoning:
``completion_tokens`` 31, ``reasoning_tokens`` 736, ``prompt_tokens`` 2341, ``total_tokens`` 3108, i.e.
reasoning counted beside the completion), OpenRouter's usage-accounting example
(https://openrouter.ai/docs/use-cases/usage-accounting: ``cost``, ``cache_write_tokens``, ``is_byok``,
``cost_details.upstream_inference_cost``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

from llm_server import Reply
from tokprof.profiler import profile, uninstrument
from tokprof.profiler.integrations import usage_dialects as ud
from tokprof.profiler.interchange.usage_dialects import read_usage

MESSAGES = [{"role": "user", "content": "What is 101*3?"}]

XAI_USAGE = {"prompt_tokens": 2341, "completion_tokens": 31, "total_tokens": 3108,
             "prompt_tokens_details": {"text_tokens": 2341, "audio_tokens": 0, "image_tokens": 0,
                                       "cached_tokens": 448},
             "completion_tokens_details": {"reasoning_tokens": 736, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
             "num_sources_used": 0}
OPENROUTER_USAGE = {"completion_tokens": 2, "completion_tokens_details": {"reasoning_tokens": 0}, "cost": 0.95,
                    "cost_details": {"upstream_inference_cost": 19}, "prompt_tokens": 194,
                    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100, "audio_tokens": 0},
                    "total_tokens": 196}
OPENROUTER_BYOK = {**OPENROUTER_USAGE, "cost": 0.0001, "is_byok": True,
                   "cost_details": {"upstream_inference_cost": 0.0019}}


@pytest.fixture(autouse=True)
def _clean():
    yield
    uninstrument("openai")


def _call(llm_server: Any, usage: dict[str, Any], model: str, stream: bool):
    llm_server.script(Reply(text="303", usage=usage))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)
    with profile("p", instrument=["openai"]) as run:
        if stream:
            chunks = list(client.chat.completions.create(model=model, messages=MESSAGES, stream=True))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "303"
        else:
            assert client.chat.completions.create(model=model, messages=MESSAGES).choices[0].message.content == "303"
    (span,) = run.llm_spans()
    return span.llm


@pytest.mark.parametrize("stream", [False, True])
def test_xai_reasoning_beside_completion_is_output(llm_server, stream):
    call = _call(llm_server, XAI_USAGE, "grok-3-mini", stream)
    u = call.usage
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (2341, 448, 31 + 736, 736)
    assert u.source("output_tokens") == "provider"
    assert u.input_tokens + u.output_tokens == XAI_USAGE["total_tokens"]


@pytest.mark.parametrize("stream", [False, True])
def test_openrouter_cost_is_the_recorded_cost_and_cache_writes_are_read(llm_server, stream):
    call = _call(llm_server, OPENROUTER_USAGE, "anthropic/claude-sonnet-4", stream)
    u = call.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (194, 2, 0, 100)
    assert call.cost is not None and call.cost.amount == Decimal("0.95") and call.cost.source == "recorded"
    assert call.cost.currency == "USD"


def test_openrouter_byok_adds_the_upstream_charge(llm_server):
    call = _call(llm_server, OPENROUTER_BYOK, "openai/gpt-4o", False)
    assert call.cost.amount == Decimal("0.0001") + Decimal("0.0019")


def test_openai_block_is_unchanged_by_the_reasoning_rule():
    """OpenAI counts reasoning inside completion_tokens (total = prompt + completion): nothing added."""
    openai_usage = {"prompt_tokens": 20, "completion_tokens": 900, "total_tokens": 920,
                    "completion_tokens_details": {"reasoning_tokens": 850}}
    assert ud.chat_usage(openai_usage).output_tokens == 900
    assert ud.reported_cost(openai_usage) is None
    # a gateway's 0 cost is not "free": no cost recorded
    assert ud.reported_cost({**OPENROUTER_USAGE, "cost": 0}) is None


def test_recorded_runs_read_xai_the_same_way():
    """Imported files (τ²-bench raw_data, mini-swe-agent extra.response...) read through the same rule."""
    r = read_usage(XAI_USAGE)
    assert r is not None and (r.output, r.reasoning, r.input) == (767, 736, 2341)


BEDROCK = {"inputTokens": 30, "outputTokens": 50, "totalTokens": 1080, "cacheReadInputTokens": 800,
           "cacheWriteInputTokens": 200}


def test_bedrock_converse_camelcase_input_excludes_the_cache():
    """AWS TokenUsage fields; the cache is added once (as LiteLLM's Converse transform does)."""
    u = ud.any_usage(BEDROCK)
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (1030, 50, 800, 200)
    assert u.source("input_tokens") == "provider"
    # a block whose total shows the input already included the cache is not added to twice
    inclusive = {**BEDROCK, "inputTokens": 1030}
    assert ud.any_usage(inclusive).input_tokens == 1030
    r = read_usage(BEDROCK)
    assert r is not None and (r.input, r.output, r.cache_read, r.cache_write) == (1030, 50, 800, 200)


def test_litellm_bedrock_converse_normalisation_is_read_exactly():
    """LiteLLM's own Converse usage transform (the object its completion() returns), read by tokprof."""
    from litellm.llms.bedrock.chat.converse_transformation import AmazonConverseConfig

    from tokprof.profiler.integrations.openai import chat_usage

    u = chat_usage(AmazonConverseConfig().transform_usage(dict(BEDROCK)))
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens) == (1030, 50, 800, 200)


def _langchain_usage(llm_server: Any, reply: Reply, model: str):
    """ChatOpenAI (real langchain-openai) over HTTP, recorded from LangChain's own usage_metadata alone."""
    from langchain_openai import ChatOpenAI

    llm_server.script(reply)
    chat = ChatOpenAI(model=model, base_url=llm_server.openai_url, api_key="test", max_retries=0)
    with profile("lc", instrument=False) as run:
        msg = chat.invoke("What is 101*3?")
    (span,) = run.llm_spans()
    return msg.usage_metadata, span.llm.usage


def test_langchain_usage_metadata_of_xai_counts_reasoning_as_output(llm_server):
    meta, u = _langchain_usage(llm_server, Reply(text="303", usage=XAI_USAGE), "grok-3-mini")
    assert (meta["output_tokens"], meta["total_tokens"]) == (31, 3108)  # as langchain-openai copied them
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (2341, 448, 767, 736)


def test_langchain_usage_metadata_with_a_service_tier_prefix(llm_server):
    """A flex-tier response: langchain-openai writes ``flex_cache_read`` / ``flex_reasoning``."""
    usage = {"prompt_tokens": 3000, "completion_tokens": 400, "total_tokens": 3400,
             "prompt_tokens_details": {"cached_tokens": 2048},
             "completion_tokens_details": {"reasoning_tokens": 256}}
    meta, u = _langchain_usage(llm_server, Reply(usage=usage, response_fields={"service_tier": "flex"}), "o3")
    assert meta["input_token_details"].get("flex_cache_read") == 2048
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens, u.reasoning_tokens) == (3000, 2048, 400, 256)


def test_groq_stream_usage_in_x_groq_is_read_when_usage_is_refused(llm_server):
    """Groq's last stream chunk carries ``x_groq.usage``: read when the caller refused ``include_usage``
    (tokprof then adds nothing to the request), so the call keeps provider usage instead of an estimate."""
    usage = {"queue_time": 0.04, "prompt_tokens": 45, "prompt_time": 0.002, "completion_tokens": 3,
             "completion_time": 0.01, "total_tokens": 48, "total_time": 0.012}
    llm_server.script(Reply(text="Hello!", usage=usage, x_groq_usage=True))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)
    with profile("groq", instrument=["openai"]) as run:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True,
            stream_options={"include_usage": False}) if c.choices)
    assert text == "Hello!"
    assert llm_server.requests[-1].body["stream_options"] == {"include_usage": False}  # the caller's choice
    (span,) = run.llm_spans()
    u = span.llm.usage
    assert (u.input_tokens, u.output_tokens) == (45, 3) and u.source("input_tokens") == "provider"


def test_input_tokens_block_with_openai_cache_details_keeps_the_cache_inside():
    """DashScope-native-style block (input_tokens + prompt_tokens_details.cached_tokens, no Anthropic cache
    fields): the cached part is read and stays inside the input, never added on top."""
    u = ud.any_usage({"input_tokens": 3019, "output_tokens": 104, "total_tokens": 3123,
                      "prompt_tokens_details": {"cached_tokens": 2048}})
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens) == (3019, 104, 2048)
    # an Anthropic block is still read as Anthropic (input excluding the cache)
    a = ud.any_usage({"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2000})
    assert (a.input_tokens, a.cache_read_tokens) == (2010, 2000)


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_path_reads_xai_and_openrouter_blocks(llm_server, stream, monkeypatch):
    """litellm.completion (real litellm, OpenAI-compatible route to the loopback server): litellm's own usage
    normalisation keeps xAI's reasoning beside the completion and OpenRouter's cost; tokprof reads both."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    def run_one(usage: dict[str, Any], model: str):
        llm_server.script(Reply(text="303", usage=usage))
        with profile("ll") as run:
            out = litellm.completion(model=f"openai/{model}", messages=MESSAGES, api_base=llm_server.openai_url,
                                     api_key="test", stream=stream)
            if stream:
                list(out)
        (span,) = run.llm_spans()
        return span.llm

    x = run_one(XAI_USAGE, "grok-3-mini")
    assert (x.usage.input_tokens, x.usage.output_tokens, x.usage.reasoning_tokens) == (2341, 767, 736)
    o = run_one(OPENROUTER_USAGE, "anthropic/claude-sonnet-4")
    assert (o.usage.input_tokens, o.usage.output_tokens, o.usage.cache_write_tokens) == (194, 2, 100)
    assert o.cost is not None and o.cost.amount == Decimal("0.95")
