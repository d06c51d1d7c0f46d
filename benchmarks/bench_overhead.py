"""Overhead of a traced call: bare function vs @trace inside profile() vs an OpenTelemetry SDK span.

All three are measured side by side in one process, interleaved over several rounds, and the best round
of each is kept (the least disturbed by the rest of the machine). Prints µs per call and ratios.

    python benchmarks/bench_overhead.py [--calls 200000] [--rounds 7] [--clock wall|cpu]

``--clock cpu`` times this thread's CPU time instead of the wall clock: on a shared, loaded machine the
wall clock mostly measures the other processes (the OTel figure swings by 30% between runs there).
"""

from __future__ import annotations

import argparse
import time

from tokprof import profile, trace


def work(x: int) -> int:
    return x + 1


traced_work = trace(work)
traced_nocapture = trace(capture=False)(work)


CLOCK = time.perf_counter_ns


def bench(fn, calls: int) -> float:
    clock = CLOCK
    t0 = clock()
    for i in range(calls):
        fn(i)
    return (clock() - t0) / calls / 1000.0  # µs per call


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.thread_time_ns if args.clock == "cpu" else time.perf_counter_ns

    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")

    def otel_work(x: int) -> int:
        with tracer.start_as_current_span("work"):
            return x + 1

    best: dict[str, float] = {}
    for _ in range(args.rounds):
        results = {"bare": bench(work, args.calls)}
        results["untraced (outside profile)"] = bench(traced_work, args.calls)
        with profile("bench") as run:
            results["tokprof @trace"] = bench(traced_work, args.calls)
        run.spans.clear()
        with profile("bench") as run:
            results["tokprof @trace(capture=False)"] = bench(traced_nocapture, args.calls)
        run.spans.clear()
        results["OpenTelemetry SDK span"] = bench(otel_work, args.calls)
        exporter.clear()
        for k, v in results.items():
            best[k] = min(best.get(k, float("inf")), v)

    bare = best["bare"]
    print(f"{'variant':<34}{'µs/call':>10}{'overhead µs':>14}")
    for k, v in best.items():
        print(f"{k:<34}{v:>10.3f}{v - bare:>14.3f}")
    ours = best["tokprof @trace"] - bare
    otel = best["OpenTelemetry SDK span"] - bare
    print(f"\nratio tokprof/OTel (overhead): {ours / otel:.3f}  (target <= 0.100)")
    print(f"ratio tokprof/OTel (per call): {best['tokprof @trace'] / best['OpenTelemetry SDK span']:.3f}")
    print(f"tokprof overhead per call: {ours:.3f} µs  (target < 5 µs)")


if __name__ == "__main__":
    main()
