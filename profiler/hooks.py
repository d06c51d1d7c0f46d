"""Instrumentation hooks: ``@trace``, ``profile()``, and the low-level span API integrations use.

The active span lives in a :class:`contextvars.ContextVar`, so parent/child links follow the code through
``await``, ``asyncio.gather``, ``asyncio.create_task`` (tasks copy the context) and, while a profile is
active, ``ThreadPoolExecutor.submit`` (patched to run the work in a copy of the caller's context).

Outside a ``profile()`` a traced call costs one ``ContextVar.get`` and records nothing, unless the user
opts in to an implicit run with ``TOKPROF_IMPLICIT=1``.

Principle: never break the user's agent. Anything tokprof does around the user's call is guarded; a
failure is logged once per kind (see :func:`internal_error`) and swallowed. The user's own exceptions
pass through unchanged and are recorded on the span.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import inspect
import itertools
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar, overload

from tokprof.profiler.model import LLMCall, Message, Run, Span, Usage

log = logging.getLogger("tokprof")

F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Span | None] = contextvars.ContextVar("tokprof_current_span", default=None)
# Span ids: hex of a process-wide counter, formatted in C (this is on every traced call).
_ids = map("{:x}".format, itertools.count(1))
_perf = time.perf_counter_ns
_wall = time.time_ns

_REPR_LIMIT = 200

# ---------------------------------------------------------------------------------------------------
# internal error policy
# ---------------------------------------------------------------------------------------------------
_reported: set[str] = set()
_reported_lock = threading.Lock()


def internal_error(where: str, exc: BaseException) -> None:
    """Log an error inside tokprof once per ``where`` and swallow it."""
    try:
        with _reported_lock:
            if where in _reported:
                return
            _reported.add(where)
        # The exception's text can quote the user's content (a KeyError of a prompt, a JSON error with
        # the document): the warning names only the type (and an OS error's reason, which is ours).
        reason = type(exc).__name__
        if isinstance(exc, OSError) and exc.strerror:
            reason += f" ({exc.strerror})"
        log.warning("tokprof internal error in %s (ignored, your code is unaffected): %s", where, reason)
    except Exception:  # pragma: no cover - logging itself failed; there is nothing left to do
        pass


def _reset_internal_errors() -> None:
    """For tests: let every kind of internal error be logged again."""
    with _reported_lock:
        _reported.clear()


# ---------------------------------------------------------------------------------------------------
# the collector behind an active profile
# ---------------------------------------------------------------------------------------------------
class Collector:
    """Receives finished spans of one run; optionally streams them to a run file as they finish.

    ``capture=False`` strips payloads (messages, outputs, arguments, return values) from every span
    before it is kept or written; ``keep=False`` (with a writer) keeps only the root span in memory, so
    an endless run streams to disk in bounded memory. Both live in a subclass (:func:`make_collector`
    picks it), so the default collector's :meth:`finish`, on every traced call, does no extra work.
    """

    __slots__ = ("run", "writer", "_finish_hooks", "capture", "keep")

    def __init__(self, run: Run, writer: Any = None, *, capture: bool = True, keep: bool = True) -> None:
        self.run = run
        self.writer = writer
        self._finish_hooks: list[Callable[[Span], None]] = []
        self.capture = capture
        self.keep = keep or writer is None  # without a file, memory is the only place spans go

    def finish(self, span: Span) -> None:
        # list.append is atomic under the GIL: no lock on the hot path.
        self.run.spans.append(span)
        if span.llm is not None:
            for hook in self._finish_hooks:
                try:
                    hook(span)
                except Exception as exc:
                    internal_error("llm span hook", exc)
        if self.writer is not None:
            try:
                self.writer.write_span(span)
            except Exception as exc:
                internal_error("run writer", exc)


class FilteringCollector(Collector):
    """A :class:`Collector` for ``capture=False`` and/or ``keep=False``."""

    __slots__ = ()

    def finish(self, span: Span) -> None:
        if self.keep or span.parent_id is None:
            self.run.spans.append(span)
        if span.llm is not None:
            for hook in self._finish_hooks:
                try:
                    hook(span)
                except Exception as exc:
                    internal_error("llm span hook", exc)
        if not self.capture:
            # After the hooks (they may count tokens from the messages), before anything is written.
            try:
                strip_payloads(span)
            except Exception as exc:
                internal_error("dropping payloads (capture=False)", exc)
                return  # fail closed: a span whose payload could not be dropped is not written
        if self.writer is not None:
            try:
                self.writer.write_span(span)
            except Exception as exc:
                internal_error("run writer", exc)


def make_collector(run: Run, writer: Any = None, *, capture: bool = True, keep: bool = True) -> Collector:
    """The collector for a profile: the plain one unless payloads are off or spans are not kept."""
    cls = Collector if capture and (keep or writer is None) else FilteringCollector
    return cls(run, writer, capture=capture, keep=keep)


_PAYLOAD_NOTE = "tokprof.payload"
# Attributes that describe a span without quoting the user's data: kept when capture is off (an
# allowlist, so a payload attribute some integration adds later is dropped by default).
_METADATA_KEYS = frozenset({"langchain.run_id", "time_to_first_token_ns", "stream_incomplete", "transformed_by",
                            "served_from", "cached_usage", "documents", "billing"})
_METADATA_PREFIXES = ("tokprof.", "optimizer.")


def strip_payloads(span: Span) -> None:
    """Drop what the user's code said from ``span`` (``capture=False``): message contents, the model's
    output, arguments, return values and every attribute not known to be metadata (tool inputs/outputs,
    retrieved text...). Kept: the span's shape, timing, model, parameters, tool definitions, usage, error
    type, and metadata attributes (``tokprof.*``, ``optimizer.*``, cache and streaming markers)."""
    dropped = False
    attrs = span.attributes
    if attrs:
        kept = {k: v for k, v in attrs.items() if k in _METADATA_KEYS or k.startswith(_METADATA_PREFIXES)}
        dropped = len(kept) != len(attrs)
        span.attributes = kept or None
    llm = span.llm
    if llm is not None:
        if llm.messages:
            # Keep the roles: the shape of the conversation is not payload, and counts stay explainable.
            llm.messages = [{"role": m.get("role", "user") if isinstance(m, dict) else "user", "content": None}
                            for m in llm.messages]
        if llm.output is not None:
            llm.output = None
        dropped = True
    if dropped:
        span.set_attribute(_PAYLOAD_NOTE, "not captured")
    if span.error is not None and span.status == "error":
        # ``ValueError: <user data>`` -> ``ValueError``: the message can quote the payload.
        span.error = span.error.split(":", 1)[0]


def capture_enabled(capture: bool = True) -> bool:
    """Payload capture for a new profile: ``capture`` unless ``$TOKPROF_CAPTURE`` is ``0``/``false``/``no``."""
    return bool(capture) and os.environ.get("TOKPROF_CAPTURE", "1").strip().lower() not in ("0", "false", "no", "off")


# ---------------------------------------------------------------------------------------------------
# low-level span API (integrations, manual recording)
# ---------------------------------------------------------------------------------------------------
def _live(span: Span | None) -> Span | None:
    """The innermost *unfinished* span at or above ``span``.

    A span activated by hand (a callback handler's start event) should be deactivated by its end event,
    but some frameworks deliver the end event in a copied context (LangChain's async ``agenerate`` ends runs
    inside ``asyncio.gather`` tasks), leaving the finished span current in the caller's context. A finished
    span is never a parent: we step back to the span that was active before it."""
    while span is not None and span.end_ns is not None:
        span = getattr(span, "_prev", None)
    return span


def current_span() -> Span | None:
    """The innermost active span, or ``None`` outside a profile."""
    span = _current.get()
    return span if span is None or span.end_ns is None else _live(span)


def current_run() -> Run | None:
    span = current_span()
    return span._sink.run if span is not None and span._sink is not None else None


def start_span(
    name: str,
    kind: str = "function",
    *,
    parent: Span | None = None,
    attributes: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    llm: LLMCall | None = None,
) -> Span | None:
    """Open a span under ``parent`` (default: the current span). Returns ``None`` outside a profile.

    The span is *not* made current; use :func:`activate` for that, or :func:`span` as a context manager.
    Close it with :func:`end_span`.
    """
    if parent is None:
        parent = current_span()
        if parent is None:
            parent = _implicit_root()
            if parent is None:
                return None
    sink = parent._sink
    s = Span(next(_ids), parent.span_id, parent.run_id, kind, name, _perf(), _wall(), None, "ok", None,
             attributes, tags, llm)
    s._sink = sink
    return s


def end_span(span: Span | None, error: BaseException | str | None = None) -> None:
    """Close ``span`` (no-op for ``None``), recording ``error`` if given, and hand it to its run."""
    if span is None or span.end_ns is not None:
        return
    span.end_ns = _perf()
    if error is not None:
        span.status = "error"
        span.error = error if isinstance(error, str) else _describe_exception(error)
    sink = span._sink
    if sink is not None:
        sink.finish(span)


def activate(span: Span | None) -> contextvars.Token | None:
    """Make ``span`` current; returns a token for :func:`deactivate`."""
    if span is None:
        return None
    span._prev = _current.get()
    return _current.set(span)


def deactivate(token: contextvars.Token | None) -> None:
    if token is not None:
        try:
            _current.reset(token)
        except ValueError:  # reset from another context (callback handlers may do this); fall back
            pass


class span:
    """``with span("retrieve", kind="retriever") as s:`` — a span around a block of code."""

    __slots__ = ("_args", "_span", "_token")

    def __init__(self, name: str, kind: str = "function", **kwargs: Any) -> None:
        self._args = (name, kind, kwargs)
        self._span: Span | None = None
        self._token: contextvars.Token | None = None

    def __enter__(self) -> Span | None:
        name, kind, kwargs = self._args
        self._span = start_span(name, kind, **kwargs)
        self._token = activate(self._span)
        return self._span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        deactivate(self._token)
        end_span(self._span, exc)

    async def __aenter__(self) -> Span | None:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def record_llm_call(
    *,
    model: str,
    messages: Iterable[Message] = (),
    output: Message | str | None = None,
    usage: Usage | dict[str, int] | None = None,
    provider: str | None = None,
    tools: Iterable[dict[str, Any]] = (),
    params: dict[str, Any] | None = None,
    name: str | None = None,
    duration_ns: int | None = None,
    error: str | None = None,
) -> Span | None:
    """Record one model call made by code no integration covers.

    ``usage`` as a dict is taken as provider-reported (keys: ``input_tokens``, ``output_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``); counts it lacks are filled by
    local counting. Returns the finished span, or ``None`` outside a profile.
    """
    try:
        if isinstance(output, str):
            output = {"role": "assistant", "content": output}
        if isinstance(usage, dict):
            usage = Usage.from_provider(**usage)
        call = LLMCall(
            provider=provider,
            model=model,
            params=dict(params or {}),
            messages=[dict(m) for m in messages],
            tools=list(tools),
            output=output,
            usage=usage or Usage(),
        )
        s = start_span(name or model, "llm", llm=call)
        if s is None:
            return None
        if duration_ns is not None:
            s.start_ns -= duration_ns
            s.wall_start_ns -= duration_ns
        end_span(s, error)
        return s
    except Exception as exc:
        internal_error("record_llm_call", exc)
        return None


def _describe_exception(exc: BaseException) -> str:
    try:
        return f"{type(exc).__name__}: {exc}"[:2000]
    except Exception:
        return type(exc).__name__


# ---------------------------------------------------------------------------------------------------
# profile()
# ---------------------------------------------------------------------------------------------------
_thread_patch_lock = threading.Lock()
_thread_patch_depth = 0
_original_submit = ThreadPoolExecutor.submit


def _make_context_submit(below: Callable[..., Any], layer: list[bool]) -> Callable[..., Any]:
    """``submit`` running the work in a copy of the caller's context, on top of ``below`` (whatever
    ``submit`` was when the profile began: the stdlib's, or another library's wrapper)."""

    def _context_submit(self: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        if not layer[0] or _current.get() is None:
            return below(self, fn, *args, **kwargs)
        ctx = contextvars.copy_context()
        return below(self, ctx.run, fn, *args, **kwargs)

    return _context_submit


_submit_patch: tuple[Any, Any, list[bool]] | None = None  # (what we wrapped, our wrapper, its on switch)


def _patch_threads() -> None:
    global _thread_patch_depth, _submit_patch
    with _thread_patch_lock:
        if _thread_patch_depth == 0:
            below = ThreadPoolExecutor.__dict__["submit"]
            layer = [True]
            ours = _make_context_submit(below, layer)
            ThreadPoolExecutor.submit = ours  # type: ignore[method-assign]
            _submit_patch = (below, ours, layer)
        _thread_patch_depth += 1


def _unpatch_threads() -> None:
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


# Hooks other modules register to run on profile enter/exit (integrations attach themselves here so
# that ``tokprof.profiler.hooks`` does not import them).
_profile_enter_hooks: list[Callable[["profile"], None]] = []
_plugins_loaded = False
PLUGIN_GROUP = "tokprof.plugins"
"""Entry-point group of modules that extend ``profile()`` (live optimization lives above ``profiler`` in the
layering, so it plugs in here rather than being imported)."""


def _load_plugins() -> None:
    """Import the ``tokprof.plugins`` entry points once; each registers its profile hooks on import."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            ep.load()
        except Exception as exc:
            internal_error(f"loading plugin {ep.name}", exc)
