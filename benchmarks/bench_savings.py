"""What the optimization passes save on every run of the shared corpus (../shared/corpus), against what
each run paid.

For each file and overall: calls, input/output tokens, what the file paid (``paid``: its recorded costs;
else provider cache tokens; else the provider's automatic caching simulated on the unchanged runs, see
:mod:`tokprof.optimizers.paid`) and the bill after each pass (cumulative, in the order given; a pass is
credited only with the change it makes relative to what was paid), with the range over the hit-rate
scenarios where automatic caching is not guaranteed; the share of calls served by the response cache;
and for τ²-bench files the agent's cost cut by prompt-cache alone.

Each run is billed as the as-paid baseline bills it (:mod:`tokprof.profiler.providers.as_paid`: its own
provider cache with its static prefix warm, calls in wall-clock order), so a file's "paid" equals the sum of
``tokprof show`` over its runs; the runs of one file share one response cache (one ``PassContext``), as the
trials of a benchmark run would.

    python benchmarks/bench_savings.py [--passes response-cache,prompt-cache,tool-cache] [--json]
                                       [--corpus DIR] [--files GLOB]
    python benchmarks/bench_savings.py --pipeline default    # caching + compression, with the checks

Every stage also carries the context fidelity of the rewritten runs (:mod:`tokprof.optimizers.fidelity`:
the share of values each call relied on still in their original record / sentence). With ``--pipeline default`` the
agent-side bill is compared with the caching passes alone, to show what compression adds on top.

The pass list is a parameter (``measure_file(path, passes)``), so other passes (compression...) add
columns without changing this script.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tokprof.optimizers import base  # noqa: E402
from tokprof.optimizers.base import PassContext, make_pass  # noqa: E402
from tokprof.optimizers.billing import SERVED_ATTR  # noqa: E402
from tokprof.optimizers.paid import CostRange, RunPaid, original_plans, paid_bills, rebill, simulate, total_range  # noqa: E402
from tokprof.profiler.model import Run  # noqa: E402

DEFAULT_PASSES = ["response-cache", "prompt-cache", "tool-cache"]
COMPRESSION_PASSES = ["minify", "truncate-outputs", "observation-mask", "dedupe", "history-budget"]
DEFAULT_PIPELINE = list(base.DEFAULT_PIPELINE)  # response-cache, tool-cache, compression, prompt-cache
"""Caching + compression. Compression runs before prompt-cache so the cache plan sees the final prompts."""
CORPUS = REPO.parent / "shared" / "corpus"


@dataclass
class Stage:
    """Totals of one file after the passes up to this one."""

    name: str
    input_tokens: int
    output_tokens: int
    cost: Decimal | None
    agent_cost: Decimal | None = None
    served: int = 0
    referenced: int = 0
    """Facts and rules the file's calls relied on (reference retention denominator)."""
    retained: int = 0
    agent_referenced: int = 0
    agent_retained: int = 0
    cost_range: CostRange | None = None
    agent_range: CostRange | None = None

    @property
    def retention(self) -> float | None:
        return self.retained / self.referenced if self.referenced else None

    @property
    def agent_retention(self) -> float | None:
        return self.agent_retained / self.agent_referenced if self.agent_referenced else None


@dataclass
class FileResult:
    path: Path
    runs: int
    calls: int
    file_cost: Decimal | None
    """Sum of the costs the file itself recorded (``None`` when it records none)."""
    stages: list[Stage] = field(default_factory=list)
    prompt_cache_alone_agent: tuple[Decimal | None, Decimal | None] | None = None
    """(agent cost as recorded, after prompt-cache alone) for τ²-bench files."""
    caching_alone: Stage | None = None
    """With a pipeline that compresses: the same pipeline without its compression passes."""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        def s(v: Decimal | None) -> str | None:
            return None if v is None else str(v)

        return {
            "file": str(self.path), "runs": self.runs, "calls": self.calls, "file_cost": s(self.file_cost),
            "stages": [{"pass": st.name, "input_tokens": st.input_tokens, "output_tokens": st.output_tokens,
                        "cost": s(st.cost), "agent_cost": s(st.agent_cost), "served": st.served,
                        "cost_range": None if st.cost_range is None else st.cost_range.to_dict(),
                        "agent_range": None if st.agent_range is None else st.agent_range.to_dict(),
                        "retention": st.retention, "agent_retention": st.agent_retention}
                       for st in self.stages],
            "caching_alone": None if self.caching_alone is None else {
                "passes": self.caching_alone.name, "cost": s(self.caching_alone.cost),
                "agent_cost": s(self.caching_alone.agent_cost)},
            "response_cache_share": self.served_share,
            "prompt_cache_alone_agent_cut": self.agent_cut,
            "seconds": round(self.seconds, 2),
        }

    @property
    def served_share(self) -> float:
        return (self.stages[-1].served / self.calls) if self.calls else 0.0

    @property
    def agent_cut(self) -> float | None:
        if not self.prompt_cache_alone_agent:
            return None
        before, after = self.prompt_cache_alone_agent
        if not before or after is None:
            return None
        return float(1 - after / before)


