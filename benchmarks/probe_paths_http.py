"""Probe rows for client libraries tokprof has no SDK patch for, and for libraries built on the SDKs it
patches (benchmarks/probe_paths.py runs them after its own rows). Each driver uses the real library over
real HTTP against the loopback server (tests/llm_server.py + tests/llm_server_native.py for Ollama and
Cohere). A library that is not installed gives ``n/a``.

What the loopback server sends per call: 42 input and 7 output tokens (Cohere: billed 42 / 7, processed 45 / 7).
Stream usage: Groq sends ``x_groq.usage`` on its last chunk whether or not usage was asked for (its SDK's
chunk type, see ``usage_dialects.vendor_stream_usage``); the Mistral rows put the usage on the chunk with the
finish reason (``CompletionChunk.usage``: mistralai/client/models/completionchunk.py); a plain
OpenAI-compatible stream carries usage only when ``stream_options.include_usage`` is sent, which these rows do.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import Any, Callable

from llm_server import LLMServer, Reply
import llm_server_native  # noqa: F401  (adds the Ollama and Cohere routes)

IN, OUT = 42, 7
MSG = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": MSG}
STREAM = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}


class NotApplicable(Exception):
    """The library (or this path of it) is not installed here (the row says ``n/a``)."""


def _need(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise NotApplicable(f"{module} is not installed") from exc


def _run(coro: Any) -> Any:
    return asyncio.new_event_loop().run_until_complete(coro)


# ---- libraries with their own HTTP client -----------------------------------------------------------
def groq_chat(s: LLMServer) -> None:
    _need("groq").Groq(api_key="t", base_url=s.url, max_retries=0).chat.completions.create(
        model="llama-3.1-8b-instant", messages=MSG)


def groq_stream(s: LLMServer) -> None:
    s.script(Reply(x_groq_usage=True))
    for _ in _need("groq").Groq(api_key="t", base_url=s.url, max_retries=0).chat.completions.create(
            model="llama-3.1-8b-instant", messages=MSG, stream=True):
        pass


def mistral_chat(s: LLMServer) -> None:
    _need("mistralai.client").Mistral(api_key="t", server_url=s.url).chat.complete(
        model="mistral-small-latest", messages=MSG)


def mistral_stream(s: LLMServer) -> None:
    s.script(Reply(usage_in_last_chunk=True))
    for _ in _need("mistralai.client").Mistral(api_key="t", server_url=s.url).chat.stream(
            model="mistral-small-latest", messages=MSG):
        pass


def cohere_chat(s: LLMServer) -> None:
    _need("cohere").ClientV2(api_key="t", base_url=s.url).chat(model="command-r", messages=MSG)


def cohere_stream(s: LLMServer) -> None:
    for _ in _need("cohere").ClientV2(api_key="t", base_url=s.url).chat_stream(model="command-r", messages=MSG):
        pass


def together_chat(s: LLMServer) -> None:
    _need("together").Together(api_key="t", base_url=s.openai_url, max_retries=0).chat.completions.create(
        model="meta-llama/Llama-3-8b-chat-hf", messages=MSG)


def ollama_chat(s: LLMServer) -> None:
    _need("ollama").Client(host=s.url).chat(model="llama3.2", messages=MSG)


def ollama_stream(s: LLMServer) -> None:
    for _ in _need("ollama").Client(host=s.url).chat(model="llama3.2", messages=MSG, stream=True):
        pass


def ollama_generate(s: LLMServer) -> None:
    _need("ollama").Client(host=s.url).generate(model="llama3.2", prompt="hi")


def ollama_async(s: LLMServer) -> None:
    _run(_need("ollama").AsyncClient(host=s.url).chat(model="llama3.2", messages=MSG))


def httpx_post(s: LLMServer) -> None:
    _need("httpx").post(s.openai_url + "/chat/completions", json=CHAT).raise_for_status()


def httpx_stream(s: LLMServer) -> None:
    httpx = _need("httpx")
    with httpx.Client() as c, c.stream("POST", s.openai_url + "/chat/completions", json=STREAM) as r:
        for _ in r.iter_lines():
            pass


def httpx_async(s: LLMServer) -> None:
    httpx = _need("httpx")

    async def go() -> None:
        async with httpx.AsyncClient() as c:
            (await c.post(s.openai_url + "/chat/completions", json=CHAT)).raise_for_status()
    _run(go())


def requests_post(s: LLMServer) -> None:
    _need("requests").post(s.openai_url + "/chat/completions", json=CHAT).raise_for_status()


def requests_stream(s: LLMServer) -> None:
    r = _need("requests").post(s.openai_url + "/chat/completions", json=STREAM, stream=True)
    for _ in r.iter_lines():
        pass


def httpx_anthropic(s: LLMServer) -> None:
    _need("httpx").post(s.url + "/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 50,
                                                      "messages": MSG}).raise_for_status()


def httpx_gemini_stream(s: LLMServer) -> None:
    httpx = _need("httpx")
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    with httpx.Client() as c, c.stream("POST", s.url + "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                                       params={"alt": "sse"}, json=body) as r:
        r.read()


# ---- libraries built on the SDKs tokprof patches ----------------------------------------------------
def pai_openai(s: LLMServer) -> None:
    _need("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    Agent(OpenAIChatModel("gpt-4o-mini", provider=OpenAIProvider(base_url=s.openai_url, api_key="t"))).run_sync("hi")


def pai_anthropic(s: LLMServer) -> None:
    _need("pydantic_ai")
    from pydantic_ai import Agent
    from pydantic_ai.models.anthropic import AnthropicModel
    from pydantic_ai.providers.anthropic import AnthropicProvider
    Agent(AnthropicModel("claude-sonnet-4-5", provider=AnthropicProvider(base_url=s.anthropic_url,
                                                                         api_key="t"))).run_sync("hi")


def pai_groq(s: LLMServer) -> None:
    _need("pydantic_ai")
    _need("groq")
    from pydantic_ai import Agent
    from pydantic_ai.models.groq import GroqModel
    from pydantic_ai.providers.groq import GroqProvider
    Agent(GroqModel("llama-3.1-8b-instant", provider=GroqProvider(base_url=s.url, api_key="t"))).run_sync("hi")


def pai_mistral(s: LLMServer) -> None:
    _need("pydantic_ai")
    _need("mistralai")
    from pydantic_ai import Agent
    from pydantic_ai.models.mistral import MistralModel
    from pydantic_ai.providers.mistral import MistralProvider
    Agent(MistralModel("mistral-small-latest", provider=MistralProvider(base_url=s.url, api_key="t"))).run_sync("hi")


def smol_openai(s: LLMServer) -> None:
    _need("smolagents").OpenAIServerModel(model_id="gpt-4o-mini", api_base=s.openai_url, api_key="t")(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}])


def smol_litellm(s: LLMServer) -> None:
    _need("smolagents").LiteLLMModel(model_id="openai/gpt-4o-mini", api_base=s.openai_url, api_key="t")(
        [{"role": "user", "content": [{"type": "text", "text": "hi"}]}])


def lc_ollama(s: LLMServer) -> None:
    _need("langchain_ollama").ChatOllama(model="llama3.2", base_url=s.url).invoke("hi")


def ll_ollama(s: LLMServer) -> None:
    _need("litellm").completion(model="ollama_chat/llama3.2", messages=MSG, api_base=s.url)


def ll_cohere(s: LLMServer) -> None:
    _need("litellm").completion(model="cohere_chat/command-r", messages=MSG, api_base=s.url + "/v2/chat",
                                api_key="t")


HTTP_PATHS: list[tuple[str, Callable[[LLMServer], None], int, int, int]] = [
    ("groq chat.completions", groq_chat, 1, IN, OUT),
    ("groq stream (x_groq.usage)", groq_stream, 1, IN, OUT),
    ("mistralai chat.complete", mistral_chat, 1, IN, OUT),
    ("mistralai chat.stream", mistral_stream, 1, IN, OUT),
    ("cohere ClientV2.chat (billed units)", cohere_chat, 1, IN, OUT),
    ("cohere ClientV2.chat_stream", cohere_stream, 1, IN, OUT),
    ("together chat.completions", together_chat, 1, IN, OUT),
    ("ollama Client.chat", ollama_chat, 1, IN, OUT),
    ("ollama Client.chat stream (NDJSON)", ollama_stream, 1, IN, OUT),
    ("ollama Client.generate", ollama_generate, 1, IN, OUT),
    ("ollama AsyncClient.chat", ollama_async, 1, IN, OUT),
    ("httpx.post /v1/chat/completions", httpx_post, 1, IN, OUT),
    ("httpx Client.stream (SSE)", httpx_stream, 1, IN, OUT),
    ("httpx AsyncClient.post", httpx_async, 1, IN, OUT),
    ("requests.post /v1/chat/completions", requests_post, 1, IN, OUT),
    ("requests.post stream=True", requests_stream, 1, IN, OUT),
    ("httpx.post /v1/messages (Anthropic)", httpx_anthropic, 1, IN, OUT),
    ("httpx :streamGenerateContent (Gemini)", httpx_gemini_stream, 1, IN, OUT),
    ("pydantic-ai OpenAIChatModel", pai_openai, 1, IN, OUT),
    ("pydantic-ai AnthropicModel", pai_anthropic, 1, IN, OUT),
    ("pydantic-ai GroqModel", pai_groq, 1, IN, OUT),
    ("pydantic-ai MistralModel", pai_mistral, 1, IN, OUT),
    ("smolagents OpenAIServerModel", smol_openai, 1, IN, OUT),
    ("smolagents LiteLLMModel", smol_litellm, 1, IN, OUT),
    ("langchain-ollama ChatOllama", lc_ollama, 1, IN, OUT),
    ("litellm ollama_chat/", ll_ollama, 1, IN, OUT),
    ("litellm cohere_chat/ (billed units)", ll_cohere, 1, IN, OUT),
]