_profile_exit_hooks: list[Callable[["profile"], None]] = []
_llm_finish_hooks: list[Callable[[Span], None]] = []


class profile:
    """Profile a block of agent code into a :class:`Run`.

    >>> with profile("checkout-agent", tags={"team": "payments"}) as run:
    ...     agent.invoke(...)
    >>> print(run.summary())

    Args:
        name: the run's name (also the name of its root span).
        tags: attribution tags (team, feature, customer...) for every span of the run.
        kind: kind of the root span.
        save: stream spans to a run file as they finish (crash-safe) and close it on exit. ``True`` uses the
            default folder (``.tokprof/runs`` or ``$TOKPROF_DIR``); a path names the folder.
        instrument: SDKs to instrument for the block (``["openai", "anthropic"]``).
        langchain: attach the LangChain callback handler automatically (default: on when langchain-core
            is importable).
        optimize: live optimization passes to switch on for the block (``response-cache``, ``minify``,
            ``dedupe``, ``observation-mask``, ``prompt-cache``; provided by the ``tokprof.plugins`` entry
            point ``tokprof.live_hooks``). The run records them in ``metadata["live_passes"]``.
        threads: patch ``ThreadPoolExecutor.submit`` so work submitted in the block nests under its caller.
        capture: record payloads: arguments and return values of ``@trace`` functions, model messages and
            outputs, tool inputs and outputs. ``False`` (or ``$TOKPROF_CAPTURE=0``) keeps the shape, timing
            and usage of the run and drops every payload before it is kept or written.
        keep_in_memory: keep finished spans in ``run.spans``. ``False`` (needs ``save``) streams them to the
            run file only, so a run of millions of spans uses bounded memory; load the file to analyse it.
        metadata: extra facts to store on the run.
    """

    def __init__(
        self,
        name: str = "run",
        *,
        tags: dict[str, str] | None = None,
        kind: str = "agent",
        save: bool | str | Path = False,
        instrument: Iterable[str] = (),
        langchain: bool = True,
        optimize: Iterable[str] = (),
        threads: bool = True,
        capture: bool = True,
        metadata: dict[str, Any] | None = None,
        keep_in_memory: bool = True,
    ) -> None:
        self.run = Run(name=name, tags=dict(tags or {}), metadata={"source": "live", **(metadata or {})})
        self.kind = kind
        self.save = save
        self.instrument = list(instrument)
        self.langchain = langchain
        self.optimize = list(optimize)
        self.threads = threads
        self.capture = capture_enabled(capture)
        self.keep_in_memory = keep_in_memory
        self.collector: Collector | None = None
        self.root: Span | None = None
        self._token: contextvars.Token | None = None
        self.extras: dict[str, Any] = {}
        """Scratch space for enter/exit hooks (integrations keep their undo handles here)."""

    def __enter__(self) -> Run:
        run = self.run
        writer = None
        if self.save:
            try:
                from tokprof.profiler.store import RunWriter

                folder = None if self.save is True else Path(self.save)
                writer = RunWriter.open(run, folder)
            except Exception as exc:
                internal_error("opening the run file", exc)
        self.collector = make_collector(run, writer, capture=self.capture, keep=self.keep_in_memory)
        self.collector._finish_hooks.extend(_llm_finish_hooks)
        root = Span(next(_ids), None, run.run_id, self.kind, run.name, _perf(), _wall())
        root._sink = self.collector
        if not self.capture:
            root.set_attribute("tokprof.capture", False)
        self.root = root
        self._token = _current.set(root)
        if self.threads:
            _patch_threads()
        if self.optimize:
            _load_plugins()  # live optimization passes are provided by a plugin
        for hook in list(_profile_enter_hooks):
            try:
                hook(self)
            except Exception as exc:
                internal_error(f"profile enter hook {getattr(hook, '__name__', hook)}", exc)
        if self.optimize and "live_passes" not in run.metadata:
            # Never a silent no-op: say which passes could not be switched on.
            run.metadata["live_passes_unavailable"] = list(self.optimize)
            log.warning("tokprof: live optimization %s requested but no live-optimization plugin is installed "
                        "(reinstall tokprof: `pip install tokprof`)", ", ".join(self.optimize))
        return run

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        for hook in reversed(list(_profile_exit_hooks)):
            try:
                hook(self)
            except Exception as err:
                internal_error(f"profile exit hook {getattr(hook, '__name__', hook)}", err)
        if self.threads:
            _unpatch_threads()
        if self._token is not None:
            try:
                _current.reset(self._token)
            except ValueError:
                _current.set(None)
        end_span(self.root, exc)
        self.run.ended_wall_ns = _wall()
        if self.collector is not None and self.collector.writer is not None:
            try:
                self.collector.writer.close(self.run)
                self.run.path = self.collector.writer.path
            except Exception as err:
                internal_error("closing the run file", err)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


