"""Anthropic Python SDK: ``messages.create`` (sync, async, ``stream=True``) and ``messages.stream``.

Opt-in: ``tokprof.profiler.instrument("anthropic")`` (undone by ``uninstrument``) or
``profile(instrument=["anthropic"])``.

Anthropic's ``input_tokens`` excludes the prompt-cache tokens; tokprof's ``Usage.input_tokens`` includes
them, so it is ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``. A stream reports
usage in ``message_start`` (input side) and ``message_delta`` (cumulative output side); the last value of
each field wins. Thinking tokens (``output_tokens_details.thinking_tokens``) are the reasoning tokens.
Requests are recorded in OpenAI chat format (system prompt first, ``tool_use`` blocks as
``tool_calls``, ``tool_result`` blocks as ``tool`` messages); ``cache_control`` marks are kept on text parts.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable

from tokprof.profiler.integrations import _sdk, usage_dialects
from tokprof.profiler.integrations.openai import as_plain, is_given
from tokprof.profiler.model import LLMCall, Message, Usage
from tokprof.profiler.providers.prices import pick_model

PROVIDER = "anthropic"
_PARAMS = ("max_tokens", "temperature", "top_p", "top_k", "stop_sequences", "tool_choice", "thinking",
           "service_tier", "output_config", "cache_control", "speed")


def anthropic_usage(usage: Any) -> Usage:
    """tokprof usage from an Anthropic ``Usage`` (object or dict): cache tokens added into the input, the
    1-hour/5-minute cache-write split kept (see ``usage_dialects``)."""
    return usage_dialects.anthropic_usage(as_plain(usage))


# ---------------------------------------------------------------------------------------------------
# request and response conversion
# ---------------------------------------------------------------------------------------------------
def _text_parts(blocks: list[dict[str, Any]]) -> Any:
    """Text/image blocks as OpenAI content: a plain string unless a part needs to keep more than text."""
    parts: list[dict[str, Any]] = []
    for b in blocks:
        if b.get("type") == "text":
            part: dict[str, Any] = {"type": "text", "text": b.get("text", "")}
            if b.get("cache_control"):
                part["cache_control"] = b["cache_control"]
            parts.append(part)
        elif b.get("type") == "image":
            src = b.get("source") or {}
            url = src.get("url") or f"data:{src.get('media_type', '')};base64,{src.get('data', '')}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        else:  # thinking, documents...: kept as given
            parts.append(b)
    if all(p.get("type") == "text" and "cache_control" not in p for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _tool_result_content(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    blocks = [as_plain(b) for b in content]
    return _text_parts(blocks)


def messages_to_openai(system: Any, messages: Any) -> list[Message]:
    """Anthropic ``system`` + ``messages`` as OpenAI chat messages."""
    out: list[Message] = []
    if is_given(system) and system:
        out.append({"role": "system",
                    "content": system if isinstance(system, str) else _text_parts([as_plain(b) for b in system])})
    for raw in messages or []:
        m = as_plain(raw)
        role, content = m.get("role", "user"), m.get("content")
        if isinstance(content, str):
            out.append({"role": role, "content": content})
            continue
        blocks = [as_plain(b) for b in content or []]
        if role == "assistant":
            calls = [
                {"id": b.get("id"), "type": "function",
                 "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
                for b in blocks if b.get("type") == "tool_use"
            ]
            rest = [b for b in blocks if b.get("type") != "tool_use"]
            msg: Message = {"role": "assistant", "content": _text_parts(rest) if rest else None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
            continue
        # A user turn: tool results become tool messages (in order), the rest one user message.
        rest = []
        for b in blocks:
            if b.get("type") == "tool_result":
                out.append({"role": "tool", "tool_call_id": b.get("tool_use_id"),
                            "content": _tool_result_content(b.get("content"))})
            else:
                rest.append(b)
        if rest:
            out.append({"role": role, "content": _text_parts(rest)})
    return out


def tools_to_openai(tools: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for raw in tools or []:
        t = as_plain(raw)
        if "input_schema" in t:
            fn = {"name": t.get("name"), "description": t.get("description", ""), "parameters": t["input_schema"]}
            tool: dict[str, Any] = {"type": "function", "function": fn}
            if t.get("cache_control"):
                tool["cache_control"] = t["cache_control"]
            out.append(tool)
        else:  # server tools (web search...) have no function form
            out.append(t)
    return out


def output_to_openai(content: Any) -> Message:
    blocks = [as_plain(b) for b in content or []]
    text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
    calls = [
        {"id": b.get("id"), "type": "function",
         "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})}}
        for b in blocks if b.get("type") == "tool_use"
    ]
    message: Message = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return message


class _StreamAccumulator:
    """Rebuilds the message of a raw Anthropic event stream and merges its usage reports."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.pieces: dict[tuple[int, str], list[str]] = {}
        """Streamed text per (block, field), joined in finish(): appending to a str held in a dict copies it
        on every event (quadratic in the reply's length)."""
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.message_id: str | None = None
        self.model: str | None = None

    def _merge_usage(self, usage: Any) -> None:
        usage_dialects.merge_stream_usage(self.usage, as_plain(usage))

    def observe(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "message_start":
            message = event.message
            self.message_id, self.model = message.id, message.model
            self._merge_usage(message.usage)
        elif kind == "content_block_start":
            self.blocks[event.index] = as_plain(event.content_block)
            if self.blocks[event.index].get("type") == "tool_use":
                self.blocks[event.index]["_json"] = ""
        elif kind == "content_block_delta":
            self.blocks.setdefault(event.index, {"type": "text", "text": ""})
            delta = event.delta
            dtype = getattr(delta, "type", None)
            if dtype == "text_delta":
                self.pieces.setdefault((event.index, "text"), []).append(delta.text)
            elif dtype == "input_json_delta":
                self.pieces.setdefault((event.index, "_json"), []).append(delta.partial_json)
            elif dtype == "thinking_delta":
                self.pieces.setdefault((event.index, "thinking"), []).append(delta.thinking)
        elif kind == "message_delta":
            if getattr(event.delta, "stop_reason", None):
                self.stop_reason = event.delta.stop_reason
            self._merge_usage(getattr(event, "usage", None))

    def finish(self, call: LLMCall) -> None:
        blocks = []
        for i in sorted(self.blocks):
            b = dict(self.blocks[i])
            for name in ("text", "_json", "thinking"):
                streamed = self.pieces.get((i, name))
                if streamed:
                    b[name] = (b.get(name) or "") + "".join(streamed)
            raw_json = b.pop("_json", None)
            if b.get("type") == "tool_use" and raw_json:
                try:
                    b["input"] = json.loads(raw_json)
                except ValueError:
                    b["input"] = {"_unparsed": raw_json}
            blocks.append(b)
        call.output = output_to_openai(blocks)
        call.finish_reason = self.stop_reason
        call.response_id = self.message_id
        call.model = pick_model(call.model, self.model)  # request model kept when the response's does not resolve
        if self.usage:
            call.usage = anthropic_usage(self.usage)


class MessagesAdapter:
    api = "anthropic.messages"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        return LLMCall(
            provider=PROVIDER,
            model=str(kwargs.get("model")) if is_given(kwargs.get("model")) else None,
            params={k: as_plain(kwargs[k]) for k in _PARAMS if is_given(kwargs.get(k))},
            messages=messages_to_openai(kwargs.get("system"), kwargs.get("messages")),
            tools=tools_to_openai(kwargs.get("tools")) if is_given(kwargs.get("tools")) else [],
        )

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # usage is always in message_start / message_delta

    def fill(self, call: LLMCall, response: Any) -> None:
        call.output = output_to_openai(getattr(response, "content", None))
        call.finish_reason = getattr(response, "stop_reason", None)
        call.response_id = getattr(response, "id", None)
        call.model = pick_model(call.model, getattr(response, "model", None))
        if getattr(response, "usage", None) is not None:
            call.usage = anthropic_usage(response.usage)

    def accumulator(self) -> _StreamAccumulator:
        return _StreamAccumulator()


# ---------------------------------------------------------------------------------------------------
# messages.stream(): the helper builds its request itself (not through create), so it is wrapped apart
# ---------------------------------------------------------------------------------------------------
_SYNC_MANAGER_REQUEST = "_MessageStreamManager__api_request"
_ASYNC_MANAGER_REQUEST = "_AsyncMessageStreamManager__api_request"


def _stream_helper(adapter: MessagesAdapter, original: Callable[..., Any], manager_request: str,
                   wrap_request: Callable[[_sdk.CallState, Any], Any],
                   name: str = "anthropic.messages.stream") -> Callable[..., Any]:
    """``messages.stream`` (sync or async: ``stream()`` itself is sync in both, only the manager's request
    differs) recorded as one LLM span: the manager's request is swapped for ``wrap_request``'s."""

    @functools.wraps(original)
    def stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(adapter, kwargs, name=name, streaming_helper=True)
        try:
            manager = original(self, *args, **state.kwargs)
        except BaseException as exc:  # recorded as a failed call, as create() does
            state.fail(exc)
            raise
        key = _manager_request_key(manager, manager_request) if state.span is not None else None
        api_request = manager.__dict__.get(key) if key else None
        if api_request is None:
            if state.span is not None:  # an SDK version whose manager we do not know: record no output
                state.end_stream(adapter.accumulator(), None, False)
            return manager
        manager.__dict__[key] = wrap_request(state, api_request)
        return manager

    stream.__tokprof_original__ = original  # type: ignore[attr-defined]
    return stream


def _manager_request_key(manager: Any, preferred: str) -> str | None:
    """The stream manager's private request attribute (name-mangled per class: ``MessageStreamManager``,
    ``BetaMessageStreamManager``, their async twins)."""
    if preferred in manager.__dict__:
        return preferred
    return next((k for k in manager.__dict__ if k.endswith("__api_request")), None)


def _sync_request(state: _sdk.CallState, api_request: Callable[[], Any]) -> Callable[[], Any]:
    def request() -> Any:
        try:
            raw = api_request()
        except BaseException as exc:
            state.fail(exc)
            raise
        return _sdk.wrap_stream(state, raw)

    return request


def _async_request(state: _sdk.CallState, api_request: Any) -> Any:
    async def request() -> Any:
        try:
            raw = await api_request
        except BaseException as exc:
            state.fail(exc)
            raise
        return _sdk.wrap_stream(state, raw, is_async=True)

    return request()  # the async manager holds an awaitable, not a function


def _sync_stream(adapter: MessagesAdapter, original: Callable[..., Any],
                 name: str = "anthropic.messages.stream") -> Callable[..., Any]:
    return _stream_helper(adapter, original, _SYNC_MANAGER_REQUEST, _sync_request, name)


def _async_stream(adapter: MessagesAdapter, original: Callable[..., Any],
                  name: str = "anthropic.messages.stream") -> Callable[..., Any]:
    return _stream_helper(adapter, original, _ASYNC_MANAGER_REQUEST, _async_request, name)


def _patch_messages(sync_cls: type, async_cls: type, adapter: MessagesAdapter, prefix: str,
                    patches: list[_sdk.Patch]) -> None:
    patches.append(_sdk.patch(sync_cls, "create", lambda f: _sdk.sync_create(adapter, f, f"{prefix}.create")))
    patches.append(_sdk.patch(async_cls, "create", lambda f: _sdk.async_create(adapter, f, f"{prefix}.create")))
    if "stream" in sync_cls.__dict__:
        patches.append(_sdk.patch(sync_cls, "stream", lambda f: _sync_stream(adapter, f, f"{prefix}.stream")))
    if "stream" in async_cls.__dict__:
        patches.append(_sdk.patch(async_cls, "stream", lambda f: _async_stream(adapter, f, f"{prefix}.stream")))
    # parse() posts itself (not through create): structured outputs are billed calls too
    if "parse" in sync_cls.__dict__:
        patches.append(_sdk.patch(sync_cls, "parse", lambda f: _sdk.sync_create(adapter, f, f"{prefix}.parse")))
    if "parse" in async_cls.__dict__:
        patches.append(_sdk.patch(async_cls, "parse", lambda f: _sdk.async_create(adapter, f, f"{prefix}.parse")))
    patches.extend(_sdk.patch_raw_accessors(sync_cls))
    patches.extend(_sdk.patch_raw_accessors(async_cls))


def patch() -> list[_sdk.Patch]:
    """Patch the SDK (messages and beta messages); returns what
    :func:`tokprof.profiler.integrations._sdk.unpatch` needs to undo it."""
    from anthropic.resources.messages.messages import AsyncMessages, Messages

    adapter = MessagesAdapter()
    patches: list[_sdk.Patch] = []
    try:
        _patch_messages(Messages, AsyncMessages, adapter, "anthropic.messages", patches)
        try:
            from anthropic.resources.beta.messages.messages import AsyncMessages as BetaAsync
            from anthropic.resources.beta.messages.messages import Messages as BetaMessages
        except ImportError:  # an SDK without beta messages
            pass
        else:
            _patch_messages(BetaMessages, BetaAsync, adapter, "anthropic.beta.messages", patches)
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
