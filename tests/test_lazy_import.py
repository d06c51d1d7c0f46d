"""``import tokprof`` is cheap: recording (``@trace``, ``profile()``) loads neither the report modules, the
optimizers nor networkx; they load on first use, and ``profile(optimize=...)`` / ``profile(budget=...)``
load their layer for the very profile that asks (issue #13's import-cost point)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_recording_does_not_import_reports_optimizers_or_networkx() -> None:
    got = _run("""
        import json, sys
        import tokprof
        from tokprof import trace, profile

        @trace
        def step(x):
            return x + 1

        with profile("lazy", save=False) as run:
            step(1)
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] == "networkx"
                       or m.startswith(("tokprof.reports", "tokprof.optimizers", "tokprof.fleet")))
        print(json.dumps({"heavy": heavy, "spans": len(run.spans)}))
    """)
    assert got["heavy"] == []
    assert got["spans"] == 2  # the profile root and step


def test_facade_names_load_on_first_use() -> None:
    got = _run("""
        import json, sys
        import tokprof
        before = "tokprof.reports.html" in sys.modules
        from tokprof import optimize, report, Ledger
        from tokprof.api import optimize as api_optimize
        print(json.dumps({"before": before, "after": "tokprof.reports.html" in sys.modules,
                          "same": optimize is api_optimize, "ledger": Ledger.__name__,
                          "all": all(hasattr(tokprof, n) for n in tokprof.__all__)}))
    """)
    assert got == {"before": False, "after": True, "same": True, "ledger": "Ledger", "all": True}


def test_first_profile_with_optimize_gets_the_live_layer() -> None:
    got = _run("""
        import json
        from tokprof import profile
        with profile("live", save=False, optimize=["minify"]) as run:
            pass
        print(json.dumps({k: run.metadata.get(k) for k in ("live_passes", "live_passes_unavailable")}))
    """)
    assert got == {"live_passes": ["minify"], "live_passes_unavailable": None}


def test_first_profile_with_budget_gets_the_budget_check() -> None:
    got = _run("""
        import json
        from tokprof import profile
        with profile("budget", save=False, budget={"tokens": 1000}) as run:
            pass
        print(json.dumps({"budgets": run.metadata.get("budgets") is not None}))
    """)
    assert got == {"budgets": True}
