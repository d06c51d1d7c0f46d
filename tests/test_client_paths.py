"""Client paths outside the conformance matrix: embeddings (OpenAI, Azure-shaped, litellm, LangChain,
google-genai, DashScope native, Volcengine Ark), legacy text completions, and token-counting endpoints that
must not be billed. Each is a real client library over real HTTP to the loopback server (tests/llm_server.py);
the oracle is what the server sent and the cost is computed here by hand from the price rows' figures."""

from __future__ import annotations

import asyncio
import os
from decimal import Decimal
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llm_server import Reply  # noqa: E402
from tokprof.profiler import keys, profile, span, uninstrument  # noqa: E402
from tokprof.profiler.accounting import span_cost  # noqa: E402
from tokprof.profiler.providers.as_paid import simulated_bill  # noqa: E402

M = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def _restore():
    yield
    uninstrument()


def _one(run: Any) -> Any:
    llm = run.llm_spans()
    assert len(llm) == 1, [s.name for s in llm]
    return llm[0]


def _embedding_checks(s: Any, tokens: int, model: str, per_million: Decimal, currency: str = "USD") -> None:
    assert s.attributes[keys.LLM_OPERATION] == keys.EMBEDDINGS
    u = s.llm.usage
    assert (u.input_tokens, u.output_tokens) == (tokens, 0)
    assert u.sources == {"input_tokens": "provider", "output_tokens": "provider"}
    assert s.llm.model == model
    cost = span_cost(s, currency)
    assert cost is not None and cost.amount == tokens * per_million / M  # hand: tokens x list price


def test_openai_embeddings_sync_and_async(llm_server: Any) -> None:
    import openai

    llm_server.script(Reply(input_tokens=1234), Reply(input_tokens=56))
    with profile("rag") as run:
        with span("retrieve", kind="retriever"):
            got = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0).embeddings.create(
                model="text-embedding-3-small", input=["alpha", "beta"])
    assert len(got.data) == 2 and len(got.data[0].embedding) == 8  # the caller's result is intact
    s = _one(run)
    (retrieve,) = [x for x in run.spans if x.name == "retrieve"]
    assert s.parent_id == retrieve.span_id
    assert [m["content"] for m in s.llm.messages] == ["alpha", "beta"]
    _embedding_checks(s, 1234, "text-embedding-3-small", Decimal("0.02"))

    async def go() -> None:
        client = openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
        await client.embeddings.create(model="text-embedding-3-large", input="q")
    with profile("rag-async") as run2:
        asyncio.run(go())
    _embedding_checks(_one(run2), 56, "text-embedding-3-large", Decimal("0.13"))


def test_langchain_and_litellm_embeddings(llm_server: Any) -> None:
    import litellm
    from langchain_openai import OpenAIEmbeddings

    llm_server.script(Reply(input_tokens=300), Reply(input_tokens=77))
    with profile("lc") as run:
        OpenAIEmbeddings(model="text-embedding-3-small", base_url=llm_server.openai_url, api_key="t",
                         check_embedding_ctx_length=False).embed_documents(["a", "b"])
    _embedding_checks(_one(run), 300, "text-embedding-3-small", Decimal("0.02"))
    with profile("ll") as run2:
        litellm.embedding(model="openai/text-embedding-3-small", input=["a"], api_base=llm_server.openai_url,
                          api_key="t")
    s = _one(run2)
    assert s.llm.provider == "openai"
    _embedding_checks(s, 77, "text-embedding-3-small", Decimal("0.02"))


def test_dashscope_and_ark_embeddings(llm_server: Any) -> None:
    import dashscope
    from volcenginesdkarkruntime import Ark

    llm_server.script(Reply(input_tokens=4000), Reply(input_tokens=900))
    old = dashscope.base_http_api_url
    dashscope.base_http_api_url = llm_server.dashscope_url
    try:
        with profile("qwen") as run:
            r = dashscope.TextEmbedding.call(model="text-embedding-v4", input=["a", "b"], api_key="t")
    finally:
        dashscope.base_http_api_url = old
    assert r.status_code == 200
    s = _one(run)
    assert s.llm.provider == "alibaba"
    _embedding_checks(s, 4000, "text-embedding-v4", Decimal("0.5"), "CNY")  # usage.total_tokens only
    with profile("doubao") as run2:
        Ark(api_key="t", base_url=llm_server.openai_url).embeddings.create(
            model="doubao-embedding-text-240715", input=["a"])
    _embedding_checks(_one(run2), 900, "doubao-embedding-text-240715", Decimal("0.5"), "CNY")


