"""OpenAI Python SDK: ``chat.completions.create`` and ``responses.create``, sync and async, streamed or not.

Opt-in: ``tokprof.profiler.instrument("openai")`` (undone by ``uninstrument``) or ``profile(instrument=["openai"])``.

Usage comes from the response (``usage``), or for a stream from its final chunk. A streamed chat completion
only carries usage when ``stream_options={"include_usage": True}``; when the caller did not set
``include_usage`` we add it (keeping any other stream options) and hide the extra usage-only chunk, so
the caller's iterator yields exactly what it would have without tokprof. Cached prompt tokens (``prompt_tokens_details.cached_tokens``) and
reasoning tokens (``completion_tokens_details.reasoning_tokens``) are kept, and cache writes when the API
reports them (``cache_write_tokens``); OpenAI's ``prompt_tokens`` already includes the cached part, which
is tokprof's convention. A count the API did not report stays unknown rather than zero.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from tokprof.profiler.integrations import _sdk, usage_dialects
from tokprof.profiler.model import Cost, LLMCall, Message, Usage
from tokprof.profiler.providers.prices import pick_model

PROVIDER = "openai"

_CHAT_PARAMS = (
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "stop",
    "seed",
    "n",
    "tool_choice",
    "parallel_tool_calls",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "response_format",
    "reasoning_effort",
    "service_tier",
    "prompt_cache_key",
    "verbosity",
)
_RESPONSES_PARAMS = (
    "temperature",
    "top_p",
    "max_output_tokens",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning",
    "text",
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "previous_response_id",
)


def is_given(value: Any) -> bool:
    """False for ``None`` and the SDK's ``NOT_GIVEN``/``omit`` sentinels."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


def as_plain(value: Any) -> Any:
    """SDK objects (pydantic models, iterables of them) as plain JSON-able data."""
    if isinstance(value, type):  # e.g. a pydantic class given as response_format to .parse()
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "model_dump"):
        try:  # warnings=False: a parse() result's ``parsed`` field holds the caller's own model
            return value.model_dump(exclude_none=True, warnings=False)
        except TypeError:  # pydantic v1-style model_dump without ``warnings``
            return value.model_dump(exclude_none=True)
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items() if is_given(v)}
    if isinstance(value, (list, tuple)):
        return [as_plain(v) for v in value]
    return value


def _params(kwargs: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: as_plain(kwargs[k]) for k in keys if is_given(kwargs.get(k))}


def chat_usage(usage: Any) -> Usage:
    """tokprof usage from an OpenAI-compatible chat ``usage`` (any dialect: see ``usage_dialects``)."""
    return usage_dialects.chat_usage(as_plain(usage))


def record_reported_cost(call: LLMCall, usage: Any) -> None:
    """A gateway's own charge for the call (OpenRouter ``usage.cost``) becomes its recorded cost: the
    ``recorded`` source, as for a trace file that carried what the provider charged."""
    amount = usage_dialects.reported_cost(as_plain(usage))
    if amount is not None:
        call.cost = Cost(amount, "USD", "recorded")


def responses_usage(usage: Any) -> Usage:
    """tokprof usage from a Responses API ``ResponseUsage`` (object or dict)."""
    return usage_dialects.responses_usage(as_plain(usage))


