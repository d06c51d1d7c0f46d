"""`tokprof ls`: the saved runs, newest first."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

from tokprof.profiler.run_loader import RunFileError, load_run
from tokprof.profiler.store import iter_run_files
from tokprof.reports.format import compact, money


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("ls", help="list saved runs, newest first",
                       description="List the runs saved in the runs folder, newest first.")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("-n", "--limit", type=int, default=50, help="show at most N runs (default 50)")
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=ls_command)


def ls_command(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for path in list(iter_run_files(args.dir))[: args.limit]:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                run = load_run(path)
            s = run.summary(top=0)
            models: dict[str, int] = {}
            for sp in run.llm_spans():
                m = (sp.llm.model if sp.llm is not None else None) or "unknown"
                models[m] = models.get(m, 0) + 1
            # imported runs: which tool's trace and which file they came from
            source = run.metadata.get("source")
            source_file = run.metadata.get("source_file")
            rows.append({"run_id": run.run_id, "name": run.name, "path": str(path), "complete": run.complete,
                         "models": sorted(models, key=lambda k: -models[k]),
                         "source": str(source) if source else None,
                         "source_file": str(source_file) if source_file else None,
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

    # 80 columns: the id is shortened (any unique prefix works as RUN), numbers are compact, and
    # the name column (name, model, source file) wraps instead of cutting numbers short
    table = Table(title=f"{len(rows)} runs", show_lines=False, box=None, pad_edge=False, collapse_padding=True)
    table.add_column("run id", no_wrap=True)
    table.add_column("name · model · source", overflow="fold", ratio=1)
    for col in ("calls", "tokens", "cost"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for r in rows:
        if r["error"]:
            table.add_row(r["run_id"][:12], f"[red]{r['error']}[/red]", "", "", "", "")
            continue
        cost = "unknown" if r["cost"] is None else money(r["cost"], r["currency"])
        label = r["name"] or ""
        if r["models"]:
            label += f" · {', '.join(r['models'][:2])}" + (f" +{len(r['models']) - 2}" if len(r["models"]) > 2 else "")
        if r["source"] or r["source_file"]:
            label += f" · [dim]{r['source'] or ''}{': ' if r['source'] and r['source_file'] else ''}" \
                     f"{r['source_file'] or ''}[/dim]"
        if r["tags"]:
            label += " [dim]" + ", ".join(f"{k}={v}" for k, v in r["tags"].items()) + "[/dim]"
        table.add_row(r["run_id"][:12], label, compact(r["llm_calls"]), compact(r["tokens"]), cost,
                      "complete" if r["complete"] else "[yellow]incomplete[/yellow]")
    Console().print(table)
    return 0
