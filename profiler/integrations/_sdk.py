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
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, AsyncIterator, Protocol

from tokprof.profiler import hooks
from tokprof.profiler.hooks import end_span, internal_error, start_span
from tokprof.profiler import keys
from tokprof.profiler.integrations import middleware, usage_dialects
from tokprof.profiler.model import LLMCall, Span, Usage

_RAW_HEADER = "X-Stainless-Raw-Response"


class Accumulator(Protocol):
    """Collects a streamed response, event by event."""

    def observe(self, item: Any) -> None: ...

    def finish(self, call: LLMCall) -> None:
        """Write the output message, usage, response id and finish reason seen so far into ``call``."""


class Adapter(Protocol):
    """How one SDK endpoint's requests and responses map onto an :class:`LLMCall`."""

    api: str
    """``openai.chat.completions``, ``openai.responses``, ``anthropic.messages``."""

    def request(self, kwargs: dict[str, Any]) -> LLMCall: ...

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        """Adjust a streaming request (e.g. ask for usage); returns the kwargs and a predicate of events to
        hide from the caller (those only tokprof asked for), or ``None``."""

    def fill(self, call: LLMCall, response: Any) -> None: ...

    def accumulator(self) -> Accumulator: ...


@dataclass
class _State:
    """One instrumented call in flight."""

    adapter: Adapter
    kwargs: dict[str, Any]
    span: Span | None = None
    hide: Callable[[Any], bool] | None = None
    cached: Any = None
    raw: str | None = None
    """``"true"`` (``with_raw_response``) or ``"stream"`` (``with_streaming_response``): the call returns the
    HTTP response wrapper, which is recorded through its parsed body (see :func:`watch_raw`)."""
    done: bool = False
    transformed: list[str] = field(default_factory=list)
    enriches: Span | None = None
    """The model span above this call (LangChain, litellm) that gets the usage read here."""

    def _usage_read(self) -> None:
        assert self.span is not None and self.span.llm is not None
        if self.enriches is None:
            check_usage(self.span)
            return
        usage = self.span.llm.usage
        if set(usage.sources.values()) == {"provider"}:
            usage_dialects.reconcile(self.span.llm)
            _stash(self.enriches, usage)

    def fail(self, exc: BaseException) -> None:
        if self.span is not None and not self.done:
            self.done = True
            end_span(self.span, exc)

    def finish(self, response: Any) -> Any:
        """Record a complete (non-streamed) response; returns it unchanged."""
        try:
            if self.span is not None and self.span.llm is not None:
                self.adapter.fill(self.span.llm, response)
                self._usage_read()
        except Exception as exc:
            internal_error(f"{self.adapter.api} response", exc)
        if self.span is not None and not self.done:
            self.done = True
            end_span(self.span)
        if not self.kwargs.get("stream") and self.raw is None:
            middleware.apply_after(self.adapter.api, self.kwargs, response)
        return response

    def end_stream(self, acc: Accumulator | None, error: BaseException | None, complete: bool) -> None:
        if self.done:
            return
        self.done = True
        if self.span is None:
            return
        try:
            if self.span.llm is not None and acc is not None:
                acc.finish(self.span.llm)
                self._usage_read()
            if not complete and error is None:
                self.span.set_attribute(keys.STREAM_INCOMPLETE, True)
        except Exception as exc:
            internal_error(f"{self.adapter.api} stream end", exc)
        end_span(self.span, error)


_sdk_usage: dict[str, Usage] = {}
"""Model span id -> the usage its SDK call reported (see :func:`take_sdk_usage`)."""
_SDK_USAGE_MAX = 1024


def _stash(span: Span, usage: Usage) -> None:
    if len(_sdk_usage) >= _SDK_USAGE_MAX:  # a layer above that never takes it: keep the newest only
        _sdk_usage.pop(next(iter(_sdk_usage)))
    previous = _sdk_usage.get(span.span_id)
    # several SDK calls under one model span (a retry...): all of them were billed
    _sdk_usage[span.span_id] = usage if previous is None else previous + usage


def take_sdk_usage(span: Span | None) -> Usage | None:
    """The usage that SDK calls made under ``span`` (a LangChain / litellm model span) reported, read in the
    provider's own dialect; ``None`` when no instrumented SDK call happened underneath."""
    if span is None:
        return None
    return _sdk_usage.pop(span.span_id, None)


def check_usage(span: Span) -> None:
    """Partial provider usage is not truth: reconcile it, or say on the span why it was dropped; a response
    with no usage at all says so too (local counting fills it, labelled)."""
    call = span.llm
    if call is None:
        return
    if not (call.usage.known("input_tokens") or call.usage.known("output_tokens")):
        span.set_attribute("usage_note", usage_dialects.estimate_missing(call))
        return
    note = usage_dialects.reconcile(call)
    if note:
        span.set_attribute("usage_note", note)