# ---------------------------------------------------------------------------------------------------
# implicit run (opt-in with TOKPROF_IMPLICIT=1)
# ---------------------------------------------------------------------------------------------------
_implicit: profile | None = None
_implicit_lock = threading.Lock()


def _implicit_root() -> Span | None:
    global _implicit
    if _implicit is not None:
        return _implicit.root
    if os.environ.get("TOKPROF_IMPLICIT", "") not in ("1", "true", "yes"):
        return None
    with _implicit_lock:
        if _implicit is None:
            p = profile("implicit", save=True, threads=False)
            p.__enter__()
            # The implicit root must not stay current in this context: it is found through this function.
            if p._token is not None:
                _current.reset(p._token)
                p._token = None
            _implicit = p
            atexit.register(_close_implicit)
    return _implicit.root


def _close_implicit() -> None:
    global _implicit
    if _implicit is not None:
        try:
            _implicit.__exit__(None, None, None)
        except Exception as exc:  # pragma: no cover
            internal_error("closing the implicit run", exc)
        _implicit = None


# ---------------------------------------------------------------------------------------------------
# @trace
# ---------------------------------------------------------------------------------------------------
_PLAIN = (int, float, bool, type(None))


def _bounded_repr() -> Any:
    import reprlib

    r = reprlib.Repr()
    # builtin containers and strings are cut while being repr'd (a 5M-item list costs what 20 items
    # cost), not repr'd whole and cut afterwards
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset, r.maxfrozenset, r.maxdeque = 3, 20, 20, 20, 20, 20, 20
    r.maxarray, r.maxstring, r.maxother, r.maxlong = 20, _REPR_LIMIT, _REPR_LIMIT, _REPR_LIMIT
    return r


