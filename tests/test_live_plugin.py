"""profile(optimize=...) works from `profiler` alone: the live passes arrive through the tokprof.plugins
entry point, without the user importing tokprof."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap


def test_optimize_activates_without_importing_the_optimizers(tmp_path):
    code = textwrap.dedent("""
        import json, sys
        from tokprof.profiler import profile
        assert not any(m.startswith(("tokprof.optimizers", "tokprof.live")) for m in sys.modules)
        with profile("p", optimize=["minify", "response-cache"]) as run:
            pass
        print(json.dumps({"live": run.metadata.get("live_passes"),
                          "missing": run.metadata.get("live_passes_unavailable")}))
    """)
    env = dict(os.environ, TOKPROF_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["live"] == ["response-cache", "minify"] or sorted(doc["live"]) == ["minify", "response-cache"]
    assert not doc["missing"]


def test_unknown_live_pass_is_reported_not_silent():
    from tokprof.profiler import profile

    with profile("p", optimize=["no-such-pass"]) as run:
        pass
    assert run.metadata.get("live_passes_unavailable") == ["no-such-pass"]
