"""``profile()``: a block of agent code recorded into a :class:`Run`, the public registry of the hooks that
run on profile enter/exit and on every finished LLM span, and the opt-in implicit run
(``TOKPROF_IMPLICIT=1``) that records traced calls made outside any profile.

Other layers extend ``profile()`` by registering hooks here (:func:`on_profile_enter`,
:func:`on_profile_exit`, :func:`on_llm_finish`); ``profiler`` never imports them.
"""

from __future__ import annotations

import atexit
import contextvars
import os
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from tokprof.profiler.collector import Collector, capture_enabled, make_collector
from tokprof.profiler.context import (
    CURRENT,
    SPAN_IDS,
    end_span,
    patch_threads,
    perf_ns,
    unpatch_threads,
    wall_ns,
)
from tokprof.profiler.keys import LIVE_PASSES, LIVE_PASSES_UNAVAILABLE, SOURCE
from tokprof.profiler.model import Run, Span
from tokprof.profiler.policy import internal_error, log
from tokprof.profiler.providers.currency import check as check_currency
from tokprof.profiler.run_writer import RunWriter

ProfileHook = Callable[["profile"], None]
SpanHook = Callable[[Span], None]

_profile_enter_hooks: list[ProfileHook] = []
_profile_exit_hooks: list[ProfileHook] = []
_llm_finish_hooks: list[SpanHook] = []
_hooks_lock = threading.Lock()


def _add(hooks: list[Any], fn: Any) -> Any:
    with _hooks_lock:
        if fn not in hooks:
            hooks.append(fn)
    return fn


def on_profile_enter(fn: ProfileHook) -> ProfileHook:
    """Run ``fn(profile)`` when a profile block is entered, after its root span is current (idempotent;
    usable as a decorator). Hooks run in registration order; a failing hook is logged and skipped."""
    return _add(_profile_enter_hooks, fn)


def on_profile_exit(fn: ProfileHook) -> ProfileHook:
    """Run ``fn(profile)`` when a profile block exits, before its root span ends (reverse registration
    order, so a pair of enter/exit hooks nests)."""
    return _add(_profile_exit_hooks, fn)


def on_llm_finish(fn: SpanHook) -> SpanHook:
    """Run ``fn(span)`` for every finished LLM span of profiles entered from now on (e.g. to fill usage
    the provider did not report)."""
    return _add(_llm_finish_hooks, fn)


def remove_hook(fn: Callable[..., Any]) -> None:
    """Unregister ``fn`` from every hook list it is in (no-op if it is in none)."""
    with _hooks_lock:
        for hooks in (_profile_enter_hooks, _profile_exit_hooks, _llm_finish_hooks):
            while fn in hooks:
                hooks.remove(fn)