def test_gemini_embed_content_is_counted_locally_and_count_tokens_is_not_a_call(llm_server: Any) -> None:
    from google import genai
    from google.genai import types

    from tokprof.profiler.providers.tokenizers import tokenizer_for

    client = genai.Client(api_key="t", http_options=types.HttpOptions(base_url=llm_server.url))
    texts = ["hello world", "a second, longer text to embed"]
    with profile("gemini") as run:
        client.models.embed_content(model="gemini-embedding-001", contents=texts)
        client.models.count_tokens(model="gemini-2.5-flash", contents="hi")
    s = _one(run)  # count_tokens is free: no LLM span
    assert len(llm_server.requests) == 2
    u = s.llm.usage
    # the Gemini API sends no usage for embeddings: counted locally, and labelled so
    choice = tokenizer_for("gemini-embedding-001")
    assert u.input_tokens == sum(choice.count(t) for t in texts) > 0
    assert u.sources["input_tokens"] == ("counted" if choice.exact else "estimated")
    cost = span_cost(s, "USD")
    assert cost is not None and cost.amount == u.input_tokens * Decimal("0.15") / M


def test_anthropic_count_tokens_is_not_billed(llm_server: Any) -> None:
    import anthropic

    with profile("count") as run:
        got = anthropic.Anthropic(base_url=llm_server.anthropic_url, api_key="t", max_retries=0) \
            .messages.count_tokens(model="claude-sonnet-4-5", messages=[{"role": "user", "content": "hi"}])
    assert got.input_tokens == 42
    assert run.llm_spans() == []


@pytest.mark.parametrize("stream", [False, True])
def test_openai_legacy_completions(llm_server: Any, stream: bool) -> None:
    import openai

    llm_server.script(Reply(text="four", input_tokens=20, output_tokens=3))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    with profile("legacy") as run:
        got = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="2+2=", stream=stream)
        chunks = list(got) if stream else None
    if stream:
        assert all(c.choices for c in chunks)  # the usage-only chunk tokprof asked for stays hidden
        assert "".join(c.choices[0].text for c in chunks) == "four"
        assert llm_server.requests[-1].body["stream_options"] == {"include_usage": True}
    s = _one(run)
    assert keys.LLM_OPERATION not in (s.attributes or {})  # a completion, not an embedding
    assert s.llm.messages == [{"role": "user", "content": "2+2="}]
    assert s.llm.output == {"role": "assistant", "content": "four"}
    u = s.llm.usage
    assert (u.input_tokens, u.output_tokens) == (20, 3)
    assert set(u.sources.values()) == {"provider"}
    cost = span_cost(s, "USD")
    assert cost is not None and cost.amount == (20 * Decimal("1.5") + 3 * Decimal("2")) / M


def test_repeated_embeddings_are_never_simulated_as_cache_hits(llm_server: Any) -> None:
    """A RAG agent embeds the same long query twice: embedding endpoints have no prompt cache, so the
    simulator bills both calls in full (a chat call would be a hit)."""
    import openai

    long_text = "the same retrieval query, long enough to pass any cache minimum. " * 200
    llm_server.script(Reply(input_tokens=2600), Reply(input_tokens=2600))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    with profile("rag") as run:
        for _ in range(2):
            client.embeddings.create(model="text-embedding-3-small", input=long_text)
    bill = simulated_bill(run, "USD")
    assert [c.cache_read_tokens for c in bill.calls] == [0, 0]
    assert bill.total == 2 * 2600 * Decimal("0.02") / M


