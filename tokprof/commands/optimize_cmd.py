"""`tokprof optimize RUN... [--passes a,b] [--currency C] [--json] [--out DIR]`: run optimization passes
over recorded runs, print the savings ledger, save the optimized runs."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokprof.commands.report_cmd import load_runs, parse_passes
from tokprof.optimizers.base import available_passes
from tokprof.optimizers.paid import BASES
from tokprof.optimizers.pipeline import optimize_runs
from tokprof.profiler.providers.currency import run_currency

DEFAULT_PASSES = "default"  # tokprof.optimizers.base.DEFAULT_PIPELINE: caching + compression


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "optimize",
        help="run optimization passes over runs and print the savings ledger",
        description="Apply optimization passes to RUN (a run id, a run file, a folder of runs, or a trace "
                    "file of another tool such as a τ²-bench results file) and print, per run and in total, "
                    "tokens and billed cost before and after each pass. Every pass is priced by the billing "
                    "simulator; runs of one invocation share the response cache (e.g. trials of a task). "
                    "The optimized runs are saved to --out.",
    )
    # nargs="*": `tokprof optimize --passes list` needs no RUN; a missing RUN is reported in the command
    p.add_argument("runs", nargs="*", metavar="RUN", help="run id, run file, folder, or foreign trace file")
    p.add_argument("--passes", default=DEFAULT_PASSES,
                   help=f"comma-separated passes in order (default {DEFAULT_PASSES}); `--passes list` shows them")
    p.add_argument("--currency", default=None, type=str.upper,
                   help="currency of costs (default: the runs'; CNY for runs on CNY-priced models; $TOKPROF_CURRENCY)")
    p.add_argument("--json", action="store_true", help="print the ledgers as JSON")
    p.add_argument("--out", help="folder for the optimized runs (default .tokprof/optimized)")
    p.add_argument("--dir", help="runs folder to resolve run ids in (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--rows", action="store_true", help="also print one line per changed call")
    p.set_defaults(func=optimize_command)


def _money(v: Decimal | None, currency: str = "") -> str:
    if v is None:
        return "unknown"
    return f"{v:,.4f} {currency}".rstrip()


def optimize_command(args: argparse.Namespace) -> int:
    if args.passes.strip() == "list":
        for name, desc in available_passes().items():
            print(f"{name:16} {desc}")
        return 0
    if not args.runs:
        print("tokprof optimize: error: give at least one RUN (a run id, run file, folder or trace file)",
              file=sys.stderr)
        return 2

    passes = parse_passes([args.passes])
    known = available_passes()
    for p in passes:
        if p not in known:
            raise ValueError(f"unknown pass {p!r}; available: {', '.join(known)}")
    if args.currency:
        args.currency = run_currency([], args.currency)  # an unsupported currency is a clear error, not "unknown"
    runs = load_runs(args.runs, args.dir, folders=True)
    args.currency = run_currency(runs, args.currency)
    out_dir = Path(args.out) if args.out else Path(".tokprof") / "optimized"
    ledgers = optimize_runs(runs, passes, currency=args.currency)
    for run, new, _ in ledgers:
        new.metadata["optimized_from"] = run.run_id
        new.save(out_dir)
    totals = _totals([lg for _, _, lg in ledgers], passes)
    if args.json:
        print(json.dumps({"currency": args.currency, "passes": passes,
                          "runs": [lg.to_dict() for _, _, lg in ledgers], "totals": totals,
                          "out": str(out_dir)}, indent=2, default=str))
        return 0
    _print_rich(ledgers, totals, passes, args)
    return 0


def _totals(ledgers: list[Any], passes: list[str]) -> dict[str, Any]:
    def add(a: Decimal | None, b: Decimal | None) -> Decimal | None:
        return b if a is None else (a if b is None else a + b)

    steps: list[dict[str, Any]] = []
    names = ["recorded", *passes]
    for i, name in enumerate(names):
        cost: Decimal | None = None
        low: Decimal | None = None
        high: Decimal | None = None
        inp = out = 0
        for lg in ledgers:
            step = lg.baseline if i == 0 else lg.steps[i - 1]
            cost = add(cost, step.billed_cost)
            low, high = add(low, step.billed_low), add(high, step.billed_high)
            inp += step.input_tokens
            out += step.output_tokens
        steps.append({"pass": name, "input_tokens": inp, "output_tokens": out,
                      "billed_cost": None if cost is None else str(cost),
                      "billed_low": None if low is None else str(low),
                      "billed_high": None if high is None else str(high)})
    base, final = steps[0]["billed_cost"], steps[-1]["billed_cost"]
    saved = None if base is None or final is None else str(Decimal(base) - Decimal(final))
    ranges = [lg.saved_range() for lg in ledgers]
    saved_range = None
    if ranges and all(r is not None for r in ranges):
        saved_range = [str(sum((r[0] for r in ranges), Decimal(0))), str(sum((r[1] for r in ranges), Decimal(0)))]
    order = ["documented", "calibrated", "assumed"]
    confs = [s.confidence for lg in ledgers for s in [lg.baseline, *lg.steps] if s.confidence in order]
    confidence = max(confs, key=order.index) if confs else None
    basis: dict[str, int] = {}
    for lg in ledgers:
        for k, v in (lg.baseline.basis or {}).items():
            basis[k] = basis.get(k, 0) + v
    label = ", ".join(f"{b} {basis[b]} call{'s' if basis[b] != 1 else ''}"
                      for b in sorted(basis, key=lambda b: BASES.index(b) if b in BASES else len(BASES)))
    return {"runs": len(ledgers), "steps": steps, "saved": saved, "saved_range": saved_range,
            "baseline": "what the runs paid", "baseline_basis": basis, "baseline_label": label,
            "confidence": confidence}


def _print_rich(ledgers: list[Any], totals: dict[str, Any], passes: list[str], args: argparse.Namespace) -> None:
    from tokprof.console_safe import SafeConsole as Console
    from rich.table import Table

    # piped output (CI logs, files) gets a wide table instead of rich's 80-column default
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 140)
    cur = args.currency
    table = Table(title=f"tokprof optimize: {len(ledgers)} run(s), passes: {', '.join(passes) or '(none)'}")
    table.add_column("run")
    table.add_column("step")
    table.add_column("input tok", justify="right")
    table.add_column("output tok", justify="right")
    table.add_column(f"billed {cur}", justify="right")
    table.add_column("calls changed", justify="right")
    table.add_column("evidence")
    table.add_column("lossless")
    show_runs = ledgers if len(ledgers) <= 20 else []
    for run, _, lg in show_runs:
        for step in [lg.baseline, *lg.steps]:
            table.add_row(run.name[:40] if step is lg.baseline else "", step.pass_name, f"{step.input_tokens:,}",
                          f"{step.output_tokens:,}", _money(step.billed_cost),
                          "" if step is lg.baseline else str(len(step.rows)), step.evidence,
                          "" if step.lossless is None else ("yes" if step.lossless else "no"))
    for s in totals["steps"]:
        cost = None if s["billed_cost"] is None else Decimal(s["billed_cost"])
        table.add_row("TOTAL" if s["pass"] == "recorded" else "", s["pass"], f"{s['input_tokens']:,}",
                      f"{s['output_tokens']:,}", _money(cost), "", "", "", style="bold")
    console.print(table)
    base = totals["steps"][0]
    spread = ""
    if base["billed_low"] is not None and base["billed_low"] != base["billed_high"]:
        spread = f"; range {_money(Decimal(base['billed_low']))} to {_money(Decimal(base['billed_high']))}"
    console.print(f"baseline: what the runs paid, {_money(None if base['billed_cost'] is None else Decimal(base['billed_cost']), cur)} "
                  f"({totals['baseline_label']}{spread})")
    if args.rows:
        for run, _, lg in ledgers:
            for r in lg.rows:
                console.print(f"{run.name[:30]} {r.pass_name} {r.span_id}: {r.change} "
                              f"[{_money(r.cost_before, cur)} -> {_money(r.cost_after, cur)}; {r.evidence}]")
    saved = totals["saved"]
    rng = totals.get("saved_range")
    extra = ""
    if rng is not None and rng[0] != rng[1]:
        extra = f" (range {_money(Decimal(rng[0]))} to {_money(Decimal(rng[1]))} over cache-hit scenarios"
        extra += f"; rule confidence {totals['confidence']})" if totals.get("confidence") else ")"
    console.print(f"saved against what the runs paid: {_money(None if saved is None else Decimal(saved), cur)}{extra}")
