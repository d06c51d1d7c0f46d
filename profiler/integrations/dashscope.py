"""Alibaba's native DashScope SDK (``pip install dashscope``): ``dashscope.Generation.call`` and
``dashscope.AioGeneration.call``, streamed (``stream=True``) or not.

Both are *classmethods* (``Generation.call(model=..., messages=...)``), so the patch installs a classmethod
that calls whatever was there before through the descriptor protocol (another tracer's wrapper included)
and removes only its own layer on exit.

DashScope's own usage block (https://help.aliyun.com/en/model-studio/qwen-api-via-dashscope, the
"DashScope API reference"; cache fields on https://www.alibabacloud.com/help/en/model-studio/context-cache):
``input_tokens`` (the whole prompt, cached part included: ``total_tokens = input_tokens + output_tokens``),
``output_tokens``, ``total_tokens``, ``prompt_tokens_details.cached_tokens`` (implicit-cache hits, or
explicit-cache hits), ``prompt_tokens_details.cache_creation_input_tokens`` (explicit cache writes) and, in
thinking mode, ``output_tokens_details.reasoning_tokens``. It is renamed to the OpenAI-compatible shape Qwen
also serves and read by :func:`usage_dialects.chat_usage`, so both Qwen routes are read the same way.

Streams: every SSE event carries the usage so far of the choice it is about (cumulative: the last block of a
choice is that choice's total), so the last block per choice index wins, and with ``n`` > 1 the choices' output
tokens are added up, the prompt counted once. This is how the SDK itself merges a stream
(``dashscope/utils/message_utils.py``, ``merge_single_response``: ``usage_by_index[idx] = usage``, then
``sum(output_tokens)``); Alibaba's stream page (https://www.alibabacloud.com/help/en/model-studio/stream)
bills a stream exactly like the same call unstreamed. With ``incremental_output=True`` each event carries the new text only and the pieces are
joined; otherwise each event carries the whole text so far and the last one is kept.

The SDK never raises for an API error: it returns a response whose ``status_code`` is not 200. Such a call is
recorded as failed (span status ``error``, naming the HTTP status and DashScope's error code) and the response
is handed back unchanged. The SDK also builds a usage of ``0``/``0`` when the server sent none: a block without
``total_tokens`` whose counts are both 0 is taken as "no usage" (counted locally, labelled), never as truth.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from tokprof.profiler.hooks import end_span
from tokprof.profiler.integrations import _sdk, usage_dialects
from tokprof.profiler.integrations.openai import as_plain
from tokprof.profiler.integrations.sdk_patching import Patch, Layer
from tokprof.profiler.model import LLMCall, Message, Usage

PROVIDER = "alibaba"
API = "dashscope.generation"
_PARAMS = ("temperature", "top_p", "top_k", "max_tokens", "seed", "stop", "repetition_penalty",
           "presence_penalty", "result_format", "incremental_output", "enable_search", "enable_thinking",
           "thinking_budget", "n", "tool_choice", "parallel_tool_calls", "response_format")
_POSITIONAL = ("model", "prompt", "history", "api_key", "messages")
"""``Generation.call``'s leading parameters (after ``cls``), for calls that pass them positionally."""


def dashscope_usage(usage: Any) -> Usage | None:
    """tokprof usage from a DashScope ``usage`` block; ``None`` when the server reported none."""
    u = usage_dialects.plain(usage)
    if not isinstance(u, dict) or not u:
        return None
    if u.get("total_tokens") is None and not u.get("input_tokens") and not u.get("output_tokens"):
        return None  # the SDK's GenerationUsage() defaults (0, 0) when the response had no usage at all
    chat: dict[str, Any] = {"prompt_tokens": u.get("input_tokens"), "completion_tokens": u.get("output_tokens"),
                            "total_tokens": u.get("total_tokens")}
    if u.get("prompt_tokens_details") is not None:
        chat["prompt_tokens_details"] = usage_dialects.plain(u["prompt_tokens_details"])
    details = u.get("output_tokens_details") or u.get("completion_tokens_details")
    if details is not None:
        chat["completion_tokens_details"] = usage_dialects.plain(details)
    return usage_dialects.chat_usage(chat)


def _status(response: Any) -> int | None:
    try:
        return int(getattr(response, "status_code", 200))
    except (TypeError, ValueError):
        return None


def _error_text(response: Any) -> str:
    # the code only (e.g. "InvalidParameter"): DashScope's message may quote the user's input
    return f"DashScope API error: HTTP {getattr(response, 'status_code', '?')} {getattr(response, 'code', '') or ''}".strip()