def test_embeddings_in_optimizers_and_report(llm_server: Any) -> None:
    """Embedding calls of different queries under one call path are not a "prompt prefix break"; the
    compression passes leave the embedded data alone; a repeated embedding is a response-cache hit (with a
    low risk: no sampling); the report prices them by model."""
    import openai
    import tokprof
    from tokprof.reports.json import report_dict
    from tokprof.reports.model import build_report

    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    llm_server.script(*[Reply(input_tokens=2000) for _ in range(4)])
    doc = '{"policy":   "refunds within 30 days",   "note": "x"}\n' * 40
    with profile("rag") as run:
        for i in range(3):
            with span("retrieve", kind="retriever"):
                client.embeddings.create(model="text-embedding-3-small", input=[f"query {i} " * 200, doc, doc])
        with span("retrieve", kind="retriever"):
            client.embeddings.create(model="text-embedding-3-small", input=["query 2 " * 200, doc, doc])
    report = report_dict(build_report(run))
    assert "prefix-break" not in [d["kind"] for d in report["diagnostics"]]
    (by_model,) = report["attribution"]["by_model"]
    assert (by_model["model"], by_model["calls"], by_model["input_tokens"]) == ("text-embedding-3-small", 4, 8000)
    assert Decimal(by_model["cost"]) == 8000 * Decimal("0.02") / M
    new, ledger = tokprof.optimize(run, ["minify", "dedupe", "response-cache", "prompt-cache"])
    rows = [(r.pass_name, r.span_id) for r in ledger.rows]
    assert all(name == "response-cache" for name, _ in rows), rows  # nothing rewritten, nothing "cached"
    (row,) = ledger.rows
    assert row.span_id == run.llm_spans()[3].span_id and row.risk.startswith("low")
    assert row.cost_before == 2000 * Decimal("0.02") / M


def test_anthropic_on_bedrock_and_vertex(llm_server: Any) -> None:
    """The Anthropic SDK's Bedrock and Vertex clients (constructible offline) share the patched Messages
    resource: recorded with the model from the URL the SDK built, usage as the server sent it."""
    import anthropic

    msgs = [{"role": "user", "content": "hi"}]
    clients = [anthropic.AnthropicBedrock(base_url=llm_server.url, aws_access_key="a", aws_secret_key="b",
                                          aws_region="us-east-1"),
               anthropic.AnthropicVertex(base_url=llm_server.url, region="us-east5", project_id="p",
                                         access_token="t")]
    for client in clients:
        llm_server.script(Reply(input_tokens=120, output_tokens=9))
        with profile("cloud") as run:
            client.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=msgs)
        s = _one(run)
        u = s.llm.usage
        assert (u.input_tokens, u.output_tokens) == (120, 9) and set(u.sources.values()) == {"provider"}
        cost = span_cost(s, "USD")
        assert cost is not None and cost.amount == (120 * 3 + 9 * 15) / M
    assert llm_server.requests[0].path.startswith("/model/") and llm_server.requests[1].path.endswith(":rawPredict")


def test_ark_responses_and_zai_embeddings(llm_server: Any) -> None:
    import zai
    from volcenginesdkarkruntime import Ark

    llm_server.script(Reply(input_tokens=500, cached_tokens=100, output_tokens=40))
    with profile("doubao") as run:
        Ark(api_key="t", base_url=llm_server.openai_url).responses.create(model="doubao-seed-1.6", input="hi")
    s = _one(run)
    assert s.llm.provider == "bytedance"
    u = s.llm.usage
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens) == (500, 100, 40)
    cost = span_cost(s, "CNY")  # 0.8 / 0.16 (cache read) / 8 CNY per 1M
    assert cost is not None and cost.amount == (400 * Decimal("0.8") + 100 * Decimal("0.16") + 40 * 8) / M
    llm_server.script(Reply(input_tokens=64))
    with profile("glm") as run2:
        zai.ZaiClient(api_key="a.b", base_url=llm_server.openai_url).embeddings.create(model="embedding-3", input=["a"])
    s2 = _one(run2)
    assert s2.llm.provider == "zhipu"
    _embedding_checks(s2, 64, "embedding-3", Decimal("0.5"), "CNY")


