"""`tokprof optimize RUN... [--passes a,b] [--currency C] [--json] [--out DIR]`: run optimization passes
over recorded runs, print the savings ledger, save the optimized runs."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

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
    p.add_argument("runs", nargs="+", metavar="RUN", help="run id, run file, folder, or foreign trace file")
    p.add_argument("--passes", default=DEFAULT_PASSES,
                   help=f"comma-separated passes in order (default {DEFAULT_PASSES}); `--passes list` shows them")
    p.add_argument("--currency", default="USD", help="currency of costs (default USD)")
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
    from tokprof.optimizers.base import available_passes, optimize_runs

    if args.passes.strip() == "list":
        for name, desc in available_passes().items():
            print(f"{name:16} {desc}")
        return 0
    from tokprof.commands.report_cmd import load_runs, parse_passes

    passes = parse_passes([args.passes])
    known = available_passes()
    for p in passes:
        if p not in known:
            raise ValueError(f"unknown pass {p!r}; available: {', '.join(known)}")
    if args.currency.upper() != "USD":
        from tokprof.profiler.providers.prices import convert

        convert(Decimal(1), "USD", args.currency)  # an unsupported currency is a clear error, not "unknown"
    runs = load_runs(args.runs, args.dir, folders=True)
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
        inp = out = 0
        for lg in ledgers:
            step = lg.baseline if i == 0 else lg.steps[i - 1]
            cost = add(cost, step.billed_cost)
            inp += step.input_tokens
            out += step.output_tokens
        steps.append({"pass": name, "input_tokens": inp, "output_tokens": out,
                      "billed_cost": None if cost is None else str(cost)})
    base, final = steps[0]["billed_cost"], steps[-1]["billed_cost"]
    saved = None if base is None or final is None else str(Decimal(base) - Decimal(final))
    return {"runs": len(ledgers), "steps": steps, "saved": saved}


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
    show_runs = ledgers if len(ledgers) <= 20 else []
    for run, _, lg in show_runs:
        for step in [lg.baseline, *lg.steps]:
            table.add_row(run.name[:40] if step is lg.baseline else "", step.pass_name, f"{step.input_tokens:,}",
                          f"{step.output_tokens:,}", _money(step.billed_cost),
                          "" if step is lg.baseline else str(len(step.rows)), step.evidence)
    for s in totals["steps"]:
        cost = None if s["billed_cost"] is None else Decimal(s["billed_cost"])
        table.add_row("TOTAL" if s["pass"] == "recorded" else "", s["pass"], f"{s['input_tokens']:,}",
                      f"{s['output_tokens']:,}", _money(cost), "", "", style="bold")
    console.print(table)
    if args.rows:
        for run, _, lg in ledgers:
            for r in lg.rows:
                console.print(f"{run.name[:30]} {r.pass_name} {r.span_id}: {r.change} "
                              f"[{_money(r.cost_before, cur)} -> {_money(r.cost_after, cur)}; {r.evidence}]")
    saved = totals["saved"]
    console.print(f"saved: {_money(None if saved is None else Decimal(saved), cur)}")
