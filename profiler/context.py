"""The active span: a :class:`contextvars.ContextVar`, so parent/child links follow the code through
``await``, ``asyncio.gather``, ``asyncio.create_task`` (tasks copy the context) and, while a profile is
active, ``ThreadPoolExecutor.submit`` (patched to run the work in a copy of the caller's context).

This module is the bottom of the recording layer: span ids, clocks, the current span, closing a span,
and context propagation into threads. It knows nothing of profiles or decorators.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from tokprof.profiler.model import Run, Span

CURRENT: contextvars.ContextVar[Span | None] = contextvars.ContextVar("tokprof_current_span", default=None)
"""The innermost span of this context (possibly finished: see :func:`current_span`)."""

SPAN_IDS = map("{:x}".format, itertools.count(1))
"""Span ids: hex of a process-wide counter, formatted in C (this is on every traced call)."""
perf_ns = time.perf_counter_ns
wall_ns = time.time_ns


def _live(span: Span | None) -> Span | None:
    """The innermost *unfinished* span at or above ``span``.

    A span activated by hand (a callback handler's start event) should be deactivated by its end event,
    but some frameworks deliver the end event in a copied context (LangChain's async ``agenerate`` ends runs
    inside ``asyncio.gather`` tasks), leaving the finished span current in the caller's context. A finished
    span is never a parent: we step back to the span that was active before it.

    Except a profile's root (no parent, a run to go to): reached here, this context was copied while the
    profile was open (an ``asyncio`` task, a thread started inside it) and runs on after the block exited.
    Its spans are still that run's (written after the end line, marked ``finished_after_profile``); stepping
    past the root lost them, and their tokens, entirely. The caller's own context is reset on exit and never
    sees the root."""
    while span is not None and span.end_ns is not None:
        if span.parent_id is None and getattr(span, "_sink", None) is not None:
            return span
        span = getattr(span, "_prev", None)
    return span


def current_span() -> Span | None:
    """The innermost active span, or ``None`` outside a profile."""
    span = CURRENT.get()
    return span if span is None or span.end_ns is None else _live(span)


def current_run() -> Run | None:
    """The run the innermost active span belongs to, or ``None`` outside a profile."""
    span = current_span()
    return span._sink.run if span is not None and span._sink is not None else None


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, bounded (a span's ``error``)."""
    try:
        return f"{type(exc).__name__}: {exc}"[:2000]
    except Exception:
        return type(exc).__name__


def end_span(span: Span | None, error: BaseException | str | None = None) -> None:
    """Close ``span`` (no-op for ``None``), recording ``error`` if given, and hand it to its run."""
    if span is None or span.end_ns is not None:
        return
    span.end_ns = perf_ns()
    if error is not None:
        span.status = "error"
        span.error = error if isinstance(error, str) else describe_exception(error)
    sink = span._sink
    if sink is not None:
        sink.finish(span)


def activate(span: Span | None) -> contextvars.Token[Span | None] | None:
    """Make ``span`` current; returns a token for :func:`deactivate`."""
    if span is None:
        return None
    span._prev = CURRENT.get()
    return CURRENT.set(span)


def deactivate(token: contextvars.Token[Span | None] | None) -> None:
    """Undo :func:`activate` (tolerates a token reset from another context)."""
    if token is not None:
        try:
            CURRENT.reset(token)
        except ValueError:  # reset from another context (callback handlers may do this); fall back
            pass


def push_span(span: Span) -> None:
    """Make ``span`` current without a token, remembering the previous one (for callback handlers whose
    start and end events may run in different contexts; undo with :func:`pop_span`)."""
    span._prev = CURRENT.get()
    CURRENT.set(span)


def pop_span(span: Span) -> None:
    """Undo :func:`push_span` if ``span`` is still the current span of this context."""
    if CURRENT.get() is span:
        CURRENT.set(getattr(span, "_prev", None))


# ---------------------------------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------------------------------
_thread_patch_lock = threading.Lock()
_thread_patch_depth = 0
ORIGINAL_SUBMIT = ThreadPoolExecutor.submit
"""``ThreadPoolExecutor.submit`` as it was before any profile patched it."""


def _make_context_submit(below: Callable[..., Any], layer: list[bool]) -> Callable[..., Any]:
    """``submit`` running the work in a copy of the caller's context, on top of ``below`` (whatever
    ``submit`` was when the profile began: the stdlib's, or another library's wrapper)."""

    def _context_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not layer[0] or CURRENT.get() is None:
            return below(self, fn, *args, **kwargs)
        ctx = contextvars.copy_context()
        return below(self, ctx.run, fn, *args, **kwargs)

    return _context_submit


_submit_patch: tuple[Any, Any, list[bool]] | None = None  # (what we wrapped, our wrapper, its on switch)


def patch_threads() -> None:
    """Make ``ThreadPoolExecutor.submit`` carry the caller's context (reference-counted)."""
    global _thread_patch_depth, _submit_patch
    with _thread_patch_lock:
        if _thread_patch_depth == 0:
            # Wrap whatever is there now (another tracer's wrapper included) and undo only our own layer.
            below = ThreadPoolExecutor.__dict__["submit"]
            layer = [True]
            ours = _make_context_submit(below, layer)
            ThreadPoolExecutor.submit = ours  # type: ignore[method-assign]
            _submit_patch = (below, ours, layer)
        _thread_patch_depth += 1


def unpatch_threads() -> None:
    """Undo one :func:`patch_threads`; the last one restores the original ``submit``."""
    global _thread_patch_depth, _submit_patch
    with _thread_patch_lock:
        _thread_patch_depth -= 1
        if _thread_patch_depth == 0 and _submit_patch is not None:
            below, ours, layer = _submit_patch
            if ThreadPoolExecutor.__dict__.get("submit") is ours:
                ThreadPoolExecutor.submit = below  # type: ignore[method-assign]
            else:  # another library wrapped ours meanwhile: keep theirs, make ours a pass-through
                layer[0] = False
            _submit_patch = None


def run_in_context(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fn`` so it runs in a copy of the *current* context: for ``threading.Thread(target=...)`` or
    executors other than ``ThreadPoolExecutor``, so their spans nest under the caller."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def runner(*args: Any, **kwargs: Any) -> Any:
        return ctx.run(fn, *args, **kwargs)

    return runner