_REPR: Any = None


def _safe_repr(value: Any) -> str:
    global _REPR
    try:
        if _REPR is None:
            _REPR = _bounded_repr()
        t = type(value)
        r = _REPR.repr(value) if t in (list, tuple, dict, set, frozenset, str, bytes) else repr(value)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # a user __repr__ that raises (even a BaseException) must not break the call
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"
    if not isinstance(r, str):
        return f"<unrepresentable {type(value).__name__}: repr returned {type(r).__name__}>"
    if len(r) > _REPR_LIMIT:
        r = r[:_REPR_LIMIT] + "…"
    return r


def _capture_value(value: Any) -> Any:
    """A JSON-safe, bounded snapshot of a value. Numbers and short strings are kept as they are (no repr:
    this runs on the user's hot path); anything else becomes a truncated repr, taken now because the
    object may change later."""
    t = type(value)
    if t in _PLAIN:
        return value
    if t is str and len(value) <= _REPR_LIMIT:
        return value
    return _safe_repr(value)


def _capture_args(args: tuple, kwargs: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args:
        # A tuple of atomic values (and a dict holding only such) is untracked by the cyclic GC after its
        # first collection; a list never is. A run holds every span: this matters (~0.5 µs per call).
        out["args"] = tuple([_capture_value(a) for a in args])
    if kwargs:
        out["kwargs"] = {k: _capture_value(v) for k, v in kwargs.items()}
    return out


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
            s.attributes = _capture_args(args, kwargs)
        except Exception as exc:
            internal_error("capturing arguments", exc)
    return s


def _close(s: Span, capture: bool, result: Any = None, exc: BaseException | None = None) -> None:
    s.end_ns = _perf()
    if exc is not None:
        s.status = "error"
        s.error = _describe_exception(exc)
    elif capture and result is not None:
        try:
            if s.attributes is None:
                s.attributes = {}
            s.attributes["return"] = _capture_value(result)
        except Exception as err:
            internal_error("capturing the return value", err)
    try:
        s._sink.finish(s)
    except Exception as err:
        internal_error("finishing a span", err)


def _parent_or_none() -> Span | None:
    parent = current_span()
    if parent is None and _implicit is not None:
        return _implicit.root
    if parent is None and _IMPLICIT_ENV:
        return _implicit_root()
    return parent


_IMPLICIT_ENV = os.environ.get("TOKPROF_IMPLICIT", "") in ("1", "true", "yes")


def _wrap(f: Callable[..., Any], name: str, kind: str, capture: bool, tags: dict[str, str] | None) -> Any:
    get = _current.get
    setv = _current.set
    reset = _current.reset

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

    # The plain-function path is the hot one: everything inlined, no helper calls but the user's.
    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        parent = get()
        if parent is None or parent.end_ns is not None:
            parent = _parent_or_none()
            if parent is None:
                return f(*args, **kwargs)
        attrs = None
        if capture and (args or kwargs):
            if not kwargs and len(args) == 1:
                # The common call shape, without a comprehension (a new frame per call in 3.11).
                a = args[0]
                t = type(a)
                attrs = {"args": (a if t in _PLAIN or (t is str and len(a) <= _REPR_LIMIT) else _safe_repr(a),)}
            else:
                attrs = _capture_args(args, kwargs)
        s = Span(next(_ids), parent.span_id, parent.run_id, kind, name, _perf(), _wall(), None, "ok", None,
                 attrs, tags)
        s._sink = sink = parent._sink
        token = setv(s)
        try:
            result = f(*args, **kwargs)
        except BaseException as exc:
            reset(token)
            _close(s, capture, None, exc)
            raise
        s.end_ns = _perf()
        reset(token)
        if capture and result is not None:
            t = type(result)
            value = result if (t in _PLAIN or (t is str and len(result) <= _REPR_LIMIT)) else _safe_repr(result)
            if s.attributes is None:
                s.attributes = {"return": value}
            else:
                s.attributes["return"] = value
        try:
            sink.finish(s)
        except Exception as err:
            internal_error("finishing a span", err)
        return result

    return wrapper
