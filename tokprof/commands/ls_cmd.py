"""`tokprof ls`: the saved runs, newest first."""

from __future__ import annotations

import argparse
import json
import warnings


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("ls", help="list saved runs, newest first",
                       description="List the runs saved in the runs folder, newest first.")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("-n", "--limit", type=int, default=50, help="show at most N runs (default 50)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=ls_command)


def ls_command(args: argparse.Namespace) -> int:
    from tokprof.profiler.store import RunFileError, iter_run_files, load_run

    rows = []
    for path in list(iter_run_files(args.dir))[: args.limit]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = load_run(path)
            s = run.summary(top=0)
            rows.append({"run_id": run.run_id, "name": run.name, "path": str(path), "complete": run.complete,
                         "llm_calls": s.llm_calls, "tokens": s.tokens["total"],
                         "cost": None if s.cost is None else str(s.cost), "currency": s.currency,
                         "tags": run.tags, "error": None})
        except RunFileError as exc:
            rows.append({"run_id": path.stem, "name": None, "path": str(path), "error": str(exc)})
    if args.json:
        print(json.dumps({"runs": rows}, indent=2))
        return 0
    from tokprof.console_safe import SafeConsole as Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} runs", show_lines=False)
    for col in ("run id", "name", "calls", "tokens", "cost", "tags", "state"):
        table.add_column(col, justify="right" if col in ("calls", "tokens", "cost") else "left")
    for r in rows:
        if r["error"]:
            table.add_row(r["run_id"], "", "", "", "", "", f"[red]{r['error']}[/red]")
            continue
        cost = "unknown" if r["cost"] is None else f"{float(r['cost']):.4f} {r['currency']}"
        table.add_row(r["run_id"], r["name"], f"{r['llm_calls']:,}", f"{r['tokens']:,}", cost,
                      ", ".join(f"{k}={v}" for k, v in r["tags"].items()),
                      "complete" if r["complete"] else "[yellow]incomplete[/yellow]")
    Console().print(table)
    return 0
