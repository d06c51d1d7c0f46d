"""Which HTTP requests are LLM API calls, and how each one's JSON maps onto an :class:`LLMCall`
(for :mod:`.http_fallback`, which records calls made by client libraries tokprof has no SDK patch for).

A request is recognised by its path and its JSON body, never by its host (a gateway, a proxy or a local
server speaks the same dialects): OpenAI-compatible ``/chat/completions``, ``/completions``, ``/embeddings``,
``/responses`` (OpenAI, Mistral, Groq, Together, DeepSeek, OpenRouter, vLLM, Ollama's ``/v1``...);
Anthropic ``/v1/messages``; Gemini ``:generateContent`` / ``:streamGenerateContent``; Ollama ``/api/chat``,
``/api/generate``; Cohere ``/v2/chat``. The provider label comes from the host when it is a known API
host, else from the dialect.

Each route reuses the SDK integration's adapter (request conversion, response filling, stream accumulator,
usage dialect): the JSON is handed to them as a :class:`View`, an attribute view of the dict, so
``getattr(chunk, "usage")`` reads ``chunk["usage"]`` (and, for Gemini's REST camelCase,
``usage_metadata`` reads ``usageMetadata``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

from tokprof.profiler.providers.hosts import API_HOSTS, host_provider

from tokprof.profiler.integrations import usage_native
from tokprof.profiler.integrations.anthropic import MessagesAdapter
from tokprof.profiler.integrations.embeddings import OpenAIEmbeddingsAdapter
from tokprof.profiler.integrations.gemini import GenerateAdapter
from tokprof.profiler.integrations.openai import ChatAdapter, ResponsesAdapter, as_plain
from tokprof.profiler.integrations.openai_completions import CompletionsAdapter
from tokprof.profiler.model import LLMCall, Message


class View:
    """A read-only attribute view of parsed JSON: missing keys read as ``None``; ``model_dump()`` gives the
    dict back (so ``as_plain`` / ``usage_dialects.plain`` see plain data)."""

    __slots__ = ("_data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        data = object.__getattribute__(self, "_data")
        if name in data:
            return wrap(data[name])
        if "_" in name:  # Gemini REST: usage_metadata -> usageMetadata
            head, *rest = name.split("_")
            camel = head + "".join(p[:1].upper() + p[1:] for p in rest)
            if camel in data:
                return wrap(data[camel])
        return None

    def model_dump(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._data


def wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return View(value)
    if isinstance(value, list):
        return [wrap(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------
# native dialects (no SDK integration to borrow from)
# ---------------------------------------------------------------------------------------------------
class _OllamaAcc:
    """An Ollama NDJSON stream: text pieces joined; the counts are on the object whose ``done`` is true."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.final: dict[str, Any] | None = None
        self.model: str | None = None

    def observe(self, obj: Any) -> None:
        data = as_plain(obj)
        if not isinstance(data, dict):
            return
        self.model = data.get("model") or self.model
        piece = (data.get("message") or {}).get("content") if isinstance(data.get("message"), dict) \
            else data.get("response")
        if isinstance(piece, str):
            self.text.append(piece)
        if data.get("done"):
            self.final = data

    def finish(self, call: LLMCall) -> None:
        call.output = {"role": "assistant", "content": "".join(self.text) or None}
        call.model = call.model or self.model
        if self.final is not None:
            call.finish_reason = self.final.get("done_reason")
            call.usage = usage_native.ollama_usage(self.final)


class OllamaAdapter:
    """Ollama's native ``/api/chat`` (messages) and ``/api/generate`` (prompt, optional system)."""

    def __init__(self, api: str) -> None:
        self.api = api

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        messages: list[Message] = []
        if self.api.endswith("chat"):
            messages = [m for m in kwargs.get("messages") or [] if isinstance(m, dict)]
        else:
            if kwargs.get("system"):
                messages.append({"role": "system", "content": str(kwargs["system"])})
            messages.append({"role": "user", "content": str(kwargs.get("prompt") or "")})
        options = kwargs.get("options") if isinstance(kwargs.get("options"), dict) else {}
        return LLMCall(provider="ollama", model=str(kwargs.get("model")) if kwargs.get("model") else None,
                       params=dict(options or {}), messages=messages,
                       tools=[t for t in kwargs.get("tools") or [] if isinstance(t, dict)])

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None

    def fill(self, call: LLMCall, response: Any) -> None:
        acc = _OllamaAcc()
        acc.observe(response)
        acc.finish(call)

    def accumulator(self) -> _OllamaAcc:
        return _OllamaAcc()


def _cohere_text(message: Any) -> str:
    content = (message or {}).get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and isinstance(p.get("text"), str))