def load_runs(path: Path) -> list[Run]:
    from tokprof.profiler.interchange import import_file

    return list(import_file(path).runs)


def _side(run: Run, span: Any) -> str | None:
    return run.span_tags(span).get("side")


def _retention(stage: "Stage", originals: list[Run], runs: list[Run]) -> None:
    """Fill the stage's reference-retention counts (all calls, and the agent's calls)."""
    try:
        from tokprof.optimizers.fidelity import run_fidelity_detail as run_retention_detail
    except ImportError:
        return
    for orig, new in zip(originals, runs):
        index = orig.by_id()
        for r in run_retention_detail(orig, new):
            stage.referenced += r.referenced
            stage.retained += r.retained
            if _side(orig, index[r.span_id]) in ("agent", None):
                stage.agent_referenced += r.referenced
                stage.agent_retained += r.retained


class Account:
    """What the runs of one file paid, and the simulation of the unchanged runs every stage is compared with."""

    def __init__(self, runs: list[Run], currency: str) -> None:
        self.runs, self.currency = runs, currency
        self.sim = simulate(runs, currency, original_plans(runs))
        self.paid = paid_bills(runs, currency, self.sim)

    def bill(self, rewritten: list[Run] | None) -> list[RunPaid]:
        return self.paid if rewritten is None else rebill(self.runs, rewritten, self.paid, self.sim, self.currency)


def _stage(name: str, runs: list[Run], currency: str, originals: list[Run] | None = None,
           account: Account | None = None) -> Stage:
    account = account or Account(originals or runs, currency)
    bills = account.bill(None if runs is account.runs else runs)
    inp = out = served = 0
    agent_ranges: list[CostRange] = []
    for run, bill in zip(runs, bills):
        by_id = run.by_id()
        for b in bill.calls:
            span = by_id[b.span_id]
            assert span.llm is not None
            inp += span.llm.usage.input_tokens
            out += span.llm.usage.output_tokens
            served += bool((span.attributes or {}).get(SERVED_ATTR))
            # runs without side tags (tau1, SWE-agent) record only the agent's calls
            if _side(run, span) in ("agent", None):
                agent_ranges.append(b.cost)
    total = total_range(b.total for b in bills)
    agent = total_range(agent_ranges)
    st = Stage(name, inp, out, total.expected, agent.expected, served, cost_range=total, agent_range=agent)
    if originals is not None:
        _retention(st, originals, runs)
    return st


def measure_file(path: Path, passes: list[str], currency: str = "USD",
                 options: dict[str, dict[str, Any]] | None = None) -> FileResult:
    """Apply ``passes`` cumulatively to every run of ``path`` and bill each stage (``options``: per pass)."""
    t0 = time.perf_counter()
    runs = load_runs(path)
    calls = sum(len(r.llm_spans()) for r in runs)
    recorded = [s.llm.cost.amount for r in runs for s in r.llm_spans()
                if s.llm is not None and s.llm.cost is not None and s.llm.cost.amount is not None]
    res = FileResult(path, len(runs), calls, sum(recorded, Decimal(0)) if recorded else None)
    account = Account(runs, currency)
    res.stages.append(_stage("paid", runs, currency, runs, account))
    ctx = PassContext(currency=currency)
    current = runs
    options = options or {}
    for name in passes:
        p = make_pass(name, **options.get(name, {}))
        current = [p.apply(r, ctx)[0] for r in current]
        res.stages.append(_stage(name, current, currency, runs, account))
    caching = [n for n in passes if n not in COMPRESSION_PASSES]
    if caching != passes and caching:
        ctx2 = PassContext(currency=currency)
        alone_runs = runs
        for name in caching:
            p = make_pass(name, **options.get(name, {}))
            alone_runs = [p.apply(r, ctx2)[0] for r in alone_runs]
        res.caching_alone = _stage("+".join(caching), alone_runs, currency, None, account)
    if any(_side(r, s) == "agent" for r in runs[:1] for s in r.llm_spans()):
        alone = make_pass("prompt-cache")
        cached = [alone.apply(r, PassContext(currency=currency))[0] for r in runs]
        res.prompt_cache_alone_agent = (res.stages[0].agent_cost,
                                        _stage("prompt-cache", cached, currency, None, account).agent_cost)
    res.seconds = time.perf_counter() - t0
    return res


