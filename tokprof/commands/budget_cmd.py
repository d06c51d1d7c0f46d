"""`tokprof budget check`: budgets (per tag value, model or application; per day/week/month) against the
fleet ledger, for cron and CI: a table, and a non-zero exit when a budget is over."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "budget",
        help="check token/money budgets against the fleet ledger (exit 1 when over)",
        description="Budgets file format: see docs/fleet.md (TOML [[budget]] tables or JSON "
                    "{\"budget\": [...]}: scope, period, limit, unit, hard).",
    )
    bsub = p.add_subparsers(dest="budget_command", metavar="ACTION")
    c = bsub.add_parser("check", help="each budget's use in its current period; exit 1 if any is over")
    c.add_argument("file", nargs="?", help="budgets file (default $TOKPROF_BUDGETS, else budgets.toml or "
                                          "budgets.json in the runs folder)")
    c.add_argument("--at", help="check the periods containing this day (YYYY-MM-DD; default today, UTC)")
    c.add_argument("--fail-on", choices=["over", "warn"], default="over",
                   help="exit 1 when a budget is over (default) or already at 80%%")
    c.add_argument("--dir", help="runs folder holding ledger.duckdb (default .tokprof/runs or $TOKPROF_DIR)")
    c.add_argument("--ledger", metavar="FILE", help="ledger file (default <runs folder>/ledger.duckdb)")
    c.add_argument("--json", action="store_true", help="print JSON {schema, at, budgets:[...], over, warn}")
    c.set_defaults(func=check_command)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def budgets_file(arg: str | None, directory: str | None) -> Path:
    from tokprof.profiler.run_paths import runs_dir

    if arg:
        return Path(arg)
    if os.environ.get("TOKPROF_BUDGETS"):
        return Path(os.environ["TOKPROF_BUDGETS"])
    for name in ("budgets.toml", "budgets.json"):
        p = runs_dir(directory) / name
        if p.exists():
            return p
    raise FileNotFoundError(f"no budgets file: name one, set $TOKPROF_BUDGETS, or put budgets.toml in "
                            f"{runs_dir(directory)}")


def check_command(args: argparse.Namespace) -> int:
    import datetime as dt

    from tokprof.fleet.budgets import check, load_budgets
    from tokprof.fleet.ledger import ledger_path, opened
    from tokprof.fleet.stats import parse_date

    budgets = load_budgets(budgets_file(args.file, args.dir))
    at = parse_date(args.at, "--at") or dt.datetime.now(dt.timezone.utc).date()
    with opened(args.ledger or ledger_path(args.dir), read_only=True) as con:
        rows = check(con, budgets, at)
    over = sum(r["status"] == "over" for r in rows)
    warn = sum(r["status"] == "warn" for r in rows)
    if args.json:
        doc = {"schema": "tokprof.budgets/1", "at": at.isoformat(), "over": over, "warn": warn,
               "budgets": [{**r, "limit": str(r["limit"]), "used": _num(r["used"])} for r in rows]}
        print(json.dumps(doc, indent=2))
    else:
        render(rows)
    failing = over + (warn if args.fail_on == "warn" else 0)
    return 1 if failing else 0


def _num(d: Any) -> str:
    s = format(d, "f")
    return s.rstrip("0").rstrip(".") if "." in s else s


def render(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from tokprof.console_safe import SafeConsole, escape
    from tokprof.reports.html import money

    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    t.add_column("budget", overflow="ellipsis", no_wrap=True, max_width=28)
    t.add_column("period", no_wrap=True)
    for col in ("used", "limit", "%"):
        t.add_column(col, justify="right", no_wrap=True)
    t.add_column("status", no_wrap=True)
    style = {"ok": "green", "warn": "yellow", "over": "bold red"}
    for r in rows:
        fmt = (lambda v: f"{int(v):,}") if r["unit"] == "tokens" else (lambda v: money(v, r["unit"]))
        t.add_row(escape(r["budget"]), f"{r['period']} {r['from'][5:]}", fmt(r["used"]), fmt(r["limit"]),
                  f"{r['share']:.0%}", f"[{style[r['status']]}]{r['status'].upper()}[/]")
    SafeConsole(width=80).print(t, highlight=False)
