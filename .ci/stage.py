"""Stage the installed layout of the package for static checkers: ``<dest>/tokprof/`` with the repository's
``profiler/``, ``optimizers/`` and ``reports/`` folders copied in as ``tokprof/profiler`` etc.

The repository keeps the design's top-level folders and setup.py maps them under ``tokprof`` at install
time; mypy and import-linter read files, not import hooks, so they need this tree.

    python .ci/stage.py build/staged      # prints the folder to put on the path
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAPPED = {"profiler": "profiler", "optimizers": "optimizers", "reports": "reports"}  # as in setup.py


def stage(dest: Path) -> Path:
    """Copy the package into ``dest`` (replacing an earlier staging) and return ``dest``."""
    pkg = dest / "tokprof"
    if pkg.exists():
        shutil.rmtree(pkg)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "tokprof", pkg, ignore=ignore)
    for sub, folder in MAPPED.items():
        shutil.copytree(ROOT / folder, pkg / sub, ignore=ignore)
    return dest


if __name__ == "__main__":
    print(stage(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "build" / "staged").resolve()))
