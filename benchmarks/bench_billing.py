"""How well the billing simulator reproduces what providers really billed (issue #16.2).

For every corpus file whose calls recorded their cost (τ²-bench), all its runs are billed by the simulator
from their messages alone, exactly as the as-paid baseline simulates a run
(:func:`tokprof.profiler.providers.as_paid.simulated_bill`: each run its own provider cache, its static prefix
warm, calls in wall-clock order; Anthropic calls that reported cache tokens keep the breakpoint they
evidently used, see :func:`tokprof.optimizers.paid.inferred_plan`) and
compared with the recorded costs:

* ``exact``: share of calls whose simulated (all-hits) cost equals the recorded one (to $0.000001);
* ``error``: the expected total minus the recorded total, relative to the recorded total;
* ``range``: the predicted [low, high] total and whether the recorded total lies inside (it must);
* ``held``: whether the file was used to calibrate the hit rates (``in``) or not (``out``).

A recorded cost of exactly $0 on a call that used tokens is the harness not knowing a price (the
gpt-oss-120b file records 0.0 for every call, while its model is priced), not a bill: such calls are
left out of the comparison and counted in ``zero``.

``--calibrate`` solves, for every OpenAI/xAI call of the held-in files, the cache-read tokens it actually
got from its recorded cost, and prints the pooled hit rate per provider (what
:data:`tokprof.optimizers.paid.HIT_RATES` holds).

    python benchmarks/bench_billing.py [--json] [--calibrate] [--corpus DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"

from tokprof.optimizers.billing import cache_rule, default_prices  # noqa: E402
from tokprof.optimizers.paid import CALIBRATION_FILES, original_plans, simulate, simulated_bill, total_range  # noqa: E402
from tokprof.profiler.interchange import import_file  # noqa: E402
from tokprof.profiler.model import Run  # noqa: E402

EXACT = Decimal("0.000001")


@dataclass
class FileFit:
    name: str
    held_in: bool
    calls: int
    exact: int
    zero: int
    recorded: Decimal
    expected: Decimal
    low: Decimal
    high: Decimal

    @property
    def inside(self) -> bool:
        return self.low - EXACT <= self.recorded <= self.high + EXACT

    @property
    def error(self) -> float:
        return float((self.expected - self.recorded) / self.recorded) if self.recorded else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.name, "held_in": self.held_in, "calls": self.calls, "exact": self.exact,
                "zero_cost_calls_left_out": self.zero,
                "exact_share": self.exact / self.calls if self.calls else None, "recorded": str(self.recorded),
                "expected": str(self.expected), "low": str(self.low), "high": str(self.high),
                "error": self.error, "inside": self.inside}


def _recorded(run: Run) -> dict[str, Decimal]:
    out = {}
    for s in run.llm_spans():
        c = s.llm.cost if s.llm is not None else None
        if c is not None and c.source == "recorded" and c.amount is not None:
            out[s.span_id] = c.amount
    return out


def fit_file(path: Path, corpus: Path) -> FileFit | None:
    """Simulated against recorded bills for one file (``None``: it records no costs)."""
    runs = list(import_file(path).runs)
    recorded = [_recorded(r) for r in runs]
    if not any(recorded):
        return None
    sim = simulate(runs, "USD", original_plans(runs))
    calls = exact = zero = 0
    ranges = []
    rec_total = Decimal(0)
    for rec, s in zip(recorded, sim):
        for sid, amount in rec.items():
            c = s[sid]
            if amount == 0:
                zero += 1
                continue
            if not c.cost.known:
                continue
            calls += 1
            exact += abs(c.cost.by_scenario[0] - amount) <= EXACT  # type: ignore[operator]
            ranges.append(c.cost)
            rec_total += amount
    if not calls:
        return None
    tot = total_range(ranges)
    rel = str(path.relative_to(corpus))
    return FileFit(rel, rel in CALIBRATION_FILES, calls, exact, zero, rec_total, tot.expected or Decimal(0),
                   tot.low or Decimal(0), tot.high or Decimal(0))


def calibrate(corpus: Path) -> dict[str, dict[str, float]]:
    """Pooled actual / predicted automatic cache-read tokens per provider over the held-in files."""
    pooled: dict[str, list[float]] = {}
    for rel in CALIBRATION_FILES:
        runs = list(import_file(corpus / rel).runs)
        for run in runs:
            rb = simulated_bill(run, "USD")  # the very simulation the as-paid baseline uses
            for span, b in zip(run.llm_spans(), rb.calls):
                call = span.llm
                assert call is not None
                rule = cache_rule(call.provider, call.model)
                rates = default_prices(call.model)
                amount = _recorded(run).get(span.span_id)
                if rule.mode != "automatic" or rates is None or amount is None:
                    continue
                r = rates.for_prompt(call.usage.input_tokens)
                read = r.cache_read if r.cache_read is not None else r.input * rule.read_multiplier
                if read >= r.input:
                    continue
                full = (call.usage.input_tokens * r.input + call.usage.output_tokens * r.output) / Decimal(1_000_000)
                actual = float((full - amount) * Decimal(1_000_000) / (r.input - read))
                acc = pooled.setdefault(rule.provider, [0.0, 0.0])
                acc[0] += max(0.0, actual)
                acc[1] += b.cache_read_tokens
    return {p: {"actual": round(a), "predicted": round(s), "hit_rate": round(a / s, 3) if s else 0.0}
            for p, (a, s) in pooled.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--calibrate", action="store_true")
    args = ap.parse_args(argv)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"corpus not found at {corpus}", file=sys.stderr)
        return 2
    if args.calibrate:
        print(json.dumps(calibrate(corpus), indent=2))
        return 0
    files = sorted(corpus.rglob("*.gz"))
    fits = [f for f in (fit_file(p, corpus) for p in files) if f is not None]
    if args.json:
        print(json.dumps([f.to_dict() for f in fits], indent=2))
        return 0 if all(f.inside for f in fits) else 1
    head = f"{'file':48} {'held':>4} {'calls':>5} {'exact':>6} {'recorded':>9} {'expected':>9} {'error':>7} " \
           f"{'low':>9} {'high':>9} inside"
    print("simulated bills vs what each call recorded it cost (USD); calibration on held-in files only")
    print(head)
    print("-" * len(head))
    for f in fits:
        name = f.name if len(f.name) <= 48 else f.name[:18] + "…" + f.name[-29:]
        print(f"{name:48} {'in' if f.held_in else 'out':>4} {f.calls:5} {f.exact / f.calls:6.1%} {f.recorded:9.4f} "
              f"{f.expected:9.4f} {f.error:+7.1%} {f.low:9.4f} {f.high:9.4f} {'yes' if f.inside else 'NO'}")
    print("files recording only $0 costs (harness without a price), left out: "
          + (", ".join(p.name[:40] for p in files if fit_file(p, corpus) is None and _any_zero(p)) or "none"))
    return 0 if all(f.inside for f in fits) else 1


def _any_zero(path: Path) -> bool:
    return any(v == 0 for r in import_file(path).runs for v in _recorded(r).values())


if __name__ == "__main__":
    sys.exit(main())
