"""Render the report of a 10,000-call run built from the corpus; print timings and the file size.

    python benchmarks/bench_report.py [--calls 10000] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from tokprof.reports.html import render_html  # noqa: E402
from tokprof.reports.model import build_report  # noqa: E402
from reports_samples import tau1_runs  # noqa: E402
from test_reports_html import concatenated_run  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10_000)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("-o", default="/tmp/tokprof-bench-report.html")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = tau1_runs(REPO.parent / "shared" / "corpus")
    big = concatenated_run(runs, args.calls)
    t1 = time.perf_counter()
    if args.profile:
        import cProfile
        import pstats

        cProfile.runctx("build_report(big)", globals(), {"big": big, "build_report": build_report}, "/tmp/bench.prof")
        pstats.Stats("/tmp/bench.prof").sort_stats("cumulative").print_stats(25)
    t2 = time.perf_counter()
    model = build_report(big)
    t3 = time.perf_counter()
    html = render_html(model)
    t4 = time.perf_counter()
    Path(args.o).write_text(html, encoding="utf-8")
    size = len(html.encode("utf-8"))
    print(f"llm calls            {model.headline.llm_calls:,}")
    print(f"import corpus + join {t1 - t0:6.2f} s")
    print(f"build ReportModel    {t3 - t2:6.2f} s")
    print(f"render HTML          {t4 - t3:6.2f} s")
    print(f"report (model+html)  {t4 - t2:6.2f} s")
    print(f"file size            {size / 1e6:6.2f} MB ({len(model.payloads):,} distinct messages)")


if __name__ == "__main__":
    main()