def begin(adapter: Adapter, kwargs: dict[str, Any], *, name: str, streaming_helper: bool = False) -> _State:
    """Middleware, span and stream preparation before the real call. Never raises."""
    state = _State(adapter, kwargs)
    try:
        headers = kwargs.get("extra_headers") or {}
        raw = headers.get(_RAW_HEADER, headers.get(_RAW_HEADER.lower())) if isinstance(headers, dict) else None
        if raw is not None:
            # with_raw_response / with_streaming_response: the caller gets the HTTP response wrapper back, so
            # the live middleware (which may answer from a cache or rewrite the answer) stays out of it; the
            # call is still recorded, from the parsed body.
            state.raw = str(raw)
        elif middleware.middlewares():
            state.kwargs, state.transformed = middleware.apply_before(adapter.api, kwargs)
        stream = streaming_helper or bool(state.kwargs.get("stream"))
        if not stream and middleware.middlewares():
            state.cached, served_by = middleware.apply_lookup(adapter.api, state.kwargs)
        parent = hooks.current_span() or hooks.implicit_root()
        if parent is None:
            return state  # outside a profile there is nothing to record
        call = adapter.request(state.kwargs)
        if parent.kind == "llm":
            # Inside a model span (LangChain's ChatOpenAI, litellm...) the call is already recorded:
            # recording it again would count its tokens twice. It is watched on a detached span (never
            # handed to the run) and its usage, read here in the provider's own dialect, is passed up
            # (take_sdk_usage): the layer above may have lost dialect fields or a stream's usage.
            state.enriches = parent
            span = Span("sdk-" + parent.span_id, parent.span_id, parent.run_id, "llm", name, hooks.perf_ns(),
                        hooks.wall_ns(), None, "ok", None, None, None, call)
        else:
            span = start_span(name, "llm", parent=parent, llm=call)
        state.span = span
        if span is None:
            return state
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
        internal_error(f"{adapter.api} request", exc)
    return state


def wrap_stream(state: _State, stream: Any, *, is_async: bool = False) -> Any:
    """Swap ``stream._iterator`` for one that records the events; returns the same stream object (so
    ``isinstance``, ``with`` and ``.response`` behave as before)."""
    if state.span is None:
        return stream
    acc = None
    try:
        acc = state.adapter.accumulator()
        observe = observe_async if is_async else observe_sync
        stream._iterator = observe(state, acc, stream._iterator)
    except Exception as exc:
        internal_error(f"{state.adapter.api} stream", exc)
        state.end_stream(acc, None, False)  # the accumulator built, if any: building it again may fail again
    return stream


def wrap_async_stream(state: _State, stream: Any) -> Any:
    return wrap_stream(state, stream, is_async=True)


def _observe_item(state: _State, acc: Accumulator, item: Any) -> bool:
    """Record one event; ``True`` when the caller should not see it."""
    try:
        acc.observe(item)
        return state.hide is not None and state.hide(item)
    except Exception as exc:
        internal_error(f"{state.adapter.api} stream event", exc)
        return False


def observe_sync(state: _State, acc: Accumulator, inner: Iterator[Any]) -> Iterator[Any]:
    error: BaseException | None = None
    complete = False
    try:
        for item in inner:
            if _observe_item(state, acc, item):
                continue
            yield item
        complete = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        state.end_stream(acc, error, complete)