class profile:
    """Profile a block of agent code into a :class:`Run`.

    >>> from tokprof import profile
    >>> with profile("checkout-agent", tags={"team": "payments"}) as run:
    ...     agent.invoke(...)
    >>> print(run.summary())

    Args:
        name: the run's name (also the name of its root span).
        tags: attribution tags (team, feature, customer...) for every span of the run.
        kind: kind of the root span.
        save: stream spans to a run file as they finish (crash-safe) and close it on exit. ``True`` uses the
            default folder (``.tokprof/runs`` or ``$TOKPROF_DIR``); a path names the folder.
        instrument: SDKs to instrument for the block. Default ``True``: every supported LLM SDK that is
            imported (or gets imported inside the block) is instrumented and restored when the last profile
            exits; a list (``["openai", "anthropic"]``) adds SDKs to import and patch; ``False`` (or
            ``$TOKPROF_INSTRUMENT=0``) instruments nothing.
        langchain: attach the LangChain callback handler automatically (default: on when langchain-core
            is importable).
        optimize: live optimization passes to switch on for the block (``response-cache``, ``minify``,
            ``dedupe``, ``observation-mask``, ``prompt-cache``; see :mod:`tokprof.optimizers.live`).
            ``None`` or empty: none. The run records them in ``metadata["live_passes"]``.
        threads: patch ``ThreadPoolExecutor.submit`` so work submitted in the block nests under its caller.
        capture: record payloads: arguments and return values of ``@trace`` functions, model messages and
            outputs, tool inputs and outputs. ``False`` (or ``$TOKPROF_CAPTURE=0``) keeps the shape, timing
            and usage of the run and drops every payload before it is kept or written.
        keep_in_memory: keep finished spans in ``run.spans``. ``False`` (needs ``save``) streams them to the
            run file only, so a run of millions of spans uses bounded memory; load the file to analyse it.
        metadata: extra facts to store on the run.
        currency: ``"USD"`` or ``"CNY"``: the currency the run reports in (default: ``$TOKPROF_CURRENCY``, else
            the currency its models are listed in).
        budget: a spending limit checked as calls finish (:mod:`tokprof.fleet.live_budget` registers the check):
            a warning at 80%, an exception only for a hard limit.
    """

    def __init__(
        self,
        name: str = "run",
        *,
        tags: dict[str, str] | None = None,
        kind: str = "agent",
        save: bool | str | Path = False,
        instrument: Iterable[str] | bool = True,
        langchain: bool = True,
        optimize: Iterable[str] | None = (),
        threads: bool = True,
        capture: bool = True,
        metadata: dict[str, Any] | None = None,
        keep_in_memory: bool = True,
        currency: str | None = None,
        budget: Any = None,
    ) -> None:
        self.budget = budget
        self.run = Run(name=name, tags=dict(tags or {}), metadata={SOURCE: "live", **(metadata or {})})
        if currency:  # the run's reporting currency (summary, show, report): see providers/currency.py
            self.run.metadata["currency"] = check_currency(currency)
        self.kind = kind
        self.save = save
        self.instrument: list[str] | bool = instrument if isinstance(instrument, bool) else list(instrument)
        self.langchain = langchain
        self.optimize: list[Any] = list(optimize or ())
        self.threads = threads
        self.capture = capture_enabled(capture)
        self.keep_in_memory = keep_in_memory
        self.collector: Collector | None = None
        self.root: Span | None = None
        self._token: contextvars.Token[Span | None] | None = None
        self.extras: dict[str, Any] = {}
        """Scratch space for enter/exit hooks (integrations keep their undo handles here)."""

    def __enter__(self) -> Run:
        run = self.run
        writer = None
        if self.save:
            try:
                folder = None if self.save is True else Path(self.save)
                writer = RunWriter.open(run, folder)
            except Exception as exc:
                internal_error("opening the run file", exc)
        self.collector = make_collector(run, writer, capture=self.capture, keep=self.keep_in_memory)
        n_finish = len(_llm_finish_hooks)
        self.collector.finish_hooks.extend(_llm_finish_hooks)
        root = Span(next(SPAN_IDS), None, run.run_id, self.kind, run.name, perf_ns(), wall_ns())
        root._sink = self.collector
        if not self.capture:
            root.set_attribute("tokprof.capture", False)
        self.root = root
        self._token = CURRENT.set(root)
        if self.threads:
            patch_threads()
        # By index, not over a copy: a hook may load a layer on demand (the façade imports the live layer
        # only when ``optimize`` is given), and the hooks that layer registers apply to this profile too.
        i = 0
        while i < len(_profile_enter_hooks):
            hook = _profile_enter_hooks[i]
            i += 1
            try:
                hook(self)
            except Exception as exc:
                internal_error(f"profile enter hook {getattr(hook, '__name__', hook)}", exc)
        # LLM-finish hooks registered meanwhile go after the ones registered before, ahead of any an enter
        # hook appended to this collector directly (those expect usage already filled).
        self.collector.finish_hooks[n_finish:n_finish] = _llm_finish_hooks[n_finish:]
        if self.optimize and LIVE_PASSES not in run.metadata:
            # Never a silent no-op: say which passes could not be switched on.
            run.metadata[LIVE_PASSES_UNAVAILABLE] = [str(n) for n in self.optimize]
            log.warning("tokprof: live optimization %s requested but the live layer is not loaded "
                        "(import tokprof.optimizers.live, or use `from tokprof import profile`)",
                        ", ".join(map(str, self.optimize)))
        return run

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        for hook in reversed(list(_profile_exit_hooks)):
            try:
                hook(self)
            except Exception as err:
                internal_error(f"profile exit hook {getattr(hook, '__name__', hook)}", err)
        if self.threads:
            unpatch_threads()
        if self._token is not None:
            try:
                CURRENT.reset(self._token)
            except ValueError:
                CURRENT.set(None)
        end_span(self.root, exc)
        self.run.ended_wall_ns = wall_ns()
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
IMPLICIT_ENV = os.environ.get("TOKPROF_IMPLICIT", "") in ("1", "true", "yes")
"""``$TOKPROF_IMPLICIT`` as it was at import (the hot path checks this, not the environment)."""
_implicit: profile | None = None
_implicit_lock = threading.Lock()


def open_implicit_root() -> Span | None:
    """The root span of the implicit run if one is open, without opening one (cheap)."""
    return _implicit.root if _implicit is not None else None


def implicit_root() -> Span | None:
    """The implicit run's root span, opening the run on first use if ``$TOKPROF_IMPLICIT`` is set; else
    ``None``. The run is saved at interpreter exit."""
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
                CURRENT.reset(p._token)
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
