"""Google Gemini through ``google-genai``: ``models.generate_content`` and ``generate_content_stream``, sync
and async (``client.aio.models``).

Each HTTP call is one span: the SDK's private ``_generate_content`` / ``_generate_content_stream`` are
wrapped, because the public methods may make several calls (automatic function calling, continuations);
on an SDK without them the public methods are wrapped instead. Usage comes from ``usage_metadata``
(read by :func:`usage_dialects.gemini_usage`: cached content, thoughts billed as output); a stream sends
it cumulatively, so the last report wins. Requests are recorded in OpenAI chat format (``model`` role as
``assistant``, ``system_instruction`` as the system message, function declarations as tools).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from tokprof.profiler.integrations import _sdk, usage_dialects
from tokprof.profiler.integrations.openai import as_plain, is_given
from tokprof.profiler.model import LLMCall, Message

PROVIDER = "google"
_PARAMS = ("temperature", "top_p", "top_k", "max_output_tokens", "stop_sequences", "seed", "candidate_count",
           "response_mime_type", "thinking_config", "cached_content")


def _parts_text(parts: Any) -> tuple[str, list[dict[str, Any]]]:
    """(text, tool calls) of a list of Gemini parts."""
    text: list[str] = []
    calls: list[dict[str, Any]] = []
    for raw in parts or []:
        p = as_plain(raw) if not isinstance(raw, str) else {"text": raw}
        if not isinstance(p, dict):
            continue
        if p.get("text") and not p.get("thought"):
            text.append(p["text"])
        fc = p.get("function_call") or p.get("functionCall")
        if fc:
            calls.append({"id": fc.get("id"), "type": "function",
                          "function": {"name": fc.get("name"), "arguments": json.dumps(fc.get("args") or {})}})
    return "".join(text), calls


def contents_to_messages(system: Any, contents: Any) -> list[Message]:
    """Gemini ``system_instruction`` + ``contents`` as OpenAI chat messages."""
    messages: list[Message] = []
    if is_given(system) and system:
        text = system if isinstance(system, str) else _parts_text(as_plain(system).get("parts")
                                                                  if isinstance(as_plain(system), dict) else system)[0]
        messages.append({"role": "system", "content": text})
    if isinstance(contents, str):
        return messages + [{"role": "user", "content": contents}]
    items = contents if isinstance(contents, list) else [contents]
    for raw in items:
        if isinstance(raw, str):
            messages.append({"role": "user", "content": raw})
            continue
        c = as_plain(raw)
        if not isinstance(c, dict):
            continue
        if "parts" not in c:  # a bare part
            c = {"role": "user", "parts": [c]}
        text, calls = _parts_text(c.get("parts"))
        role = "assistant" if c.get("role") == "model" else "user"
        msg: Message = {"role": role, "content": text or None}
        if calls:
            msg["tool_calls"] = calls
        messages.append(msg)
    return messages


def _tools(config: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for tool in config.get("tools") or []:
        t = as_plain(tool)
        if not isinstance(t, dict):  # a Python callable (automatic function calling)
            out.append({"type": "function", "function": {"name": getattr(tool, "__name__", str(tool))}})
            continue
        for fd in t.get("function_declarations") or []:
            out.append({"type": "function", "function": {k: fd[k] for k in ("name", "description", "parameters")
                                                         if fd.get(k) is not None}})
    return out


def _fill(call: LLMCall, response: Any) -> None:
    candidates = getattr(response, "candidates", None) or []
    if candidates:
        content = getattr(candidates[0], "content", None)
        text, calls = _parts_text(getattr(content, "parts", None))
        message: Message = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        call.output = message
        reason = getattr(candidates[0], "finish_reason", None)
        call.finish_reason = None if reason is None else str(getattr(reason, "value", reason))
    call.response_id = getattr(response, "response_id", None) or call.response_id
    call.model = getattr(response, "model_version", None) or call.model
    meta = getattr(response, "usage_metadata", None)
    if meta is not None:
        call.usage = usage_dialects.gemini_usage(as_plain(meta))


class _Acc:
    """Joins streamed text and keeps the last (cumulative) ``usage_metadata``."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: list[dict[str, Any]] = []
        self.last: Any = None
        self.meta: Any = None
        self.reason: str | None = None

    def observe(self, chunk: Any) -> None:
        self.last = chunk
        if getattr(chunk, "usage_metadata", None) is not None:
            self.meta = chunk.usage_metadata
        for cand in (getattr(chunk, "candidates", None) or [])[:1]:
            text, calls = _parts_text(getattr(getattr(cand, "content", None), "parts", None))
            self.text.append(text)
            self.calls.extend(calls)
            if getattr(cand, "finish_reason", None) is not None:
                self.reason = str(getattr(cand.finish_reason, "value", cand.finish_reason))
        blocked = getattr(getattr(chunk, "prompt_feedback", None), "block_reason", None)
        if blocked is not None and self.reason is None:
            # a blocked prompt ends the stream with no candidate: final, not cut
            # (https://ai.google.dev/api/generate-content#PromptFeedback)
            self.reason = "PROMPT_" + str(getattr(blocked, "value", blocked))

    def finish(self, call: LLMCall) -> None:
        message: Message = {"role": "assistant", "content": "".join(self.text) or None}
        if self.calls:
            message["tool_calls"] = self.calls
        call.output = message
        call.finish_reason = self.reason
        if self.last is not None:
            call.response_id = getattr(self.last, "response_id", None)
            call.model = getattr(self.last, "model_version", None) or call.model
        if self.meta is not None:
            call.usage = usage_dialects.gemini_usage(as_plain(self.meta))