@pytest.mark.parametrize("is_async", [False, True])
def test_dashscope_multimodal_conversation(llm_server: Any, is_async: bool) -> None:
    import dashscope

    llm_server.script(Reply(text="a cat", input_tokens=1300, output_tokens=4))
    messages = [{"role": "user", "content": [{"image": "https://example.com/cat.png"}, {"text": "what is it?"}]}]
    old = dashscope.base_http_api_url
    dashscope.base_http_api_url = llm_server.dashscope_url
    try:
        with profile("vl") as run:
            if is_async:
                asyncio.run(dashscope.AioMultiModalConversation.call(model="qwen-vl-plus", messages=messages,
                                                                      api_key="t"))
            else:
                dashscope.MultiModalConversation.call(model="qwen-vl-plus", messages=messages, api_key="t")
    finally:
        dashscope.base_http_api_url = old
    s = _one(run)
    assert s.llm.provider == "alibaba" and s.llm.model == "qwen-vl-plus"
    assert s.llm.output == {"role": "assistant", "content": "a cat"}
    assert s.llm.messages[0]["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                                            {"type": "text", "text": "what is it?"}]
    u = s.llm.usage
    assert (u.input_tokens, u.output_tokens) == (1300, 4) and set(u.sources.values()) == {"provider"}
    # qwen-vl-plus CNY row (estimated: third-party figures): input 0.8, output 2 per 1M tokens
    # (1300 * 0.8 + 4 * 2) / 1M = 0.001048 CNY
    cost = span_cost(s, "CNY")
    assert cost is not None and cost.amount == Decimal("0.001048") and cost.source == "estimated"


def test_async_embedding_wrappers(llm_server: Any) -> None:
    import litellm
    from langchain_openai import OpenAIEmbeddings

    llm_server.script(Reply(input_tokens=11), Reply(input_tokens=13))

    async def go() -> None:
        await litellm.aembedding(model="openai/text-embedding-3-small", input=["a"], api_base=llm_server.openai_url,
                                 api_key="t")
        await OpenAIEmbeddings(model="text-embedding-3-small", base_url=llm_server.openai_url, api_key="t",
                               check_embedding_ctx_length=False).aembed_query("b")
    with profile("async-rag") as run:
        asyncio.run(go())
    spans = run.llm_spans()
    assert [s.llm.usage.input_tokens for s in spans] == [11, 13]
    for s, n in zip(spans, (11, 13)):
        _embedding_checks(s, n, "text-embedding-3-small", Decimal("0.02"))


def test_embedding_span_exports_as_otel_embeddings_operation(llm_server: Any) -> None:
    """OTLP export names the operation as OTel's GenAI conventions do (``embeddings``), not ``chat``."""
    import openai

    from tokprof.profiler.interchange.otlp_export import export_span

    llm_server.script(Reply(input_tokens=99))
    with profile("rag") as run:
        openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0).embeddings.create(
            model="text-embedding-3-small", input="q")
    s = _one(run)
    attrs = {a["key"]: a["value"] for a in export_span(s, "0" * 32)["attributes"]}
    assert attrs["gen_ai.operation.name"] == {"stringValue": "embeddings"}
    assert attrs["gen_ai.request.model"] == {"stringValue": "text-embedding-3-small"}


def test_litellm_embedding_through_the_sdk_is_recorded_once(llm_server: Any) -> None:
    """With ``encoding_format`` litellm goes through the OpenAI SDK's ``embeddings.create``: one span (litellm's),
    and the SDK's usage is not left behind on the stash."""
    import litellm

    from tokprof.profiler.integrations import sdk_state

    llm_server.script(Reply(input_tokens=77))
    before = len(sdk_state._sdk_usage)
    with profile("ll") as run:
        litellm.embedding(model="openai/text-embedding-3-small", input=["a"], api_base=llm_server.openai_url,
                          api_key="t", encoding_format="float")
    s = _one(run)
    assert s.name == "litellm.embedding"
    _embedding_checks(s, 77, "text-embedding-3-small", Decimal("0.02"))
    assert len(sdk_state._sdk_usage) == before


def test_vertex_embedding_statistics_are_provider_usage() -> None:
    """Vertex AI's embed response carries ``statistics.token_count`` per embedding (a float in google-genai's
    model): their sum is the provider's input count; the Gemini API's response (no statistics) is counted."""
    from google.genai import types

    from tokprof.profiler.integrations.embeddings import GeminiEmbedAdapter

    adapter = GeminiEmbedAdapter()
    vertex = types.EmbedContentResponse.model_validate({"embeddings": [
        {"values": [0.1], "statistics": {"token_count": 7, "truncated": False}},
        {"values": [0.2], "statistics": {"token_count": 5}}]})
    call = adapter.request({"model": "gemini-embedding-001", "contents": ["a b c", "d e"]})
    adapter.fill(call, vertex)
    assert (call.usage.input_tokens, call.usage.output_tokens) == (12, 0)
    assert set(call.usage.sources.values()) == {"provider"}
    gemini_api = types.EmbedContentResponse.model_validate({"embeddings": [{"values": [0.1]}, {"values": [0.2]}]})
    call = adapter.request({"model": "gemini-embedding-001", "contents": ["a b c", "d e"]})
    adapter.fill(call, gemini_api)
    assert call.usage.sources["input_tokens"] in ("counted", "estimated") and call.usage.input_tokens > 0