def _choice(response: Any) -> tuple[Any, Any]:
    """(message, finish_reason) of the first choice; ``result_format="text"`` answers have ``output.text``."""
    output = getattr(response, "output", None)
    if output is None:
        return None, None
    choices = getattr(output, "choices", None) or []
    if choices:
        return as_plain(getattr(choices[0], "message", None)), getattr(choices[0], "finish_reason", None)
    text = getattr(output, "text", None)
    return ({"role": "assistant", "content": text} if text is not None else None), getattr(output, "finish_reason", None)


def parts_text(content: Any) -> Any:
    """A multimodal answer's content (``[{"text": ...}, ...]``: MultiModalConversation) as its text; other
    content unchanged."""
    if isinstance(content, list) and content and all(isinstance(p, dict) for p in content):
        texts = [p["text"] for p in content if isinstance(p.get("text"), str)]
        if len(texts) == len(content):
            return "".join(texts)
    return content


def _message(raw: Any) -> Message | None:
    if not isinstance(raw, dict):
        return None
    out: Message = {"role": raw.get("role") or "assistant", "content": parts_text(raw.get("content"))}
    if raw.get("tool_calls"):
        out["tool_calls"] = raw["tool_calls"]
    return out


def _choice_index(chunk: Any) -> int:
    choices = getattr(getattr(chunk, "output", None), "choices", None) or []
    try:
        return int(choices[0].get("index", 0) or 0) if choices and isinstance(choices[0], dict) else 0
    except (TypeError, ValueError):
        return 0


def _combine(blocks: list[Any]) -> Any:
    """One usage block from the last block of each choice: the prompt once, the outputs added up."""
    if len(blocks) <= 1:
        return blocks[0] if blocks else None
    plain = [usage_dialects.plain(b) for b in blocks]
    first = dict(plain[0])
    outputs = [b.get("output_tokens") for b in plain]
    if all(isinstance(o, int) for o in outputs):
        first["output_tokens"] = sum(outputs)
        first.pop("output_tokens_details", None)  # per-choice reasoning is not added up: left unknown
        if isinstance(first.get("input_tokens"), int):
            first["total_tokens"] = first["input_tokens"] + first["output_tokens"]
    return first


