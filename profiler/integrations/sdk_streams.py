"""Streams and raw responses of an instrumented SDK call: each chunk observed as the caller reads it, the
span ended when the stream is exhausted, closed or abandoned."""

from __future__ import annotations

import inspect
import threading
from typing import Any, Iterator, AsyncIterator
from tokprof.profiler.hooks import internal_error, on_profile_exit
from tokprof.profiler.integrations.sdk_state import Accumulator, CallState

_open: dict[int, tuple[CallState, Accumulator]] = {}
"""Streams handed to the caller and not ended yet (by ``id`` of their call state). A stream the caller never
reads, or leaves when its own exception unwinds the loop, is ended only when its generator is collected,
which the traceback delays past the profile's exit: the call was then missing from the run ("0 LLM calls").
Such streams are ended at their profile's exit instead (marked incomplete)."""
_open_lock = threading.Lock()
_OPEN_MAX = 1024


def _track(state: CallState, acc: Accumulator) -> None:
    if state.span is None:
        return
    with _open_lock:
        if len(_open) >= _OPEN_MAX:  # streams outside any exiting profile (an implicit run): keep it bounded
            for key in [k for k, (st, _) in _open.items() if st.done]:
                del _open[key]
        _open[id(state)] = (state, acc)


def _untrack(state: CallState) -> None:
    with _open_lock:
        _open.pop(id(state), None)


@on_profile_exit
def end_open_streams(prof: Any) -> None:
    """End the streams of this profile's run that are still open (see :data:`_open`)."""
    run_id = prof.run.run_id
    with _open_lock:
        mine = [key for key, (st, _) in _open.items() if st.span is not None and st.span.run_id == run_id]
        ended = [_open.pop(key) for key in mine]
    for state, acc in ended:
        state.end_stream(acc, None, False)


def wrap_stream(state: CallState, stream: Any, *, is_async: bool = False) -> Any:
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


def wrap_async_stream(state: CallState, stream: Any) -> Any:
    return wrap_stream(state, stream, is_async=True)


def _observe_item(state: CallState, acc: Accumulator, item: Any) -> bool:
    """Record one event; ``True`` when the caller should not see it."""
    try:
        acc.observe(item)
        return state.hide is not None and state.hide(item)
    except Exception as exc:
        internal_error(f"{state.adapter.api} stream event", exc)
        return False


def observe_sync(state: CallState, acc: Accumulator, inner: Iterator[Any]) -> Iterator[Any]:
    """``inner`` with each event recorded; the span ends when it is exhausted, fails, is closed or collected,
    or at the profile's exit (registered here, before the caller reads anything)."""
    _track(state, acc)
    return _observe_sync(state, acc, inner)


def observe_async(state: CallState, acc: Accumulator, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """:func:`observe_sync` for an async stream."""
    _track(state, acc)
    return _observe_async(state, acc, inner)


def _observe_sync(state: CallState, acc: Accumulator, inner: Iterator[Any]) -> Iterator[Any]:
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
        _untrack(state)
        state.end_stream(acc, error, complete)


async def _observe_async(state: CallState, acc: Accumulator, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
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
        _untrack(state)
        state.end_stream(acc, error, complete)


def watch_raw(state: CallState, response: Any) -> Any:
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


async def async_watch_raw(state: CallState, response: Any) -> Any:
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


def _raw_parsed(state: CallState, response: Any, parsed: Any, *, is_async: bool) -> Any:
    if state.kwargs.get("stream") and hasattr(parsed, "_iterator"):
        wrap_stream(state, parsed, is_async=is_async)
        _end_on_close(state, response)
    else:
        state.finish(parsed)
    return response


def _end_on_close(state: CallState, response: Any) -> None:
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
