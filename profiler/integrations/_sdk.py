"""The machinery shared by the OpenAI and Anthropic SDK patches.

A patch replaces one method on an SDK resource class (``Completions.create``...) by a wrapper that, around
the original call: runs the middleware (``tokprof.profiler.integrations.middleware``), opens an ``llm`` span with
the request (converted by a provider :class:`Adapter`), and closes it with the response and its usage. A
streamed response keeps its identity: the wrapper swaps the stream object's internal ``_iterator`` for one
that watches the events go by (and may hide events the caller did not ask for), so ``isinstance`` checks,
``with`` blocks and ``.response`` on the caller's side behave exactly as before.

Never break the user's call: everything tokprof does is guarded and falls back to the plain call; the
SDK's own exceptions propagate unchanged and are recorded on the span.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

from tokprof.profiler import hooks
from tokprof.profiler.hooks import end_span, internal_error, start_span
from tokprof.profiler import keys
from tokprof.profiler.integrations import middleware
from tokprof.profiler.model import Span, Usage
from tokprof.profiler.integrations.sdk_state import (
    Accumulator, Adapter, CallState, check_usage, IN_SDK_CALL, RAW_HEADER, take_sdk_usage
)
from tokprof.profiler.integrations.sdk_streams import (
    async_watch_raw, observe_async, observe_sync, watch_raw, wrap_async_stream, wrap_stream
)
from tokprof.profiler.integrations.sdk_patching import patch, Patch, patch_raw_accessors, unpatch

# The public names of this module, including those re-exported from the modules it was split into.
__all__ = ["Accumulator", "Adapter", "async_create", "async_watch_raw", "CallState", "begin", "check_usage", "observe_async", "observe_sync", "Patch",
           "patch", "patch_raw_accessors", "served_copy", "sync_create", "take_sdk_usage", "unpatch", "watch_raw", "wrap_async_stream", "wrap_stream"]


def begin(adapter: Adapter, kwargs: dict[str, Any], *, name: str, streaming_helper: bool = False,
          resource: Any = None) -> CallState:
    """Middleware, span and stream preparation before the real call. Never raises. ``resource``: the SDK
    object the method was called on (its client's base URL says which provider an OpenAI-compatible call
    went to: :func:`tokprof.profiler.providers.hosts.call_provider`)."""
    state = CallState(adapter, kwargs)
    IN_SDK_CALL.set(state)  # its HTTP requests are this call's: the HTTP-level fallback leaves them to it
    operation = getattr(adapter, "operation", None)
    """Not a chat turn (``"embeddings"``): marked on the span, and left alone by the live middleware."""
    try:
        headers = kwargs.get("extra_headers") or {}
        raw = headers.get(RAW_HEADER, headers.get(RAW_HEADER.lower())) if isinstance(headers, dict) else None
        if raw is not None:
            # with_raw_response / with_streaming_response: the caller gets the HTTP response wrapper back, so
            # the live middleware (which may answer from a cache or rewrite the answer) stays out of it; the
            # call is still recorded, from the parsed body.
            state.raw = str(raw)
        elif middleware.middlewares() and operation is None:  # live passes rewrite chat requests only
            state.kwargs, state.transformed = middleware.apply_before(adapter.api, kwargs)
        stream = streaming_helper or bool(state.kwargs.get("stream"))
        if not stream and middleware.middlewares() and operation is None:
            state.cached, served_by = middleware.apply_lookup(adapter.api, state.kwargs)
        parent = hooks.current_span() or hooks.implicit_root()
        if parent is None:
            return state  # outside a profile there is nothing to record
        call = adapter.request(state.kwargs)
        if resource is not None and call.provider == "openai":
            call.provider = _provider_behind(resource, call.model)
        if parent.kind == "llm":
            # Inside a model span (LangChain's ChatOpenAI, litellm...) the call is already recorded:
            # recording it again would count its tokens twice. It is watched on a detached span (never
            # handed to the run) and its usage, read here in the provider's own dialect, is passed up
            # (take_sdk_usage): the layer above may have lost dialect fields or a stream's usage.
            state.enriches = parent
            span: Span | None = Span("sdk-" + parent.span_id, parent.span_id, parent.run_id, "llm", name, hooks.perf_ns(),
                        hooks.wall_ns(), None, "ok", None, None, None, call)
        else:
            span = start_span(name, "llm", parent=parent, llm=call)
        state.span = span
        if span is None:
            return state
        if operation is not None:
            span.set_attribute(keys.LLM_OPERATION, operation)
        if state.transformed:
            span.set_attribute(keys.TRANSFORMED_BY, list(state.transformed))
        if state.cached is not None:
            span.set_attribute(keys.SERVED_BY, served_by)
            adapter.fill(call, state.cached)
            # No provider was called: nothing was billed, and the provider reported nothing. The zeros are
            # tokprof's own observation ("counted"), the cached answer's usage is kept apart (issue #21).
            span.set_attribute("cached_usage", call.usage.to_dict())
            call.usage = Usage()
            call.usage.set("input_tokens", 0, "counted")
            call.usage.set("output_tokens", 0, "counted")
            if served_by == "tokprof-live":  # tokprof's own cache: the caller's copy says it was served
                state.cached = served_copy(state.cached, "tokprof-live response-cache")
            state.done = True
            end_span(span)
            return state
        if stream and not streaming_helper:
            # Usage is asked for on raw-response streams too: the extra chunk is hidden from ``parse()``'s
            # stream; only a caller reading the raw bytes (``iter_lines``) sees the documented usage chunk.
            state.kwargs, state.hide = adapter.prepare_stream(state.kwargs)
    except Exception as exc:
        state.internal_failure = True  # the HTTP fallback may still record the call, but says nothing more
        internal_error(f"{adapter.api} request", exc)
    return state


def _provider_behind(resource: Any, model: str | None) -> str:
    """The provider an OpenAI-dialect call on ``resource`` went to, from its client's base URL (OpenAI's own
    when there is none to read)."""
    client = getattr(resource, "_client", None)
    url = getattr(client, "base_url", None) if client is not None else None
    if url is None:
        return "openai"
    from tokprof.profiler.providers.hosts import call_provider

    return call_provider(url, model, "openai")


# ---------------------------------------------------------------------------------------------------
# method wrappers
# ---------------------------------------------------------------------------------------------------
def sync_create(adapter: Adapter, original: Callable[..., Any], name: str,
                stream_wrapper: Callable[[CallState, Any], Any] | None = None) -> Callable[..., Any]:
    """Wrapper of a sync ``create`` (returns a response, or a ``Stream`` when ``stream=True``).
    ``stream_wrapper``: how this SDK's stream object is watched (default: the OpenAI-shaped
    :func:`wrap_stream`; the native SDKs, whose streams differ, pass their own)."""
    watch_stream = stream_wrapper or wrap_stream

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = begin(adapter, kwargs, name=name, resource=self)
        if state.cached is not None:
            return state.cached
        try:
            result = original(self, *args, **state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        if state.raw is not None and state.span is not None:
            return watch_raw(state, result)
        if state.kwargs.get("stream") and state.span is not None:
            return watch_stream(state, result)
        return state.finish(result)

    create.__tokprof_original__ = original  # type: ignore[attr-defined]
    return create


def async_create(adapter: Adapter, original: Callable[..., Any], name: str,
                 stream_wrapper: Callable[[CallState, Any], Any] | None = None) -> Callable[..., Any]:
    """Wrapper of an async ``create`` (returns a response, or an ``AsyncStream`` when ``stream=True``);
    ``stream_wrapper`` as in :func:`sync_create`."""
    watch_stream = stream_wrapper or wrap_async_stream

    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = begin(adapter, kwargs, name=name, resource=self)
        if state.cached is not None:
            return state.cached
        try:
            result = await original(self, *args, **state.kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        if state.raw is not None and state.span is not None:
            return await async_watch_raw(state, result)
        if state.kwargs.get("stream") and state.span is not None:
            return watch_stream(state, result)
        return state.finish(result)

    create.__tokprof_original__ = original  # type: ignore[attr-defined]
    return create


# ---------------------------------------------------------------------------------------------------
# patching classes and undoing it exactly
# ---------------------------------------------------------------------------------------------------
def served_copy(response: Any, served_by: str = "response-cache") -> Any:
    """A copy of a cached SDK response that says it was served by a cache: its usage counts are zero (no
    request reached the provider, nothing was billed), ``tokprof_served_by`` names the cache, and the
    stored answer's own usage is kept as ``tokprof_cached_usage``. Never raises."""
    try:
        out = response.model_copy(deep=True)
        usage = getattr(out, "usage", None)
        if usage is not None:
            try:
                _set_extra(out, "tokprof_cached_usage", usage.model_dump(mode="json"))
            except Exception:
                pass
            for f in ("prompt_tokens", "completion_tokens", "total_tokens", "input_tokens", "output_tokens",
                      "cache_read_input_tokens", "cache_creation_input_tokens"):
                if getattr(usage, f, None) is not None:
                    object.__setattr__(usage, f, 0)
        _set_extra(out, "tokprof_served_by", served_by)
        return out
    except Exception:  # an object we cannot copy is served as it is
        return response


def _set_extra(model: Any, name: str, value: Any) -> None:
    """An extra field on an SDK response model (they allow extras): readable as an attribute and part of
    ``model_dump()``, so a caller serialising the response keeps the label."""
    extra = getattr(model, "__pydantic_extra__", None)
    if isinstance(extra, dict):
        extra[name] = value
    else:
        object.__setattr__(model, name, value)