class _CohereAcc:
    """A Cohere v2 chat SSE stream (``content-delta`` text, ``message-end`` finish reason and usage)."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.response_id: str | None = None

    def observe(self, event: Any) -> None:
        data = as_plain(event)
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        delta: dict[str, Any] = data["delta"] if isinstance(data.get("delta"), dict) else {}
        if kind == "message-start":
            self.response_id = data.get("id") or self.response_id
        elif kind == "content-delta":
            content = (delta.get("message") or {}).get("content") if isinstance(delta.get("message"), dict) else None
            if isinstance(content, dict) and isinstance(content.get("text"), str):
                self.text.append(content["text"])
        elif kind == "message-end":
            self.finish_reason = delta.get("finish_reason") or self.finish_reason
            self.usage = delta.get("usage") if delta.get("usage") is not None else self.usage
        elif "message" in data and "usage" in data:  # a whole (non-streamed) response
            self.response_id = data.get("id")
            self.text.append(_cohere_text(data.get("message")))
            self.finish_reason, self.usage = data.get("finish_reason"), data.get("usage")

    def finish(self, call: LLMCall) -> None:
        call.output = {"role": "assistant", "content": "".join(self.text) or None}
        call.finish_reason, call.response_id = self.finish_reason, self.response_id
        if self.usage is not None:
            call.usage = usage_native.cohere_usage(self.usage)


class CohereChatAdapter:
    api = "cohere.v2.chat"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        messages: list[Message] = []
        for m in kwargs.get("messages") or []:
            if isinstance(m, dict):
                content = m.get("content")
                messages.append({**m, "content": content if isinstance(content, str) else _cohere_text(m) or None})
        params: dict[str, Any] = {k: kwargs[k] for k in ("temperature", "max_tokens", "p", "k", "seed") if k in kwargs}
        return LLMCall(provider="cohere", model=str(kwargs.get("model")) if kwargs.get("model") else None,
                       params=params, messages=messages,
                       tools=[t for t in kwargs.get("tools") or [] if isinstance(t, dict)])

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None

    def fill(self, call: LLMCall, response: Any) -> None:
        acc = _CohereAcc()
        acc.observe(response)
        acc.finish(call)

    def accumulator(self) -> _CohereAcc:
        return _CohereAcc()


class GeminiRestAdapter(GenerateAdapter):
    """Gemini's REST body (``contents``, ``systemInstruction``, ``generationConfig``, ``tools``) read through
    the google-genai adapter, whose request side takes the SDK's keyword arguments."""

    def __init__(self, model: str) -> None:
        self.model = model

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        config: dict[str, Any] = {}
        generation = kwargs.get("generationConfig") or kwargs.get("generation_config") or {}
        if isinstance(generation, dict):
            for key, value in generation.items():  # camelCase -> the SDK's snake_case
                config["".join("_" + c.lower() if c.isupper() else c for c in key)] = value
        config["system_instruction"] = kwargs.get("systemInstruction") or kwargs.get("system_instruction")
        tools = kwargs.get("tools")
        if isinstance(tools, list):
            config["tools"] = [{"function_declarations": t.get("functionDeclarations") or t.get("function_declarations")
                                or []} for t in tools if isinstance(t, dict)]
        return super().request({"model": self.model, "contents": kwargs.get("contents"), "config": config})


# ---------------------------------------------------------------------------------------------------
# recognising a request
# ---------------------------------------------------------------------------------------------------
@dataclass
class Route:
    name: str
    """The span name (``http.chat.completions``...)."""
    adapter: Any
    provider: str | None
    """From the host, when it is a known API host (``None``: the adapter's own label)."""


HOSTS = API_HOSTS
"""Known API hosts -> provider label (one table: :mod:`tokprof.profiler.providers.hosts`)."""


def match(method: str, url: str, body: Any) -> Route | None:
    """The route of an LLM API request, or ``None`` (not one: left alone)."""
    if method.upper() != "POST" or not isinstance(body, dict):
        return None
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    provider = host_provider(url)
    route: tuple[str, Any] | None = None
    if path.endswith("/chat/completions") and "messages" in body:
        route = ("http.chat.completions", ChatAdapter())
    elif path.endswith("/completions") and "prompt" in body:
        route = ("http.completions", CompletionsAdapter())
    elif path.endswith("/embeddings") and "input" in body:
        route = ("http.embeddings", OpenAIEmbeddingsAdapter(provider or "openai", "http.embeddings"))
    elif path.endswith("/responses") and "input" in body:
        route = ("http.responses", ResponsesAdapter())
    elif path.endswith("/messages") and "messages" in body and "max_tokens" in body:
        route = ("http.messages", MessagesAdapter())  # Anthropic: max_tokens is required there
    elif path.endswith((":generateContent", ":streamGenerateContent")) and "contents" in body:
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        route = ("http.generateContent", GeminiRestAdapter(model))
    elif path.endswith("/api/chat") and "messages" in body:
        route = ("http.ollama.chat", OllamaAdapter("ollama.chat"))
    elif path.endswith("/api/generate") and "prompt" in body:
        route = ("http.ollama.generate", OllamaAdapter("ollama.generate"))
    elif path.endswith("/v2/chat") and "messages" in body:
        route = ("http.cohere.chat", CohereChatAdapter())
    if route is None:
        return None
    return Route(route[0], route[1], provider)


def is_streamed(route: Route, body: dict[str, Any], url: str) -> bool:
    """Whether the request asks for a stream (Ollama streams unless told not to)."""
    if isinstance(route.adapter, OllamaAdapter):
        return body.get("stream", True) is not False
    if isinstance(route.adapter, GeminiRestAdapter):
        return ":streamGenerateContent" in url
    return bool(body.get("stream"))
