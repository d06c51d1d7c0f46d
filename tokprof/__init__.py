"""tokprof: a token and cost profiler for LLM agents, with an optimizer attached.

The one public façade::

    from tokprof import trace, profile, span, record_llm_call, load_run, optimize, report

    @trace
    def plan(task): ...

    with profile("checkout-agent", optimize=["default"]) as run:   # live passes are optional
        plan("refund order 42")
    optimized, ledger = optimize(run, ["default"])                 # simulate passes on the recorded run
    report(run, "report.html", passes=["default"])                  # the before/after HTML report

Everything else lives in the sub-packages, installed under this one name: ``tokprof.profiler`` (recording,
run files, provider facts), ``tokprof.optimizers`` (passes, billing simulator, live layer),
``tokprof.reports`` (report model and renderers).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tokprof.profiler import Run, Span, Usage, load_run, profile, record_llm_call, span, trace
from tokprof.profiler.hooks import on_profile_enter

if TYPE_CHECKING:
    from tokprof.api import optimize, report
    from tokprof.optimizers.base import Ledger

__version__ = "0.1.0"

# Recording (``import tokprof``, ``@trace``, ``profile()``) loads the profiler only. The optimizers, the
# report modules and networkx (~1 s together) load on first use: ``optimize``/``report``/``Ledger`` through
# the module ``__getattr__`` below, the live layer and the budget check when a profile asks for them.
_LAZY = {"optimize": "tokprof.api", "report": "tokprof.api", "Ledger": "tokprof.optimizers.base"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'tokprof' has no attribute {name!r}")


def _load_on_demand(prof: Any) -> None:
    """Profile enter hook: load the layer a profile asks for. Each registers its own enter hooks on import,
    and ``profile`` runs hooks registered during enter for the same block, so the first profile that asks
    is served too."""
    if prof.optimize:
        import tokprof.optimizers.live  # noqa: F401  (profile(optimize=[...]))
    if getattr(prof, "budget", None) is not None:
        import tokprof.fleet.live_budget  # noqa: F401  (profile(budget=...))
    if os.environ.get("TOKPROF_OTLP_EXPORT"):
        import tokprof.profiler.interchange.live_export  # noqa: F401  (its exit hook sends the run over OTLP)


on_profile_enter(_load_on_demand)


__all__ = ["trace", "profile", "span", "record_llm_call", "load_run", "optimize", "report",
           "Run", "Span", "Usage", "Ledger", "__version__"]
