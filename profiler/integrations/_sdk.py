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
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, AsyncIterator, Protocol

from tokprof.profiler import hooks
from tokprof.profiler.hooks import end_span, internal_error, start_span
from tokprof.profiler.integrations import middleware
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
    done: bool = False
    transformed: list[str] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        if self.span is not None and not self.done:
            self.done = True
            end_span(self.span, exc)

    def finish(self, response: Any) -> Any:
        """Record a complete (non-streamed) response; returns it unchanged."""
        try:
            if self.span is not None and self.span.llm is not None:
                self.adapter.fill(self.span.llm, response)
        except Exception as exc:
            internal_error(f"{self.adapter.api} response", exc)
        if self.span is not None and not self.done:
            self.done = True
            end_span(self.span)
        if not self.kwargs.get("stream"):
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
            if not complete and error is None:
                self.span.set_attribute("stream_incomplete", True)
        except Exception as exc:
            internal_error(f"{self.adapter.api} stream end", exc)
        end_span(self.span, error)


def begin(adapter: Adapter, kwargs: dict[str, Any], *, name: str, streaming_helper: bool = False) -> _State:
    """Middleware, span and stream preparation before the real call. Never raises."""
    state = _State(adapter, kwargs)
    try:
        headers = kwargs.get("extra_headers") or {}
        if _RAW_HEADER in headers or _RAW_HEADER.lower() in headers:
            # ``with_raw_response`` calls get the HTTP response object back; leave them alone.
            return state
        if middleware.middlewares():
            state.kwargs, state.transformed = middleware.apply_before(adapter.api, kwargs)
        stream = streaming_helper or bool(state.kwargs.get("stream"))
        if not stream and middleware.middlewares():
            state.cached, served_by = middleware.apply_lookup(adapter.api, state.kwargs)
        parent = hooks.current_span() or hooks._implicit_root()
        if parent is None or parent.kind == "llm":
            # Outside a profile there is nothing to record. Inside a model span (LangChain's ChatOpenAI
            # ...) the call is already recorded: recording it again would count its tokens twice.
            return state
        call = adapter.request(state.kwargs)
        span = start_span(name, "llm", parent=parent, llm=call)
        state.span = span
        if span is None:
            return state
        if state.transformed:
            span.set_attribute("transformed_by", list(state.transformed))
        if state.cached is not None:
            span.set_attribute("served_from", served_by)
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
        observe = _observe_async if is_async else _observe_sync
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


def _observe_sync(state: _State, acc: Accumulator, inner: Iterator[Any]) -> Iterator[Any]:
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


async def _observe_async(state: _State, acc: Accumulator, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
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