class _Acc:
    """Rebuilds a streamed answer and keeps the last (cumulative) usage block."""

    def __init__(self, incremental: bool, state: Any) -> None:
        self.incremental = incremental
        self.state = state
        self.text: list[str] = []
        self.tool_calls: list[Any] = []
        self.finish_reason: Any = None
        self.usage: dict[int, Any] = {}
        """choice index -> the last (cumulative) usage block seen for it"""
        self.request_id: str | None = None
        self.error: str | None = None

    def observe(self, chunk: Any) -> None:
        self.request_id = getattr(chunk, "request_id", None) or self.request_id
        if _status(chunk) != 200:
            self.error = _error_text(chunk)
            return
        if getattr(chunk, "usage", None):
            self.usage[_choice_index(chunk)] = chunk.usage
        raw, reason = _choice(chunk)
        if _choice_index(chunk) != 0:
            return  # the answer recorded is the first choice's
        self.finish_reason = reason or self.finish_reason
        msg = raw if isinstance(raw, dict) else {}
        content = parts_text(msg.get("content"))
        if isinstance(content, str):
            if self.incremental:
                self.text.append(content)
            else:
                self.text = [content]
        if msg.get("tool_calls"):
            self.tool_calls = (self.tool_calls + list(msg["tool_calls"])) if self.incremental else list(msg["tool_calls"])

    def finish(self, call: LLMCall) -> None:
        message: Message = {"role": "assistant", "content": "".join(self.text) or None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        call.output = message
        call.finish_reason = None if self.finish_reason is None else str(self.finish_reason)
        call.response_id = self.request_id
        usage = dashscope_usage(_combine(list(self.usage.values())))
        if usage is not None:
            call.usage = usage
        span = getattr(self.state, "span", None)
        if self.error and span is not None:
            span.status, span.error = "error", self.error  # end_span keeps a status set before it


class GenerationAdapter:
    api = API

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        messages = [as_plain(m) for m in kwargs.get("messages") or []]
        if kwargs.get("prompt"):  # the SDK appends ``prompt`` as the last user message
            messages.append({"role": "user", "content": kwargs["prompt"]})
        return LLMCall(provider=PROVIDER, model=str(kwargs["model"]) if kwargs.get("model") else None,
                       params={k: as_plain(kwargs[k]) for k in _PARAMS if kwargs.get(k) is not None},
                       messages=messages, tools=[as_plain(t) for t in kwargs.get("tools") or []])

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # every event already carries the usage so far

    def fill(self, call: LLMCall, response: Any) -> None:
        raw, reason = _choice(response)
        call.output = _message(raw)
        call.finish_reason = None if reason is None else str(reason)
        call.response_id = getattr(response, "request_id", None)
        usage = dashscope_usage(getattr(response, "usage", None))
        if usage is not None:
            call.usage = usage

    def accumulator(self) -> _Acc:
        return _Acc(False, None)


_ADAPTER = GenerationAdapter()


def _finish(state: Any, result: Any) -> Any:
    if _status(result) == 200:
        return state.finish(result)
    # a failed call, returned rather than raised: recorded like a raised one (no answer, no usage read, and
    # the response-cache middleware never sees it), and handed back unchanged
    if state.span is not None and not state.done:
        state.done = True
        end_span(state.span, _error_text(result))
    return result


def _sync_call(original: Any, name: str, adapter: Any = None,
           positional: tuple[str, ...] = _POSITIONAL) -> Callable[..., Any]:
    """The inner function of a layered ``call`` classmethod; ``adapter`` / ``positional``: another
    DashScope class of the same shape (``MultiModalConversation``: :mod:`.dashscope_multimodal`)."""
    adapter = adapter or _ADAPTER

    def call(cls: type, *args: Any, **kwargs: Any) -> Any:
        bound = original.__get__(None, cls)
        if len(args) > len(positional):
            return bound(*args, **kwargs)  # an unusual call shape: leave it alone
        state = _sdk.begin(adapter, {**dict(zip(positional, args)), **kwargs}, name=name)
        if state.cached is not None:
            return state.cached
        try:
            result = bound(**state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        if state.span is None:
            return result
        if state.kwargs.get("stream") and inspect.isgenerator(result):
            return _sdk.observe_sync(state, _Acc(bool(state.kwargs.get("incremental_output")), state), result)
        return _finish(state, result)

    return call


def _async_call(original: Any, name: str, adapter: Any = None,
            positional: tuple[str, ...] = _POSITIONAL) -> Callable[..., Any]:
    """The inner function of a layered ``call`` classmethod; ``adapter`` / ``positional``: another
    DashScope class of the same shape (``MultiModalConversation``: :mod:`.dashscope_multimodal`)."""
    adapter = adapter or _ADAPTER

    async def call(cls: type, *args: Any, **kwargs: Any) -> Any:
        bound = original.__get__(None, cls)
        if len(args) > len(positional):
            return await bound(*args, **kwargs)
        state = _sdk.begin(adapter, {**dict(zip(positional, args)), **kwargs}, name=name)
        if state.cached is not None:
            return state.cached
        try:
            result = await bound(**state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        if state.span is None:
            return result
        if state.kwargs.get("stream") and inspect.isasyncgen(result):
            return _sdk.observe_async(state, _Acc(bool(state.kwargs.get("incremental_output")), state), result)
        return _finish(state, result)

    return call


def patch_classmethod(owner: type, attr: str, make: Callable[[Any, str], Callable[..., Any]], name: str) -> Patch:
    """Wrap the classmethod ``owner.attr`` (or whatever descriptor stands there) in a layered classmethod:
    :func:`tokprof.profiler.integrations.sdk_patching.unpatch` puts the original back, or turns this layer into
    a pass-through when another library wrapped it since."""
    original = owner.__dict__[attr]
    inner = make(original, name)
    layer = Layer()
    if inspect.iscoroutinefunction(inner):
        @functools.wraps(inner)
        async def outer_async(cls: type, *args: Any, **kwargs: Any) -> Any:
            if layer.active:
                return await inner(cls, *args, **kwargs)
            return await original.__get__(None, cls)(*args, **kwargs)
        func: Callable[..., Any] = outer_async
    else:
        @functools.wraps(inner)
        def outer(cls: type, *args: Any, **kwargs: Any) -> Any:
            if layer.active:
                return inner(cls, *args, **kwargs)
            return original.__get__(None, cls)(*args, **kwargs)
        func = outer
    func.__wrapped__ = original  # type: ignore[attr-defined]  # what this layer sits on
    func.__tokprof_layer__ = layer  # type: ignore[attr-defined]
    wrapper = classmethod(func)
    setattr(owner, attr, wrapper)
    return Patch(owner, attr, original, wrapper, layer)


def patch() -> list[Patch]:
    """Patch ``Generation.call`` and ``AioGeneration.call`` (2.x's client: :mod:`.dashscope_client`, whose
    ``patch()`` is the one ``instrument("dashscope")`` calls and includes these)."""
    from dashscope.aigc.generation import AioGeneration, Generation

    patches: list[Patch] = []
    try:
        patches.append(patch_classmethod(Generation, "call", _sync_call, "dashscope.Generation.call"))
        patches.append(patch_classmethod(AioGeneration, "call", _async_call, "dashscope.AioGeneration.call"))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
