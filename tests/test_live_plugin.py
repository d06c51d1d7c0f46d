"""profile(optimize=...) works however tokprof is installed: the live layer registers its profile hooks
through the public hook registry when ``tokprof`` is imported, with no entry point involved."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path


def test_optimize_works_without_any_entry_point(tmp_path):
    # entry_points() is emptied before tokprof is imported: nothing may depend on it.
    code = textwrap.dedent("""
        import importlib.metadata as md, json
        md.entry_points = lambda **kw: md.EntryPoints(())
        from tokprof.profiler import profile
        with profile("p", optimize=["minify", "response-cache"]) as run:
            pass
        print(json.dumps({"live": run.metadata.get("live_passes"),
                          "missing": run.metadata.get("live_passes_unavailable")}))
    """)
    env = dict(os.environ, TOKPROF_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc == {"live": ["response-cache", "minify"], "missing": None}


def test_no_plugin_entry_point_is_declared():
    meta = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    assert "tokprof.plugins" not in meta["project"].get("entry-points", {})


def test_unknown_live_pass_is_reported_not_silent():
    from tokprof.profiler import profile

    with profile("p", optimize=["no-such-pass"]) as run:
        pass
    assert run.metadata.get("live_passes_unavailable") == ["no-such-pass"]
