"""LangChain objects in tokprof's terms: messages and tool definitions in OpenAI's shape, an LLM result's
usage read in its provider's dialect, bounded text of inputs and outputs (for the callback handler in
:mod:`tokprof.profiler.integrations.langchain`)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from tokprof.profiler import keys
from tokprof.profiler.model import LLMCall, Message, Span, Usage
from tokprof.profiler.integrations import usage_dialects

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult


_ATTR_LIMIT = 4000
"""Longest tool input/output string kept on a span (the full text lives in the LLM messages anyway)."""


# Request parameters that change a model's output; everything else in invocation_params (api keys,
# clients, timeouts, the model name itself) is left out.
PARAM_KEYS = (
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "stop",
    "stop_sequences",
    "seed",
    "n",
    "tool_choice",
    "parallel_tool_calls",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "response_format",
    "reasoning_effort",
    "reasoning",
    "thinking",
    "service_tier",
)


def truncate(text: str) -> str:
    return text if len(text) <= _ATTR_LIMIT else text[:_ATTR_LIMIT] + "…"


def to_text(value: Any) -> str:
    """A tool input/output as text: message content, JSON for plain data, ``repr`` otherwise."""
    content = getattr(value, "content", None)
    if content is not None and not isinstance(value, (str, dict, list)):
        value = content
    if isinstance(value, str):
        return truncate(value)
    try:
        return truncate(json.dumps(value, default=str, ensure_ascii=False))
    except Exception:
        return truncate(repr(value))


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (run files are JSON): pydantic models dumped, classes and other
    objects named."""
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        pass
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "model_dump"):
        try:
            return jsonable(value.model_dump())
        except Exception:
            pass
    return json.loads(json.dumps(value, default=repr))


def messages_to_openai(messages: "list[BaseMessage]") -> list[Message]:
    """LangChain messages in OpenAI chat format (tool calls and tool results included)."""
    from langchain_core.messages import convert_to_openai_messages

    try:
        return list(convert_to_openai_messages(messages))
    except Exception:
        # One odd message must not lose the whole prompt: convert one by one, falling back to text.
        out: list[Message] = []
        for m in messages:
            try:
                out.append(convert_to_openai_messages(m))
            except Exception:
                role = {"human": "user", "ai": "assistant"}.get(getattr(m, "type", ""), getattr(m, "type", "user"))
                out.append({"role": role, "content": str(getattr(m, "content", m))})
        return out


def tools_to_openai(tools: Any) -> list[dict[str, Any]]:
    """Tool definitions from invocation params (OpenAI, Anthropic or LangChain shapes) in OpenAI format."""
    if not tools:
        return []
    from langchain_core.utils.function_calling import convert_to_openai_tool

    out: list[dict[str, Any]] = []
    for t in tools:
        if isinstance(t, dict) and t.get("type") == "function" and "function" in t:
            out.append(t)
            continue
        try:
            out.append(convert_to_openai_tool(t))
        except Exception:
            # Provider-native tools (web search...) have no OpenAI function form; keep them as given.
            out.append(t if isinstance(t, dict) else {"type": "unknown", "repr": repr(t)})
    return out


def provider(serialized: dict[str, Any] | None, metadata: dict[str, Any] | None) -> str | None:
    provider = (metadata or {}).get("ls_provider")
    if provider:
        return str(provider)
    ids = (serialized or {}).get("id") or []
    name = str(ids[-1]) if ids else ""
    lowered = name.lower()
    for known in ("anthropic", "openai", "google", "mistral", "bedrock", "ollama", "groq", "cohere"):
        if known in lowered:
            return known
    return None


def usage_from_message(message: Any, llm_output: dict[str, Any] | None) -> Usage:
    """Provider usage from ``usage_metadata`` (or, for older integrations, ``llm_output['token_usage']``).

    LangChain's ``usage_metadata.input_tokens`` is the whole prompt with cache reads/writes included (the
    Anthropic integration adds them in), which is exactly tokprof's convention.
    """
    meta = getattr(message, "usage_metadata", None) if message is not None else None
    if meta:
        return usage_dialects.langchain_usage(meta)
    usage = (llm_output or {}).get("token_usage") or (llm_output or {}).get("usage") or {}
    if isinstance(usage, dict) and usage:
        return usage_dialects.any_usage(usage)
    return Usage()


MISSING = object()


def serialized_name(serialized: dict[str, Any] | None) -> str | None:
    if not serialized:
        return None
    if serialized.get("name"):
        return str(serialized["name"])
    ids = serialized.get("id") or []
    return str(ids[-1]) if ids else None


def fill_response(call: LLMCall, response: "LLMResult", span: Span | None = None) -> None:
    """Output message, usage, model, response id and finish reason from a LangChain ``LLMResult``."""
    generation = None
    if response.generations and response.generations[0]:
        generation = response.generations[0][0]
    message = getattr(generation, "message", None)
    if message is not None:
        from langchain_core.messages import AIMessageChunk, message_chunk_to_message

        final = message_chunk_to_message(message) if isinstance(message, AIMessageChunk) else message
        converted = messages_to_openai([final])
        call.output = converted[0] if converted else None
        meta = getattr(message, "response_metadata", None) or {}
        call.finish_reason = meta.get("finish_reason") or meta.get("stop_reason") or call.finish_reason
        if call.model is None:
            model = meta.get("model_name") or meta.get("model")
            call.model = None if model is None else str(model)
        call.response_id = getattr(message, "id", None) or meta.get("id")
    elif generation is not None:
        call.output = {"role": "assistant", "content": generation.text}
        info = generation.generation_info or {}
        call.finish_reason = info.get("finish_reason")
    call.usage = usage_from_message(message, response.llm_output)
    from tokprof.profiler.integrations import _sdk

    wire = _sdk.take_sdk_usage(span)
    if wire is not None and wire.sources:
        # The instrumented SDK underneath read the provider's own usage block: it keeps what the LangChain
        # integration drops (DeepSeek hit/miss, Kimi/Moonshot cached_tokens, Qwen explicit cache writes,
        # Anthropic's TTL split, message_start input on a gateway) and a stream's usage it did not ask for.
        call.usage = wire
        if span is not None:
            span.set_attribute("usage_from", "sdk")
    elif not (call.usage.known("input_tokens") or call.usage.known("output_tokens")):
        if span is not None:
            span.set_attribute("usage_note", usage_dialects.estimate_missing(call))
    note = usage_dialects.reconcile(call)
    if note and span is not None:
        span.set_attribute("usage_note", note)
    served_from = _cache_hit(message)
    if served_from is not None:
        # No request reached the provider: nothing was billed. The cached answer's own usage is kept
        # apart so reports can say what the hit saved.
        if span is not None:
            span.set_attribute(keys.SERVED_BY, served_from)
            span.set_attribute(keys.CACHED_USAGE, call.usage.to_dict())
        call.usage = Usage.from_provider(input_tokens=0, output_tokens=0)


def _cache_hit(message: Any) -> str | None:
    """Where a response came from when it was a cache hit (LangChain's own cache marks hits by adding
    ``total_cost: 0`` to ``usage_metadata``; tokprof's live cache tags ``response_metadata``)."""
    if message is None:
        return None
    meta = getattr(message, "response_metadata", None) or {}
    if meta.get(keys.RESPONSE_CACHE_MARK) == "hit":
        return "response-cache"
    usage = getattr(message, "usage_metadata", None) or {}
    if "total_cost" in usage and usage.get("total_cost") == 0:
        return "langchain-cache"
    return None
