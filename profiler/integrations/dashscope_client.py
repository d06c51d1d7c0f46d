"""dashscope 2.x's client API: ``dashscope.Client(...).chat.completions.create`` and ``dashscope.AsyncClient``'s,
streamed (``stream=True``) or not. Its :func:`patch` is the ``dashscope`` SDK's: it patches ``Generation.call``
(:mod:`.dashscope`) too; dashscope 1.x has no client, only the classmethods.

The client hands back typed objects (``ChatCompletion``, ``ChatStream`` of ``ChatCompletionChunk``) whose
``usage`` keeps DashScope's native names (``input_tokens``, ``output_tokens``, ``total_tokens``) and passes the
rest of the wire block through (``prompt_tokens_details.cached_tokens``...): it is read by
:func:`tokprof.profiler.integrations.dashscope.dashscope_usage`, the same reader as ``Generation.call``'s.

A ``ChatStream`` iterates the transport stream it wraps (``_inner``); that object is swapped for a thin proxy
whose iteration is watched, so the caller keeps the very same ``ChatStream`` (``text_stream``,
``get_final_message``, ``headers`` and ``close`` all go through). The last usage block per choice wins (each
event's usage is cumulative); with ``incremental_output=False`` on the wire each event carries the whole text
so far and the last one is kept, otherwise the pieces are joined.
"""

from __future__ import annotations

from typing import Any, Callable

from tokprof.profiler.hooks import internal_error
from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations import dashscope as _generation
from tokprof.profiler.integrations.dashscope import PROVIDER, _PARAMS, _combine, dashscope_usage
from tokprof.profiler.integrations.openai import as_plain
from tokprof.profiler.model import LLMCall, Message

API = "dashscope.chat.completions"


class _Acc:
    """Rebuilds the first choice of a streamed answer; keeps each choice's last usage block."""

    def __init__(self, cumulative: bool) -> None:
        self.cumulative = cumulative
        self.text: list[str] = []
        self.tool_calls: list[Any] = []
        self.finish_reason: str | None = None
        self.usage: dict[int, Any] = {}
        self.request_id: str | None = None
        self.model: str | None = None

    def observe(self, chunk: Any) -> None:
        self.request_id = getattr(chunk, "request_id", None) or self.request_id
        self.model = getattr(chunk, "model", None) or self.model
        choices = getattr(chunk, "choices", None) or []
        index = int(getattr(choices[0], "index", 0) or 0) if choices else 0
        if getattr(chunk, "usage", None) is not None:
            self.usage[index] = chunk.usage
        if not choices or index != 0:
            return
        self.finish_reason = getattr(choices[0], "finish_reason", None) or self.finish_reason
        delta = getattr(choices[0], "delta", None)
        content = getattr(delta, "content", None)
        if isinstance(content, str):
            self.text = [content] if self.cumulative else self.text + [content]
        calls = getattr(delta, "tool_calls", None)
        if calls:
            plain = [as_plain(c) for c in calls]
            self.tool_calls = plain if self.cumulative else self.tool_calls + plain

    def finish(self, call: LLMCall) -> None:
        message: Message = {"role": "assistant", "content": "".join(self.text) or None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        call.output = message
        call.finish_reason = self.finish_reason
        call.response_id = self.request_id
        usage = dashscope_usage(_combine(list(self.usage.values())))
        if usage is not None:
            call.usage = usage


class ClientAdapter:
    api = API

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        messages = kwargs.get("messages")
        if isinstance(messages, str):  # the client takes a bare string as the user's message
            messages = [{"role": "user", "content": messages}]
        return LLMCall(provider=PROVIDER, model=str(kwargs["model"]) if kwargs.get("model") else None,
                       params={k: as_plain(kwargs[k]) for k in _PARAMS if kwargs.get(k) is not None},
                       messages=[as_plain(m) for m in messages or []],
                       tools=[as_plain(t) for t in kwargs.get("tools") or []])

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # every event already carries the usage so far

    def fill(self, call: LLMCall, response: Any) -> None:
        choices = getattr(response, "choices", None) or []
        if choices:
            call.output = as_plain(choices[0].message)
            call.finish_reason = getattr(choices[0], "finish_reason", None)
        call.response_id = getattr(response, "request_id", None)
        usage = dashscope_usage(getattr(response, "usage", None))
        if usage is not None:
            call.usage = usage

    def accumulator(self) -> _Acc:
        return _Acc(False)


_ADAPTER = ClientAdapter()


class _Watched:
    """Stands in for a ``ChatStream``'s transport stream: the same object for everything but iteration."""

    def __init__(self, inner: Any, state: _sdk.CallState, acc: _Acc) -> None:
        self._tokprof_inner, self._tokprof_state, self._tokprof_acc = inner, state, acc

    def __iter__(self) -> Any:
        return _sdk.observe_sync(self._tokprof_state, self._tokprof_acc, iter(self._tokprof_inner))

    def __aiter__(self) -> Any:
        return _sdk.observe_async(self._tokprof_state, self._tokprof_acc, self._tokprof_inner.__aiter__())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tokprof_inner, name)


def _watch(state: _sdk.CallState, chat_stream: Any) -> Any:
    acc = None
    try:
        acc = _Acc(bool(getattr(chat_stream, "_server_cumulative", False)))
        chat_stream._inner = _Watched(chat_stream._inner, state, acc)
    except Exception as exc:
        internal_error(f"{API} stream", exc)
        state.end_stream(acc, None, False)
    return chat_stream


def _sync(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    return _sdk.sync_create(_ADAPTER, original, name, stream_wrapper=_watch)


def _async(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    return _sdk.async_create(_ADAPTER, original, name, stream_wrapper=_watch)


def patch() -> list[_sdk.Patch]:
    """Patch every DashScope entry point: ``Generation.call`` / ``AioGeneration.call`` (:mod:`.dashscope`) and,
    on dashscope 2.x, the client's chat completions. This is the patch ``instrument("dashscope")`` runs."""
    patches: list[_sdk.Patch] = list(_generation.patch())
    try:
        from tokprof.profiler.integrations import embeddings

        patches.extend(embeddings.patch_dashscope())
        from tokprof.profiler.integrations import dashscope_multimodal

        patches.extend(dashscope_multimodal.patch())
    except BaseException:
        _sdk.unpatch(patches)
        raise
    try:
        from dashscope.v2.resources.chat.completions import AsyncCompletions, Completions
    except ImportError:  # dashscope 1.x: the classmethods only
        return patches
    name = "dashscope.chat.completions.create"
    try:
        patches.append(_sdk.patch(Completions, "create", lambda f: _sync(f, name)))
        patches.append(_sdk.patch(AsyncCompletions, "create", lambda f: _async(f, name)))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
