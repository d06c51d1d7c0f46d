"""``@trace``: a function, coroutine, generator or async generator recorded as a span.

The wrappers are the hot path of the profiler (every traced call): the plain-function wrapper inlines
everything it can, and module globals are bound once (``_perf``, ``_wall``, ``_ids``).
"""

from __future__ import annotations

import functools
import inspect
import sys
from typing import Any, Callable, TypeVar, overload

from tokprof.profiler.context import CURRENT, SPAN_IDS, current_span, describe_exception, perf_ns, wall_ns
from tokprof.profiler.model import Span
from tokprof.profiler.policy import internal_error
from tokprof.profiler.session import IMPLICIT_ENV, implicit_root, on_profile_exit, open_implicit_root
from tokprof.profiler.capture import (
    PLAIN,
    REPR_LIMIT,
    capture_args,
    capture_value,
    safe_repr,
)

F = TypeVar("F", bound=Callable[..., Any])

# Bound here, not looked up on ``context`` per call: the hot path reads module globals only.
_ids = SPAN_IDS
_perf = perf_ns
_wall = wall_ns
_new = object.__new__


# -- recursion headroom ------------------------------------------------------------------------------
# Each traced level is two Python frames (the wrapper and the user's function), so a traced recursion would
# hit the interpreter's limit at half the depth the user's code reaches untraced. The wrapper tracks how many
# @trace levels deep it is (``Span._depth``) and, past ``_granted`` levels, raises the limit by that many
# frames on top of the limit the user set: the user's own frames keep the budget they had. The limit goes
# back to the user's value when the profile exits.
_HEADROOM_STEP = 64
_granted = 16  # traced levels covered without touching the limit (a small constant of lost depth)
_user_limit: int | None = None  # the limit as the user set it, while tokprof has raised it
_our_limit = 0  # the last limit tokprof set


def _grant(depth: int) -> None:
    """Cover ``depth`` traced levels (and ``_HEADROOM_STEP`` more) with extra recursion limit."""
    global _granted, _user_limit, _our_limit
    try:
        current = sys.getrecursionlimit()
        if _user_limit is None or current != _our_limit:
            _user_limit = current  # first grant, or the user changed the limit since
        wanted = _user_limit + depth + _HEADROOM_STEP
        if wanted > current:
            sys.setrecursionlimit(wanted)
            _our_limit = wanted
        _granted = depth + _HEADROOM_STEP
    except Exception as exc:  # never break the call over headroom
        internal_error("raising the recursion limit", exc)
        _granted = sys.maxsize


def _ungrant(depth: int) -> None:
    """The traced level at ``depth`` that raised the limit returns: back to what its caller's level needed
    (the user's own limit once below the first grant), so untraced code after a deep traced recursion gets
    no more depth than the user set."""
    global _granted, _user_limit, _our_limit
    if _user_limit is None or sys.getrecursionlimit() != _our_limit:
        _user_limit, _granted = None, 16  # the user changed the limit meanwhile: theirs stands
        return
    if depth - 1 <= 16:
        sys.setrecursionlimit(_user_limit)
        _user_limit, _granted = None, 16
    else:
        lower = _user_limit + depth - 1
        sys.setrecursionlimit(lower)  # raises RecursionError when still too deep: the state stays as it was
        _our_limit, _granted = lower, depth - 1


def _restore_limit(_prof: Any = None) -> None:
    """Profile exit hook: give the user back the recursion limit they set (unless they changed it since)."""
    global _granted, _user_limit
    if _user_limit is None:
        return
    try:
        if sys.getrecursionlimit() == _our_limit:
            sys.setrecursionlimit(_user_limit)
    except RecursionError:  # still deep (a profile exited from inside a recursion): keep the headroom
        return
    _user_limit = None
    _granted = 16


on_profile_exit(_restore_limit)


_outside = 0
"""Traced calls in progress outside any profile (they pass straight through to the user's function, still
two frames per level), over all threads: a module global, not a ``threading.local`` (5x the cost per call,
measured). With several threads passing through at once it over-counts, which only grants more headroom
(the limit is interpreter-wide anyway); ``+= 1`` / ``-= 1`` on an int are not interrupted by a thread switch
in CPython 3.11-3.12 (no thread switch between the load and the store), so the count does not drift."""