def corpus_files(corpus: Path, pattern: str = "*") -> list[Path]:
    return sorted(p for p in corpus.rglob(pattern) if p.is_file() and p.name.lower() != "readme.md")


def _fmt_cost(v: Decimal | None) -> str:
    return "      n/a" if v is None else f"{v:9.4f}"


def print_table(results: list[FileResult], passes: list[str], currency: str) -> None:
    names = ["paid", *passes]
    head = f"{'file':44} {'runs':>4} {'calls':>6} {'input tok':>11} {'output tok':>10} {'in file':>9} " + \
        " ".join(f"{n[:9]:>9}" for n in names) + f" {'served':>7} {'agent PC':>8}"
    print(f"billed cost in {currency} (expected): 'in file' = the costs the file recorded (USD); 'paid' = what the "
          f"runs paid (recorded costs, else provider cache tokens, else automatic caching simulated on the "
          f"unchanged runs); later columns are cumulative after each pass, credited only with their change; "
          f"'served' = share of calls answered by the response cache; 'agent PC' = agent cost cut by "
          f"prompt-cache alone")
    print(head)
    print("-" * len(head))
    tot = {n: Decimal(0) for n in names}
    known = {n: False for n in names}
    calls = inp = out = served = runs = 0
    file_total = sum((r.file_cost for r in results if r.file_cost is not None), Decimal(0))
    for r in results:
        name = r.path.name if len(r.path.name) <= 44 else r.path.name[:20] + "…" + r.path.name[-23:]
        cut = "" if r.agent_cut is None else f"{r.agent_cut:8.1%}"
        print(f"{name:44} {r.runs:4} {r.calls:6} {r.stages[0].input_tokens:11,} {r.stages[0].output_tokens:10,} "
              f"{_fmt_cost(r.file_cost)} " + " ".join(_fmt_cost(s.cost) for s in r.stages) + f" {r.served_share:7.1%} {cut:>8}")
        for s in r.stages:
            if s.cost is not None:
                tot[s.name] += s.cost
                known[s.name] = True
        calls += r.calls
        runs += r.runs
        inp += r.stages[0].input_tokens
        out += r.stages[0].output_tokens
        served += r.stages[-1].served
    print("-" * len(head))
    print(f"{'ALL':44} {runs:4} {calls:6} {inp:11,} {out:10,} {_fmt_cost(file_total)} "
          + " ".join(_fmt_cost(tot[n] if known[n] else None) for n in names)
          + f" {served / calls if calls else 0:7.1%}")
    print_savings(results, currency)
    print_agent_table(results, names, currency)


def saving(paid: CostRange | None, final: CostRange | None) -> tuple[float, float, float] | None:
    """(expected, least, most) share saved against what was paid, each hit-rate scenario against itself."""
    if paid is None or final is None or not paid.known or not final.known:
        return None
    shares = [float(1 - f / p) if p else 0.0 for p, f in zip(paid.by_scenario, final.by_scenario)]  # type: ignore[operator]
    exp = shares[1]
    return exp, min(shares), max(shares)


def print_savings(results: list[FileResult], currency: str) -> None:
    """Per file and in total: what was paid, the bill after all passes, and the share saved with its range."""
    print()
    head = f"{'saved against what was paid':44} {'paid':>9} {'after':>9} {'after low-high':>19} {'saved':>7} {'range':>15}"
    print(head)
    print("-" * len(head))
    tot_paid, tot_final = [], []
    for r in results:
        p, f = r.stages[0].cost_range, r.stages[-1].cost_range
        if p is None or f is None or not p.known or not p.expected:
            continue
        tot_paid.append(p)
        tot_final.append(f)
        _saving_line(r.path.name, p, f)
    print("-" * len(head))
    if tot_paid:
        _saving_line("ALL", total_range(tot_paid), total_range(tot_final))