class GenerateAdapter:
    api = "google.models.generate_content"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        config = as_plain(kwargs.get("config")) if is_given(kwargs.get("config")) else {}
        config = config if isinstance(config, dict) else {}
        model = str(kwargs.get("model") or "")
        return LLMCall(
            provider=PROVIDER,
            model=model.rsplit("/", 1)[-1] or None,  # "models/gemini-2.5-flash" -> "gemini-2.5-flash"
            params={k: config[k] for k in _PARAMS if config.get(k) is not None},
            messages=contents_to_messages(config.get("system_instruction"), kwargs.get("contents")),
            tools=_tools(config),
        )

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # every streamed chunk carries the cumulative usage_metadata

    def fill(self, call: LLMCall, response: Any) -> None:
        _fill(call, response)

    def accumulator(self) -> _Acc:
        return _Acc()


_ADAPTER = GenerateAdapter()


def _sync_call(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(_ADAPTER, kwargs, name=name)
        if state.cached is not None:
            return state.cached
        try:
            result = original(self, *args, **state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        return state.finish(result)

    generate.__tokprof_original__ = original  # type: ignore[attr-defined]
    return generate


def _async_call(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    async def generate(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(_ADAPTER, kwargs, name=name)
        if state.cached is not None:
            return state.cached
        try:
            result = await original(self, *args, **state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        return state.finish(result)

    generate.__tokprof_original__ = original  # type: ignore[attr-defined]
    return generate


def _sync_stream(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    def generate_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(_ADAPTER, kwargs, name=name, streaming_helper=True)
        if state.span is None:
            yield from original(self, *args, **kwargs)
            return
        try:
            inner = original(self, *args, **state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        yield from _sdk.observe_sync(state, _ADAPTER.accumulator(), iter(inner))

    generate_stream.__tokprof_original__ = original  # type: ignore[attr-defined]
    return generate_stream


def _async_stream(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    async def generate_stream(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(_ADAPTER, kwargs, name=name, streaming_helper=True)
        try:
            inner = await original(self, *args, **state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        if state.span is None:
            return inner
        return _sdk.observe_async(state, _ADAPTER.accumulator(), inner)

    generate_stream.__tokprof_original__ = original  # type: ignore[attr-defined]
    return generate_stream


def patch() -> list[_sdk.Patch]:
    """Patch google-genai's Models and AsyncModels."""
    from google.genai.models import AsyncModels, Models

    patches: list[_sdk.Patch] = []
    name, stream_name = "google.models.generate_content", "google.models.generate_content_stream"
    try:
        private = "_generate_content" in Models.__dict__ and "_generate_content_stream" in Models.__dict__
        call_attr, stream_attr = ("_generate_content", "_generate_content_stream") if private else (
            "generate_content", "generate_content_stream")
        patches.append(_sdk.patch(Models, call_attr, lambda f: _sync_call(f, name)))
        patches.append(_sdk.patch(Models, stream_attr, lambda f: _sync_stream(f, stream_name)))
        patches.append(_sdk.patch(AsyncModels, call_attr, lambda f: _async_call(f, name)))
        if private:
            patches.append(_sdk.patch(AsyncModels, stream_attr, lambda f: _async_stream(f, stream_name)))
        from tokprof.profiler.integrations import embeddings

        patches.extend(embeddings.patch_gemini())
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