async def observe_async(state: _State, acc: Accumulator, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
    error: BaseException | None = None
    complete = False
    try:
        async for item in inner:
            if _observe_item(state, acc, item):
                continue
            yield item
        complete = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        state.end_stream(acc, error, complete)


def watch_raw(state: _State, response: Any) -> Any:
    """Record a ``with_raw_response`` / ``with_streaming_response`` call from its response wrapper.

    The wrapper's ``parse()`` caches its result per type, so parsing it here hands the caller the very same
    object later: a complete body is recorded now; a ``Stream`` gets its iterator watched like any stream.
    If the caller never parses (reads bytes instead), closing the response ends the span, marked incomplete."""
    try:
        parsed = response.parse()
    except Exception as exc:
        internal_error(f"{state.adapter.api} raw response", exc)
        state.end_stream(None, None, False)
        return response
    return _raw_parsed(state, response, parsed, is_async=False)


async def async_watch_raw(state: _State, response: Any) -> Any:
    """:func:`watch_raw` for the async client (whose ``with_streaming_response`` ``parse()`` is a coroutine)."""
    try:
        parsed = response.parse()
        if hasattr(parsed, "__await__"):
            parsed = await parsed
    except Exception as exc:
        internal_error(f"{state.adapter.api} raw response", exc)
        state.end_stream(None, None, False)
        return response
    return _raw_parsed(state, response, parsed, is_async=True)


def _raw_parsed(state: _State, response: Any, parsed: Any, *, is_async: bool) -> Any:
    if state.kwargs.get("stream") and hasattr(parsed, "_iterator"):
        wrap_stream(state, parsed, is_async=is_async)
        _end_on_close(state, response)
    else:
        state.finish(parsed)
    return response


def _end_on_close(state: _State, response: Any) -> None:
    """Closing the response wrapper ends the span (a no-op once the stream was read to its end)."""
    original = getattr(response, "close", None)
    if original is None:
        return
    if inspect.iscoroutinefunction(original):
        async def aclose(*a: Any, **k: Any) -> Any:
            try:
                return await original(*a, **k)
            finally:
                state.end_stream(None, None, False)

        response.close = aclose
    else:
        def close(*a: Any, **k: Any) -> Any:
            try:
                return original(*a, **k)
            finally:
                state.end_stream(None, None, False)

        response.close = close


# ---------------------------------------------------------------------------------------------------
# method wrappers
# ---------------------------------------------------------------------------------------------------
def sync_create(adapter: Adapter, original: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrapper of a sync ``create`` (returns a response, or a ``Stream`` when ``stream=True``)."""

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = begin(adapter, kwargs, name=name)
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
            return wrap_stream(state, result)
        return state.finish(result)

    create.__tokprof_original__ = original  # type: ignore[attr-defined]
    return create


def async_create(adapter: Adapter, original: Callable[..., Any], name: str) -> Callable[..., Any]:
    """Wrapper of an async ``create`` (returns a response, or an ``AsyncStream`` when ``stream=True``)."""

    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = begin(adapter, kwargs, name=name)
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
            return wrap_async_stream(state, result)
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


class _Layer:
    """Whether one installed wrapper still does tokprof's work (a wrapper that cannot be removed, because
    another library wrapped on top of it, is switched to a pass-through instead)."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


@dataclass
class Patch:
    owner: type
    attr: str
    original: Any
    """The object found in ``owner.__dict__`` when patching — whatever was current, possibly another
    library's wrapper (restored as is, so identity checks hold)."""
    wrapper: Any = None
    layer: _Layer | None = None


def patch(owner: type, attr: str, make: Callable[[Any], Any]) -> Patch:
    """Wrap whatever ``owner.attr`` is now (the SDK's method or another tracer's wrapper of it)."""
    import inspect

    original = owner.__dict__[attr]
    inner = make(original)
    if isinstance(inner, property):  # a descriptor (patch_raw_accessors): installed as is, no call layer
        setattr(owner, attr, inner)
        return Patch(owner, attr, original, inner, None)
    layer = _Layer()
    if inspect.iscoroutinefunction(inner):
        @functools.wraps(inner)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await (inner if layer.active else original)(*args, **kwargs)
    else:
        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return (inner if layer.active else original)(*args, **kwargs)
    wrapper.__wrapped__ = original  # type: ignore[attr-defined]  # what this layer sits on
    wrapper.__tokprof_layer__ = layer  # type: ignore[attr-defined]
    setattr(owner, attr, wrapper)
    return Patch(owner, attr, original, wrapper, layer)


def unpatch(patches: list[Patch]) -> None:
    """Remove only tokprof's own layer: when it is still the outermost, put back what it wrapped; when
    another library wrapped it meanwhile, leave their wrapper in place and make ours a pass-through
    (removing it would drop theirs too)."""
    for p in reversed(patches):
        current = p.owner.__dict__.get(p.attr)
        if p.wrapper is None or current is p.wrapper:
            setattr(p.owner, p.attr, p.original)
        elif p.layer is not None:
            p.layer.active = False


def patch_raw_accessors(owner: type) -> list[Patch]:
    """Make ``owner.with_raw_response`` / ``with_streaming_response`` build their wrapper on every access.

    The SDK caches them (``cached_property``), and the wrapper binds ``create`` when it is built: one built
    before instrumenting would call the unpatched method for ever. A ``property`` is a data descriptor, so
    it also wins over a wrapper already cached in an instance's ``__dict__``. Unpatching restores the
    ``cached_property``."""
    patches: list[Patch] = []
    for attr in ("with_raw_response", "with_streaming_response"):
        original = owner.__dict__.get(attr)
        func = getattr(original, "func", None)  # functools.cached_property keeps the function here
        if func is None:
            continue
        patches.append(patch(owner, attr, lambda _orig, f=func: property(f)))
    return patches