def _saving_line(name: str, p: CostRange, f: CostRange) -> None:
    name = name if len(name) <= 44 else name[:20] + "…" + name[-23:]
    sv = saving(p, f)
    rng = "" if sv is None else f"{sv[1]:6.1%}..{sv[2]:6.1%}"
    print(f"{name:44} {_fmt_cost(p.expected)} {_fmt_cost(f.expected)} {_fmt_cost(f.low)}-{_fmt_cost(f.high).strip():>9} "
          f"{'' if sv is None else f'{sv[0]:7.1%}'} {rng:>15}")


def _share(num: int, den: int) -> str:
    return "     n/a" if not den else f"{num / den:8.2%}"


def print_agent_table(results: list[FileResult], names: list[str], currency: str) -> None:
    """The agent's billed cost and reference retention after each stage, per file and overall."""
    head = f"{'agent calls: cost / retention':44} " + " ".join(f"{n[:9]:>9} {'ret':>8}" for n in names)
    print()
    print(head)
    print("-" * len(head))
    tot = {n: Decimal(0) for n in names}
    ref = {n: [0, 0] for n in names}
    alone = Decimal(0)
    has_alone = False
    for r in results:
        name = r.path.name if len(r.path.name) <= 44 else r.path.name[:20] + "…" + r.path.name[-23:]
        cells = []
        for st in r.stages:
            cells.append(f"{_fmt_cost(st.agent_cost)} {_share(st.agent_retained, st.agent_referenced)}")
            tot[st.name] += st.agent_cost or 0
            ref[st.name][0] += st.agent_retained
            ref[st.name][1] += st.agent_referenced
        if r.caching_alone is not None:
            alone += r.caching_alone.agent_cost or 0
            has_alone = True
        print(f"{name:44} " + " ".join(cells))
    print("-" * len(head))
    print(f"{'ALL':44} " + " ".join(f"{_fmt_cost(tot[n])} {_share(ref[n][0], ref[n][1])}" for n in names))
    toks = {n: [0, 0] for n in names}
    for r in results:
        for st in r.stages:
            toks[st.name][0] += st.input_tokens
            toks[st.name][1] += st.output_tokens
    print(f"{'ALL input tokens':44} " + " ".join(f"{toks[n][0]:>18,}" for n in names))
    print(f"{'ALL output tokens':44} " + " ".join(f"{toks[n][1]:>18,}" for n in names))
    base, final = tot[names[0]], tot[names[-1]]
    last = ref[names[-1]]
    if base:
        print(f"agent cost: {base:.4f} -> {final:.4f} {currency} ({1 - final / base:.1%} below what was paid), "
              f"context fidelity {_share(last[0], last[1]).strip()}")
    if has_alone and alone:
        print(f"caching alone: agent cost {alone:.4f} {currency} ({1 - alone / base:.1%} below what was paid); "
              f"compression cuts it by a further {1 - final / alone:.1%}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--passes", default=",".join(DEFAULT_PASSES))
    ap.add_argument("--pipeline", choices=["default"], default=None,
                    help="'default': caching + compression (" + ",".join(DEFAULT_PIPELINE) + ")")
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--files", default="*", help="glob of files under the corpus (default all)")
    ap.add_argument("--currency", default="USD")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    passes = [p.strip() for p in args.passes.split(",") if p.strip()]
    if args.pipeline == "default":
        passes = list(DEFAULT_PIPELINE)
    corpus = Path(args.corpus)
    if not corpus.is_dir():
        print(f"corpus not found at {corpus}", file=sys.stderr)
        return 2
    results = [measure_file(f, passes, args.currency) for f in corpus_files(corpus, args.files)]
    if args.json:
        print(json.dumps({"passes": passes, "currency": args.currency,
                          "files": [r.to_dict() for r in results]}, indent=2))
    else:
        print_table(results, passes, args.currency)
    return 0


if __name__ == "__main__":
    sys.exit(main())