def _pass_through(f: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """A traced call outside any profile: nothing is recorded, but the wrapper and this frame would cut the
    depth a recursion reaches to a third, so past 16 levels two frames per level are granted (as inside a
    profile, where it is one per level). Kept out of the wrapper: inlined there, its locals and exception
    handlers cost every traced call inside a profile ~0.8 µs (bench_overhead 0.080-0.088 vs 0.064-0.072)."""
    global _outside
    _outside += 1
    frames = 2 * _outside
    raised = frames > _granted
    if raised:
        _grant(frames)
    try:
        return f(*args, **kwargs)
    finally:
        _outside -= 1
        if raised:
            try:
                _ungrant(frames - 1)  # back to the 2 * (level - 1) frames the level below needs
            except RecursionError:  # still too deep to lower it: a level above gives it back
                pass


@overload
def trace(fn: F) -> F: ...
@overload
def trace(*, name: str | None = None, kind: str = "function", capture: bool = True,
          tags: dict[str, str] | None = None) -> Callable[[F], F]: ...


def trace(
    fn: Any = None,
    *,
    name: str | None = None,
    kind: str = "function",
    capture: bool = True,
    tags: dict[str, str] | None = None,
) -> Any:
    """Trace a function as a span. Bare (``@trace``) or configured (``@trace(name=..., kind="tool")``).

    Works on sync and async functions, generators and async generators (the span ends when the generator
    is exhausted or closed), methods, classmethods and staticmethods. Signature, name and docstring are
    kept. ``capture=False`` records no arguments or return value.
    """

    def decorate(f: Any) -> Any:
        if isinstance(f, (classmethod, staticmethod)):
            return type(f)(decorate(f.__func__))
        return _wrap(f, name or _default_name(f), kind, capture, tags)

    if fn is None:
        return decorate
    return decorate(fn)


def _default_name(f: Any) -> str:
    """``Class.method`` for methods, the plain name for functions (nested ones lose their ``<locals>``)."""
    qual = getattr(f, "__qualname__", None) or getattr(f, "__name__", None) or "call"
    return qual.rsplit("<locals>.", 1)[-1]


def _open(parent: Span, name: str, kind: str, tags: dict[str, str] | None, capture: bool, args: tuple,
          kwargs: dict) -> Span:
    s = Span(next(_ids), parent.span_id, parent.run_id, kind, name, _perf(), _wall(), None, "ok", None,
             None, tags)
    s._sink = parent._sink
    if capture and (args or kwargs):
        try:
            s.attributes = capture_args(args, kwargs)
        except Exception as exc:
            internal_error("capturing arguments", exc)
    return s


def _close(s: Span, capture: bool, result: Any = None, exc: BaseException | None = None) -> None:
    s.end_ns = _perf()
    if exc is not None:
        s.status = "error"
        s.error = describe_exception(exc)
    elif capture and result is not None:
        try:
            if s.attributes is None:
                s.attributes = {}
            s.attributes["return"] = capture_value(result)
        except Exception as err:
            internal_error("capturing the return value", err)
    try:
        s._sink.finish(s)
    except Exception as err:
        internal_error("finishing a span", err)


def _parent_or_none() -> Span | None:
    parent = current_span()
    if parent is None:
        parent = open_implicit_root()
        if parent is None and IMPLICIT_ENV:
            return implicit_root()
    return parent


def _wrap(f: Callable[..., Any], name: str, kind: str, capture: bool, tags: dict[str, str] | None) -> Any:
    get = CURRENT.get
    setv = CURRENT.set
    reset = CURRENT.reset

    if inspect.isasyncgenfunction(f):

        @functools.wraps(f)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            parent = get()
            if parent is None or parent.end_ns is not None:
                parent = _parent_or_none()
            if parent is None:
                async for item in f(*args, **kwargs):
                    yield item
                return
            s = _open(parent, name, kind, tags, capture, args, kwargs)
            agen = f(*args, **kwargs)
            error: BaseException | None = None
            try:
                to_send: Any = None
                method = agen.asend
                while True:
                    token = setv(s)
                    try:
                        item = await method(to_send)
                    except StopAsyncIteration:
                        return
                    finally:
                        reset(token)
                    try:
                        to_send = yield item
                        method = agen.asend
                    except GeneratorExit:
                        await agen.aclose()
                        raise
                    except BaseException as thrown:  # forward athrow() to the user's generator
                        to_send = thrown
                        method = agen.athrow
            except GeneratorExit:
                raise
            except BaseException as exc:
                error = exc
                raise
            finally:
                _close(s, False, None, error)

        return agen_wrapper

    if inspect.isgeneratorfunction(f):

        @functools.wraps(f)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            parent = get()
            if parent is None or parent.end_ns is not None:
                parent = _parent_or_none()
            if parent is None:
                return (yield from f(*args, **kwargs))
            s = _open(parent, name, kind, tags, capture, args, kwargs)
            gen = f(*args, **kwargs)
            error: BaseException | None = None
            result: Any = None
            try:
                to_send: Any = None
                method = gen.send
                while True:
                    token = setv(s)
                    try:
                        item = method(to_send)
                    except StopIteration as stop:
                        result = stop.value
                        return result
                    finally:
                        reset(token)
                    try:
                        to_send = yield item
                        method = gen.send
                    except GeneratorExit:
                        gen.close()
                        raise
                    except BaseException as thrown:  # forward throw() to the user's generator
                        to_send = thrown
                        method = gen.throw
            except GeneratorExit:
                raise
            except BaseException as exc:
                error = exc
                raise
            finally:
                _close(s, capture, result, error)

        return gen_wrapper

    if inspect.iscoroutinefunction(f):

        @functools.wraps(f)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            parent = get()
            if parent is None or parent.end_ns is not None:
                parent = _parent_or_none()
            if parent is None:
                return await f(*args, **kwargs)
            s = _open(parent, name, kind, tags, capture, args, kwargs)
            token = setv(s)
            try:
                result = await f(*args, **kwargs)
            except BaseException as exc:
                reset(token)
                _close(s, capture, None, exc)
                raise
            reset(token)
            _close(s, capture, result)
            return result

        return async_wrapper

    # The plain-function path is the hot one: everything inlined, no helper calls but the user's (a frame
    # per helper would cost time on every call and a level of recursion depth).
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parent = get()
        if parent is None or parent.end_ns is not None:
            parent = _parent_or_none()
            if parent is None:
                return _pass_through(f, args, kwargs)
        attrs: dict[str, Any] | None = None
        if capture and (args or kwargs):
            if not kwargs and len(args) == 1:
                # The common call shape, without a comprehension (a new frame per call in 3.11).
                a = args[0]
                t = type(a)
                attrs = {"args": (a if t in PLAIN or (t is str and len(a) <= REPR_LIMIT) else safe_repr(a),)}
            else:
                attrs = capture_args(args, kwargs)
        # Span.__init__ inlined: the slots set here, without a Python frame for __init__ (twice as fast).
        s = _new(Span)
        s.span_id = next(_ids)
        s.parent_id = parent.span_id
        s.run_id = parent.run_id
        s.kind = kind
        s.name = name
        s._sink = sink = parent._sink
        s.start_ns = start = _perf()
        s.wall_start_ns = start + sink.wall_offset
        s.end_ns = None
        s.status = "ok"
        s.error = None
        s.attributes = attrs
        s.tags = tags
        s.llm = None
        s._depth = depth = parent._depth + 1
        granted = depth > _granted
        if granted:
            _grant(depth)
        token = setv(s)
        try:
            result = f(*args, **kwargs)
        except BaseException as exc:
            reset(token)
            if granted:
                try:
                    _ungrant(depth)
                except RecursionError:
                    pass
            try:
                _close(s, capture, None, exc)
            except RecursionError:
                # At the very limit even closing the span needs frames: keep what is known and let the
                # user's exception pass unchanged; the span is recorded as it stands.
                s.end_ns = _perf()
                s.status = "error"
                s.error = "RecursionError"
                sink.run.spans.append(s)
            raise
        s.end_ns = _perf()
        reset(token)
        if granted:
            _ungrant(depth)
        if capture and result is not None:
            t = type(result)
            value = result if (t in PLAIN or (t is str and len(result) <= REPR_LIMIT)) else safe_repr(result)
            if s.attributes is None:  # (the user's code may have set attributes on its span meanwhile)
                s.attributes = {"return": value}
            else:
                s.attributes["return"] = value
        append = sink.append
        if append is not None and s.llm is None:
            append(s)  # the plain collector's whole finish(), as one C call
        else:
            try:
                sink.finish(s)
            except Exception as err:
                internal_error("finishing a span", err)
        return result

    return wrapper
