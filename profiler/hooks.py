"""The recording layer's public API, in one importable place: ``@trace``, ``profile()``, the low-level
span API integrations use, the hook registry and the error policy.

The code lives in modules split by concern (this module only re-exports them):

* :mod:`tokprof.profiler.policy` — never break the user's agent: :func:`internal_error`;
* :mod:`tokprof.profiler.context` — the current span (a ``ContextVar``), ids, clocks, thread propagation;
* :mod:`tokprof.profiler.collector` — where finished spans go (memory, run file, payload stripping);
* :mod:`tokprof.profiler.session` — ``profile()``, enter/exit/LLM-finish hook registration, implicit run;
* :mod:`tokprof.profiler.recording` — ``start_span``, ``span``, ``record_llm_call``;
* :mod:`tokprof.profiler.decorate` — ``@trace``.

Outside a ``profile()`` a traced call costs one ``ContextVar.get`` and records nothing, unless the user
opts in to an implicit run with ``TOKPROF_IMPLICIT=1``.
"""

from __future__ import annotations

from typing import Any

from tokprof.profiler.collector import Collector, FilteringCollector, capture_enabled, make_collector, strip_payloads
from tokprof.profiler.context import (
    CURRENT,
    ORIGINAL_SUBMIT,
    activate,
    current_run,
    current_span,
    deactivate,
    describe_exception,
    end_span,
    patch_threads,
    perf_ns,
    pop_span,
    push_span,
    run_in_context,
    unpatch_threads,
    wall_ns,
)
from tokprof.profiler.decorate import trace
from tokprof.profiler.policy import StopRun, internal_error, log, reset_internal_errors
from tokprof.profiler.recording import record_llm_call, span, start_span
from tokprof.profiler.session import (
    implicit_root,
    on_llm_finish,
    on_profile_enter,
    on_profile_exit,
    open_implicit_root,
    profile,
    remove_hook,
)

__all__ = [
    "CURRENT", "ORIGINAL_SUBMIT", "Collector", "FilteringCollector", "activate", "capture_enabled", "current_run",
    "current_span", "deactivate", "describe_exception", "end_span", "implicit_root", "internal_error", "log",
    "make_collector", "on_llm_finish", "on_profile_enter", "on_profile_exit", "open_implicit_root",
    "patch_threads", "perf_ns", "pop_span", "profile", "push_span", "record_llm_call", "remove_hook",
    "reset_internal_errors", "run_in_context", "StopRun", "span", "start_span", "strip_payloads", "trace",
    "unpatch_threads", "wall_ns",
]

# Names this module had before the split, for code not yet moved to the public names above (branches
# merged later). Resolved lazily so nothing here is a private name imported across modules.
_RENAMED = {
    "_current": "CURRENT", "_perf": "perf_ns", "_wall": "wall_ns", "_implicit_root": "implicit_root",
    "_original_submit": "ORIGINAL_SUBMIT", "_reset_internal_errors": "reset_internal_errors",
    "_describe_exception": "describe_exception", "_patch_threads": "patch_threads",
    "_unpatch_threads": "unpatch_threads",
}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        return globals()[_RENAMED[name]]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
