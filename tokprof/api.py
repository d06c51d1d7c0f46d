"""The façade's two post-run functions, ``optimize`` and ``report`` (``from tokprof import optimize, report``).

They live here, not in ``tokprof/__init__.py``, so that ``import tokprof`` does not load the optimizers and
the report modules: the façade imports this module on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Sequence

from tokprof.optimizers.base import Ledger, Pass, PassContext
from tokprof.optimizers.pipeline import optimize as _optimize
from tokprof.profiler import Run
from tokprof.reports.html import write_html
from tokprof.reports.model import build_optimized_report, build_report

__all__ = ["optimize", "report"]


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