# ---------------------------------------------------------------------------------------------------
# chat completions
# ---------------------------------------------------------------------------------------------------
class _ChatAccumulator:
    """Rebuilds the assistant message of a streamed chat completion and keeps the final usage."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.response_id: str | None = None
        self.model: str | None = None
        self.vendor_error: str | None = None
        """A failure a chunk reported beside HTTP 200 (MiniMax ``base_resp``): the span is marked failed."""

    def observe(self, chunk: Any) -> None:
        self.response_id = getattr(chunk, "id", None) or self.response_id
        self.model = getattr(chunk, "model", None) or self.model
        self.vendor_error = self.vendor_error or usage_dialects.vendor_status_error(chunk)
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        elif self.usage is None:
            self.usage = usage_dialects.vendor_stream_usage(chunk)  # Groq's x_groq.usage
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) not in (0, None):  # some compatible servers send no index: the first
                continue
            if getattr(choice, "usage", None) is not None and getattr(chunk, "usage", None) is None:
                # Kimi/Moonshot streams put the usage in the last chunk's choices[0].usage
                # (https://platform.moonshot.ai/docs/api/chat)
                self.usage = choice.usage
            if choice.finish_reason:
                self.finish_reason = choice.finish_reason
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                self.content.append(delta.content)
            for tc in delta.tool_calls or []:
                # pieces joined in finish(): appending to a str in a dict copies it every chunk (quadratic)
                slot = self.tool_calls.setdefault(tc.index, {"id": None, "name": [], "arguments": []})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function is not None:
                    if tc.function.name:
                        slot["name"].append(tc.function.name)
                    if tc.function.arguments:
                        slot["arguments"].append(tc.function.arguments)

    def finish(self, call: LLMCall) -> None:
        message: Message = {"role": "assistant", "content": "".join(self.content) or None}
        if self.tool_calls:
            message["tool_calls"] = [
                {"id": slot["id"], "type": "function",
                 "function": {"name": "".join(slot["name"]), "arguments": "".join(slot["arguments"])}}
                for slot in (self.tool_calls[i] for i in sorted(self.tool_calls, key=_slot_order))]
        call.output = message
        call.finish_reason = self.finish_reason
        call.response_id = self.response_id
        call.model = pick_model(call.model, self.model)  # request model kept when the response's does not resolve
        if self.usage is not None:
            call.usage = chat_usage(self.usage)
            record_reported_cost(call, self.usage)


ChatAccumulator = _ChatAccumulator
"""The public name (litellm rebuilds its streams with it)."""


def _slot_order(index: Any) -> tuple[int, int]:
    """Tool-call slots in index order; a slot a server sent without an integer index sorts first."""
    return (1, index) if isinstance(index, int) else (0, 0)


def _is_usage_only_chunk(chunk: Any) -> bool:
    return not getattr(chunk, "choices", None) and getattr(chunk, "usage", None) is not None


class ChatAdapter:
    api = "openai.chat.completions"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        return LLMCall(
            provider=PROVIDER,
            model=str(kwargs.get("model")) if is_given(kwargs.get("model")) else None,
            params=_params(kwargs, _CHAT_PARAMS),
            messages=[as_plain(m) for m in kwargs.get("messages") or []],
            tools=[as_plain(t) for t in kwargs.get("tools") or []] if is_given(kwargs.get("tools")) else [],
        )

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        options = kwargs.get("stream_options")
        if not is_given(options):
            options = {}
        if not isinstance(options, dict) or "include_usage" in options:
            return kwargs, None  # the caller chose; if it refused usage, usage stays unknown (filled by counting)
        return {**kwargs, "stream_options": {**options, "include_usage": True}}, _is_usage_only_chunk

    def fill(self, call: LLMCall, response: Any) -> None:
        choices = getattr(response, "choices", None) or []
        if choices:
            call.output = as_plain(choices[0].message)
            call.finish_reason = choices[0].finish_reason
        call.response_id = getattr(response, "id", None)
        call.model = pick_model(call.model, getattr(response, "model", None))
        if getattr(response, "usage", None) is not None:
            call.usage = chat_usage(response.usage)
            record_reported_cost(call, response.usage)

    def accumulator(self) -> _ChatAccumulator:
        return _ChatAccumulator()


# ---------------------------------------------------------------------------------------------------
# responses
# ---------------------------------------------------------------------------------------------------
def _content_text(content: Any) -> Any:
    """Responses content (str or parts) as chat content: text parts joined, other parts kept."""
    if isinstance(content, str):
        return content
    parts = [as_plain(p) for p in content or []]
    if all(isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text") for p in parts):
        return "".join(p.get("text", "") for p in parts)
    return [{"type": "text", "text": p["text"]} if isinstance(p, dict) and "text" in p else p for p in parts]


def responses_input_to_messages(instructions: Any, items: Any) -> list[Message]:
    """Responses API ``instructions`` + ``input`` as OpenAI chat messages."""
    messages: list[Message] = []
    if is_given(instructions) and instructions:
        messages.append({"role": "system", "content": str(instructions)})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for raw in items or []:
        item = as_plain(raw)
        kind = item.get("type", "message")
        if kind == "message" or ("role" in item and kind not in ("function_call", "function_call_output")):
            role = item.get("role", "user")
            messages.append({"role": "system" if role == "developer" else role,
                             "content": _content_text(item.get("content"))})
        elif kind == "function_call":
            call = {"id": item.get("call_id"), "type": "function",
                    "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}}
            # Consecutive calls belong to one assistant turn.
            if messages and messages[-1].get("role") == "assistant" and messages[-1].get("tool_calls"):
                messages[-1]["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item.get("call_id"),
                             "content": output if isinstance(output, str) else json.dumps(output)})
        else:  # reasoning items, built-in tool calls...: keep them visible rather than drop them
            messages.append({"role": "assistant", "content": None, "responses_item": item})
    return messages


def responses_tools(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in tools or []:
        t = as_plain(raw)
        if t.get("type") == "function" and "function" not in t:
            fn = {k: t[k] for k in ("name", "description", "parameters", "strict") if k in t}
            out.append({"type": "function", "function": fn})
        else:
            out.append(t)
    return out


def responses_output_message(output: Any) -> Message:
    text: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for raw in output or []:
        item = as_plain(raw)
        if item.get("type") == "message":
            for part in item.get("content") or []:
                if part.get("type") == "output_text":
                    text.append(part.get("text", ""))
        elif item.get("type") == "function_call":
            tool_calls.append({"id": item.get("call_id"), "type": "function",
                               "function": {"name": item.get("name"), "arguments": item.get("arguments", "")}})
    message: Message = {"role": "assistant", "content": "".join(text) or None}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def _fill_from_response(call: LLMCall, response: Any) -> None:
    call.output = responses_output_message(getattr(response, "output", None))
    call.response_id = getattr(response, "id", None)
    call.model = pick_model(call.model, getattr(response, "model", None))
    status = getattr(response, "status", None)
    call.finish_reason = None if status is None else str(status)
    if getattr(response, "usage", None) is not None:
        call.usage = responses_usage(response.usage)


class _ResponsesAccumulator:
    """Keeps the final ``response`` of a streamed Responses API call (``response.completed`` & co)."""

    def __init__(self) -> None:
        self.response: Any = None
        self.text: list[str] = []
        """``response.output_text.delta`` pieces: the answer of a stream cut before ``response.completed``
        (the last response seen is then an ``in_progress`` one, with no output yet)."""

    def observe(self, event: Any) -> None:
        response = getattr(event, "response", None)
        if response is not None:
            self.response = response  # created / in_progress / completed / incomplete / failed: last wins
        elif getattr(event, "type", None) == "response.output_text.delta" and isinstance(getattr(event, "delta", None), str):
            self.text.append(event.delta)

    def finish(self, call: LLMCall) -> None:
        if self.response is not None:
            _fill_from_response(call, self.response)
        if self.text and not (call.output or {}).get("content"):
            call.output = {"role": "assistant", "content": "".join(self.text)}


class ResponsesAdapter:
    api = "openai.responses"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        return LLMCall(
            provider=PROVIDER,
            model=str(kwargs.get("model")) if is_given(kwargs.get("model")) else None,
            params=_params(kwargs, _RESPONSES_PARAMS),
            messages=responses_input_to_messages(kwargs.get("instructions"), kwargs.get("input")),
            tools=responses_tools(kwargs.get("tools")) if is_given(kwargs.get("tools")) else [],
        )

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # the final response.completed event always carries usage

    def fill(self, call: LLMCall, response: Any) -> None:
        _fill_from_response(call, response)

    def accumulator(self) -> _ResponsesAccumulator:
        return _ResponsesAccumulator()


# ---------------------------------------------------------------------------------------------------
# patching
# ---------------------------------------------------------------------------------------------------
def patch() -> list[_sdk.Patch]:
    """Patch the SDK; returns what :func:`tokprof.profiler.integrations._sdk.unpatch` needs to undo it."""
    from openai.resources.chat.completions.completions import AsyncCompletions, Completions
    from openai.resources.responses.responses import AsyncResponses, Responses

    chat, responses = ChatAdapter(), ResponsesAdapter()
    patches: list[_sdk.Patch] = []
    try:
        patches.append(_sdk.patch(Completions, "create",
                                  lambda f: _sdk.sync_create(chat, f, "openai.chat.completions.create")))
        patches.append(_sdk.patch(AsyncCompletions, "create",
                                  lambda f: _sdk.async_create(chat, f, "openai.chat.completions.create")))
        patches.append(_sdk.patch(Responses, "create",
                                  lambda f: _sdk.sync_create(responses, f, "openai.responses.create")))
        patches.append(_sdk.patch(AsyncResponses, "create",
                                  lambda f: _sdk.async_create(responses, f, "openai.responses.create")))
        # parse() posts itself (not through create): structured outputs are billed calls too
        for owner, adapter, name, wrap in ((Completions, chat, "openai.chat.completions.parse", _sdk.sync_create),
                                           (AsyncCompletions, chat, "openai.chat.completions.parse", _sdk.async_create),
                                           (Responses, responses, "openai.responses.parse", _sdk.sync_create),
                                           (AsyncResponses, responses, "openai.responses.parse", _sdk.async_create)):
            if "parse" in owner.__dict__:
                patches.append(_sdk.patch(owner, "parse", _parse_wrapper(adapter, name, wrap)))
        for owner in (Completions, AsyncCompletions, Responses, AsyncResponses):
            patches.extend(_sdk.patch_raw_accessors(owner))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches


def _parse_wrapper(adapter: Any, name: str, wrap: Callable[..., Any]) -> Callable[[Any], Any]:
    """The patch factory for a client's ``parse`` method: ``wrap(adapter, original, name)``."""
    def make(original: Any) -> Any:
        return wrap(adapter, original, name)
    return make

