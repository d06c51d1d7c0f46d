"""Redaction speed on ~10 MB inputs built to make a backtracking pattern quadratic
(``tests/test_security_secrets.py::ADVERSARIAL_10MB``), against the same amount of plain prose, side by side
in one process: the ratio shows whether any pattern went super-linear (plain prose is the linear baseline).

Run: ``python benchmarks/bench_redaction.py`` (from the repository root)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_security_secrets import ADVERSARIAL_10MB  # noqa: E402
from tokprof.profiler import redact  # noqa: E402


def main() -> int:
    prose = ("The agent looked up order 1234 and replied to the customer. " * 200_000)[:10_000_000]
    t = time.perf_counter()
    redact.redact_text(prose)
    base = time.perf_counter() - t
    print(f"plain prose {len(prose) / 1e6:.1f} MB: {base:.2f} s")
    for name, text in ADVERSARIAL_10MB:
        t = time.perf_counter()
        redact.redact_text(text)
        secs = time.perf_counter() - t
        print(f"{name:<20} {len(text) / 1e6:5.1f} MB: {secs:6.2f} s = {secs / base:5.1f}x plain prose")
    return 0


if __name__ == "__main__":
    sys.exit(main())
