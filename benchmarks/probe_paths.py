"""Probe: the client call paths an agent developer commonly uses, each driven inside ``tokprof.profile()``
by the real client library over real HTTP against the loopback server (tests/llm_server.py), and what
tokprof recorded (calls / input / output / cached / cost) next to what the server sent.

Run: ``python benchmarks/probe_paths.py`` (rows of benchmarks/probe_paths_http.py included). A row is ``ok`` when the recorded calls, input and output tokens
equal what the server sent (a token-counting endpoint must record no call); ``MISS`` otherwise; ``ERR`` when
the client itself failed. Nothing touches the network.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from llm_server import LLMServer, Reply  # noqa: E402
from probe_paths_http import HTTP_PATHS, NotApplicable  # noqa: E402
from tokprof.profiler import keys, profile  # noqa: E402
from tokprof.profiler.accounting import span_cost  # noqa: E402

IN, OUT = 42, 7
"""What the server reports for every call (``Reply`` defaults)."""
MSG = [{"role": "user", "content": "hi"}]


def _openai(s: LLMServer, cls: str = "OpenAI") -> Any:
    import openai
    return getattr(openai, cls)(base_url=s.openai_url, api_key="test", max_retries=0)


def _azure(s: LLMServer, is_async: bool) -> Any:
    import openai
    cls = openai.AsyncAzureOpenAI if is_async else openai.AzureOpenAI
    return cls(azure_endpoint=s.url, api_key="test", api_version="2024-10-21", max_retries=0)


def _anthropic(s: LLMServer, cls: str = "Anthropic") -> Any:
    import anthropic
    return getattr(anthropic, cls)(base_url=s.anthropic_url, api_key="test", max_retries=0)


def _genai(s: LLMServer) -> Any:
    from google import genai
    from google.genai import types
    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=s.url))


def _run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


# ---- the paths ------------------------------------------------------------------------------------
def oa_embed(s: LLMServer) -> None:
    _openai(s).embeddings.create(model="text-embedding-3-small", input=["a", "b"])


def oa_embed_async(s: LLMServer) -> None:
    _run(_openai(s, "AsyncOpenAI").embeddings.create(model="text-embedding-3-small", input="a"))


def oa_legacy(s: LLMServer) -> None:
    _openai(s).completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")


def oa_legacy_stream(s: LLMServer) -> None:
    list(_openai(s).completions.create(model="gpt-3.5-turbo-instruct", prompt="hi", stream=True))


def oa_chat_stream_helper_async(s: LLMServer) -> None:
    async def go() -> None:
        async with _openai(s, "AsyncOpenAI").chat.completions.stream(model="gpt-4o-mini", messages=MSG) as st:
            async for _ in st:
                pass
    _run(go())


def oa_streaming_response(s: LLMServer) -> None:
    with _openai(s).chat.completions.with_streaming_response.create(model="gpt-4o-mini", messages=MSG) as r:
        r.parse()


def oa_azure(s: LLMServer) -> None:
    _azure(s, False).chat.completions.create(model="gpt-4o-mini", messages=MSG)


def oa_azure_async(s: LLMServer) -> None:
    _run(_azure(s, True).chat.completions.create(model="gpt-4o-mini", messages=MSG))


def oa_with_options(s: LLMServer) -> None:
    _openai(s).with_options(timeout=5).chat.completions.create(model="gpt-4o-mini", messages=MSG)


def oa_responses_stream_async(s: LLMServer) -> None:
    async def go() -> None:
        async for _ in await _openai(s, "AsyncOpenAI").responses.create(model="gpt-4o-mini", input="hi", stream=True):
            pass
    _run(go())


def an_stream_async(s: LLMServer) -> None:
    async def go() -> None:
        async with _anthropic(s, "AsyncAnthropic").messages.stream(
                model="claude-sonnet-4-5", max_tokens=50, messages=MSG) as st:
            await st.get_final_message()
    _run(go())


def an_count_tokens(s: LLMServer) -> None:
    _anthropic(s).messages.count_tokens(model="claude-sonnet-4-5", messages=MSG)


def an_bedrock(s: LLMServer) -> None:
    import anthropic
    c = anthropic.AnthropicBedrock(base_url=s.url, aws_access_key="a", aws_secret_key="b", aws_region="us-east-1")
    c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG)


def an_vertex(s: LLMServer) -> None:
    import anthropic
    c = anthropic.AnthropicVertex(base_url=s.url, region="us-east5", project_id="p", access_token="t")
    c.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=MSG)


def g_stream_async(s: LLMServer) -> None:
    async def go() -> None:
        client = _genai(s)
        async for _ in await client.aio.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"):
            pass
    _run(go())


def g_chat(s: LLMServer) -> None:
    client = _genai(s)  # kept: a collected client closes its HTTP session
    client.chats.create(model="gemini-2.5-flash").send_message("hi")


def g_embed(s: LLMServer) -> None:
    client = _genai(s)
    client.models.embed_content(model="gemini-embedding-001", contents=["hello world", "second text"])


def g_count(s: LLMServer) -> None:
    client = _genai(s)
    client.models.count_tokens(model="gemini-2.5-flash", contents="hi")


def ll_acompletion_stream(s: LLMServer) -> None:
    import litellm

    async def go() -> None:
        async for _ in await litellm.acompletion(model="openai/gpt-4o-mini", messages=MSG, stream=True,
                                                 api_base=s.openai_url, api_key="test"):
            pass
    _run(go())


def ll_embedding(s: LLMServer) -> None:
    import litellm
    litellm.embedding(model="openai/text-embedding-3-small", input=["a", "b"], api_base=s.openai_url, api_key="test")


def ll_router(s: LLMServer) -> None:
    import litellm
    r = litellm.Router(model_list=[{"model_name": "fast", "litellm_params": {
        "model": "openai/gpt-4o-mini", "api_base": s.openai_url, "api_key": "test"}}])
    r.completion(model="fast", messages=MSG)


def lc_responses(s: LLMServer) -> None:
    from langchain_openai import ChatOpenAI
    ChatOpenAI(model="gpt-4o-mini", base_url=s.openai_url, api_key="test", use_responses_api=True).invoke("hi")


def lc_structured(s: LLMServer) -> None:
    from langchain_openai import ChatOpenAI
    import pydantic

    class Out(pydantic.BaseModel):
        a: int
    s.script(Reply(text='{"a": 5}'))
    ChatOpenAI(model="gpt-4o-mini", base_url=s.openai_url, api_key="test").with_structured_output(
        Out, method="json_schema").invoke("hi")


def lc_batch(s: LLMServer) -> None:
    from langchain_openai import ChatOpenAI
    ChatOpenAI(model="gpt-4o-mini", base_url=s.openai_url, api_key="test").batch(["a", "b"])


def lc_abatch(s: LLMServer) -> None:
    from langchain_openai import ChatOpenAI
    _run(ChatOpenAI(model="gpt-4o-mini", base_url=s.openai_url, api_key="test").abatch(["a", "b"]))


def lc_embeddings(s: LLMServer) -> None:
    from langchain_openai import OpenAIEmbeddings
    OpenAIEmbeddings(model="text-embedding-3-small", base_url=s.openai_url, api_key="test",
                     check_embedding_ctx_length=False).embed_documents(["a", "b"])


def lg_react_stream(s: LLMServer) -> None:
    from langchain_openai import ChatOpenAI
    from langgraph.prebuilt import create_react_agent
    agent = create_react_agent(ChatOpenAI(model="gpt-4o-mini", base_url=s.openai_url, api_key="test"), tools=[])
    for _ in agent.stream({"messages": [("user", "hi")]}):
        pass


def ag_run_streamed(s: LLMServer) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    set_tracing_disabled(True)
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=_openai(s, "AsyncOpenAI"))

    async def go() -> None:
        r = Runner.run_streamed(Agent(name="a", model=model), "hi")
        async for _ in r.stream_events():
            pass
    _run(go())


def ds_multimodal(s: LLMServer) -> None:
    import dashscope
    dashscope.base_http_api_url = s.dashscope_url
    dashscope.MultiModalConversation.call(model="qwen-vl-plus", api_key="test",
                                          messages=[{"role": "user", "content": [{"text": "hi"}]}])


def ds_embed(s: LLMServer) -> None:
    import dashscope
    dashscope.base_http_api_url = s.dashscope_url
    dashscope.TextEmbedding.call(model="text-embedding-v4", input=["a", "b"], api_key="test")


def zai_async(s: LLMServer) -> None:
    import zai
    cls = getattr(zai, "AsyncZaiClient", None)
    if cls is None:
        raise NotApplicable("zai-sdk has no async client")
    _run(cls(api_key="a.b", base_url=s.openai_url).chat.completions.create(model="glm-4.6", messages=MSG))


def ark_responses(s: LLMServer) -> None:
    from volcenginesdkarkruntime import Ark
    Ark(api_key="test", base_url=s.openai_url).responses.create(model="doubao-seed-1-6-250615", input="hi")


def ark_embed(s: LLMServer) -> None:
    from volcenginesdkarkruntime import Ark
    Ark(api_key="test", base_url=s.openai_url).embeddings.create(model="doubao-embedding-text-240715", input=["a"])


def zai_embed(s: LLMServer) -> None:
    import zai
    zai.ZaiClient(api_key="a.b", base_url=s.openai_url).embeddings.create(model="embedding-3", input=["a"])


def oa_azure_embed(s: LLMServer) -> None:
    _azure(s, False).embeddings.create(model="text-embedding-3-small", input="a")


def lc_aembed(s: LLMServer) -> None:
    from langchain_openai import OpenAIEmbeddings
    _run(OpenAIEmbeddings(model="text-embedding-3-small", base_url=s.openai_url, api_key="test",
                          check_embedding_ctx_length=False).aembed_query("a"))


def ll_aembedding(s: LLMServer) -> None:
    import litellm
    _run(litellm.aembedding(model="openai/text-embedding-3-small", input=["a"], api_base=s.openai_url,
                            api_key="test"))


def ll_router_embedding(s: LLMServer) -> None:
    import litellm
    r = litellm.Router(model_list=[{"model_name": "emb", "litellm_params": {
        "model": "openai/text-embedding-3-small", "api_base": s.openai_url, "api_key": "test"}}])
    r.embedding(model="emb", input=["a"])


PATHS: list[tuple[str, Callable[[LLMServer], None], int, int, int]] = [
    # name, driver, calls expected, input expected per call x calls, output expected
    ("openai embeddings.create", oa_embed, 1, IN, 0),
    ("openai async embeddings.create", oa_embed_async, 1, IN, 0),
    ("openai completions.create (legacy)", oa_legacy, 1, IN, OUT),
    ("openai completions.create stream", oa_legacy_stream, 1, IN, OUT),
    ("openai async chat.completions.stream", oa_chat_stream_helper_async, 1, IN, OUT),
    ("openai with_streaming_response", oa_streaming_response, 1, IN, OUT),
    ("AzureOpenAI chat", oa_azure, 1, IN, OUT),
    ("AsyncAzureOpenAI chat", oa_azure_async, 1, IN, OUT),
    ("openai with_options(...)", oa_with_options, 1, IN, OUT),
    ("openai async responses stream", oa_responses_stream_async, 1, IN, OUT),
    ("anthropic async messages.stream", an_stream_async, 1, IN, OUT),
    ("anthropic count_tokens (no call)", an_count_tokens, 0, 0, 0),
    ("AnthropicBedrock messages", an_bedrock, 1, IN, OUT),
    ("AnthropicVertex messages", an_vertex, 1, IN, OUT),
    ("genai aio generate_content_stream", g_stream_async, 1, IN, OUT),
    ("genai chats.send_message", g_chat, 1, IN, OUT),
    ("genai models.embed_content", g_embed, 1, -1, 0),
    ("genai count_tokens (no call)", g_count, 0, 0, 0),
    ("litellm acompletion stream", ll_acompletion_stream, 1, IN, OUT),
    ("litellm.embedding", ll_embedding, 1, IN, 0),
    ("litellm.Router completion", ll_router, 1, IN, OUT),
    ("langchain ChatOpenAI responses api", lc_responses, 1, IN, OUT),
    ("langchain with_structured_output", lc_structured, 1, IN, OUT),
    ("langchain batch x2", lc_batch, 2, 2 * IN, 2 * OUT),
    ("langchain abatch x2", lc_abatch, 2, 2 * IN, 2 * OUT),
    ("langchain OpenAIEmbeddings", lc_embeddings, 1, IN, 0),
    ("langgraph react agent .stream", lg_react_stream, 1, IN, OUT),
    ("openai-agents run_streamed", ag_run_streamed, 1, IN, OUT),
    ("dashscope MultiModalConversation", ds_multimodal, 1, IN, OUT),
    ("dashscope TextEmbedding", ds_embed, 1, IN, 0),
    ("zai-sdk async client", zai_async, 1, IN, OUT),
    ("ark responses.create", ark_responses, 1, IN, OUT),
    ("ark embeddings.create", ark_embed, 1, IN, 0),
    ("zai-sdk embeddings.create", zai_embed, 1, IN, 0),
    ("AzureOpenAI embeddings.create", oa_azure_embed, 1, IN, 0),
    ("langchain OpenAIEmbeddings.aembed_query", lc_aembed, 1, IN, 0),
    ("litellm.aembedding", ll_aembedding, 1, IN, 0),
    ("litellm.Router embedding", ll_router_embedding, 1, IN, 0),
]
"""An expected input of -1: the provider sends no usage (Gemini API embeddings); any counted input > 0 is ok."""
PATHS += HTTP_PATHS  # client libraries without an SDK patch, and libraries built on the patched SDKs


def probe(name: str, fn: Callable[[LLMServer], None], server: LLMServer) -> dict[str, Any]:
    """Drive one path; the recorded totals and the verdict."""
    server.reset()
    error = None
    with profile("probe") as run:
        try:
            fn(server)
        except NotApplicable as exc:
            error = f"n/a: {exc}"
        except Exception as exc:  # the client failed: reported, not raised
            error = f"{type(exc).__name__}: {str(exc)[:60]}"
    not_sent = getattr(keys, "NOT_SENT", "llm.not_sent")  # the probe also runs against older code (before tables)
    refused = [s for s in run.llm_spans() if (s.attributes or {}).get(not_sent)]
    llm = [s for s in run.llm_spans() if s not in refused]  # a call refused before sending is not a call
    usage = [s.llm.usage for s in llm]
    costs = [span_cost(s, "USD") for s in llm]
    # one unpriced call makes the total unknown (never shown as 0)
    cost = None if any(c is None or c.amount is None for c in costs) else \
        sum((c.amount for c in costs if c is not None and c.amount is not None), start=Decimal(0))
    return {"calls": len(llm), "input": sum(u.input_tokens or 0 for u in usage),
            "output": sum(u.output_tokens or 0 for u in usage),
            "cached": sum(u.cache_read_tokens or 0 for u in usage),
            "sources": sorted({v for u in usage for v in u.sources.values()}), "cost": cost,
            "kinds": sorted({str((s.attributes or {}).get("llm.kind", "chat")) for s in llm}),
            "http": len(server.requests), "error": error, "refused": len(refused)}


def _money(amount: Decimal | None) -> str:
    return "unknown" if amount is None else f"{float(amount):.8f}"


def main() -> int:
    logging.getLogger("tokprof").setLevel(logging.ERROR)
    bad = na = 0
    print("| path | verdict | calls (want) | input (want) | output (want) | cached | cost USD | sources | http |")
    print("|---|---|---|---|---|---|---|---|---|")
    with LLMServer() as server:
        for name, fn, calls, want_in, want_out in PATHS:
            r = probe(name, fn, server)
            in_ok = r["input"] > 0 if want_in == -1 else r["input"] == want_in
            ok = r["error"] is None and r["calls"] == calls and in_ok and r["output"] == want_out
            verdict = "ok" if ok else "n/a" if str(r["error"]).startswith("n/a") else "ERR" if r["error"] else "MISS"
            na += verdict == "n/a"
            bad += verdict in ("ERR", "MISS")
            want = "counted>0" if want_in == -1 else want_in
            print(f"| {name} | {verdict} | {r['calls']} ({calls}) | {r['input']} ({want}) | {r['output']} ({want_out})"
                  f" | {r['cached']} | {_money(r['cost'])} | {','.join(r['sources'])} | {r['http']} |"
                  + (f" {r['error']}" if r['error'] else "")
                  + (f" (+{r['refused']} refused by the client before sending: 0 tokens)" if r["refused"] else ""))
    print(f"\n{len(PATHS) - bad - na}/{len(PATHS) - na} paths recorded exactly ({na} not applicable to the "
          "installed client versions)")
    return bad


if __name__ == "__main__":
    raise SystemExit(main())
