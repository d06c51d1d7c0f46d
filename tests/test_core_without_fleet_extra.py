"""The core install (`pip install .`) has no pyarrow or DuckDB (they are the `fleet` extra): the CLI must
still build every command and run the demo's path. A module-level pyarrow import in a module the CLI loads
broke `pip install . && tokprof demo` once; this runs the CLI with both imports blocked."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
class _NoFleetExtra:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("pyarrow", "duckdb"):
            raise ImportError(f"{name} is not installed (blocked by the test)")
        return None
sys.meta_path.insert(0, _NoFleetExtra())
from tokprof.cli import build_parser, main
build_parser()
for cmd in ("show", "report", "export", "ingest", "stats", "demo"):
    try:
        main([cmd, "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None), (cmd, exc.code)
print("ok")
"""


def test_cli_builds_and_helps_without_pyarrow_or_duckdb() -> None:
    out = subprocess.run([sys.executable, "-c", BLOCK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")
