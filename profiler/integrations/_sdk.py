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
from tokprof.profiler import keys
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
        parent = hooks.current_span() or hooks.implicit_root()
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
            span.set_attribute(keys.SERVED_BY, served_by)
            adapter.fill(call, state.cached)
            call.usage = Usage.from_provider(input_tokens=0, output_tokens=0)
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
@dataclass
class Patch:
    owner: type
    attr: str
    original: Any
    """The object found in ``owner.__dict__`` (restored as is, so identity checks hold)."""


def patch(owner: type, attr: str, make: Callable[[Any], Any]) -> Patch:
    original = owner.__dict__[attr]
    setattr(owner, attr, make(original))
    return Patch(owner, attr, original)


def unpatch(patches: list[Patch]) -> None:
    for p in reversed(patches):
        setattr(p.owner, p.attr, p.original)
