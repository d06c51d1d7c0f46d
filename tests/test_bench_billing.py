"""Issue #16.2: the simulator's range holds what every corpus file with recorded costs really paid."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_billing import fit_file  # noqa: E402

from tokprof.optimizers.paid import CALIBRATION_FILES  # noqa: E402


def test_recorded_total_inside_predicted_range_for_every_file(corpus: Path) -> None:
    fits = [f for f in (fit_file(p, corpus) for p in sorted(corpus.rglob("*.gz"))) if f is not None]
    assert len(fits) == 5  # the gpt-oss-120b file records only $0 (harness without a price)
    for f in fits:
        assert f.inside, (f.name, f.low, f.recorded, f.high)
        assert f.low < f.high  # every file has OpenAI user calls: a real range, not a point
    # calibration used the held-in files only, and both held-out files are still inside their range
    assert sum(f.held_in for f in fits) == len(CALIBRATION_FILES) == 3
    held_in = [f for f in fits if f.held_in]
    # on the files it was calibrated on, the expected total is within 1% of what was paid
    assert all(abs(f.error) < 0.01 for f in held_in)
