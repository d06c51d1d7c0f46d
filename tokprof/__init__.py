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

from pathlib import Path
from typing import Any, Iterable, Sequence

# The live layer registers its profile hooks on import: ``profile(optimize=[...])`` works however tokprof
# is installed (no entry point needed).
import tokprof.optimizers.live  # noqa: F401
import tokprof.fleet.live_budget  # noqa: F401  (profile(budget=...): its enter hook, likewise)
import tokprof.profiler.interchange.live_export  # noqa: F401  (TOKPROF_OTLP_EXPORT: its exit hook, likewise)
from tokprof.optimizers.base import Ledger, Pass, PassContext
from tokprof.optimizers.pipeline import optimize as _optimize
from tokprof.profiler import Run, Span, Usage, load_run, profile, record_llm_call, span, trace
from tokprof.reports.html import write_html
from tokprof.reports.model import build_optimized_report, build_report

__version__ = "0.1.0"


def optimize(run: Run, passes: Iterable[str | Pass] = ("default",), *,
             options: dict[str, dict[str, Any]] | None = None, currency: str = "USD") -> tuple[Run, Ledger]:
    """Run optimization ``passes`` (names, ``"default"``, or pass objects) over a recorded ``run``, in order;
    return the optimized run and its savings ledger, each step priced by the billing simulator in
    ``currency``. The input run is not modified."""
    return _optimize(run, passes, options=options, ctx=PassContext(options=options or {}, currency=currency))


def report(runs: Run | Sequence[Run], path: str | Path = "tokprof-report.html", *,
           passes: Iterable[str] = (), currency: str = "USD", title: str | None = None) -> Path:
    """Write the self-contained HTML report of ``runs`` to ``path`` and return the path (what
    ``tokprof report`` writes). With ``passes``, the pass pipeline runs first and the report shows
    before -> after."""
    names = [str(p) for p in passes]
    if names:
        model = build_optimized_report(runs, names, currency=currency, title=title)
    else:
        model = build_report(runs, currency=currency, title=title)
    return write_html(model, path)


__all__ = ["trace", "profile", "span", "record_llm_call", "load_run", "optimize", "report",
           "Run", "Span", "Usage", "Ledger", "__version__"]
