"""`tokprof report [RUN ...]`: the savings report of one run, a set of runs or an imported corpus.

Writes one self-contained HTML file (``-o``, default ``tokprof-report.html``), prints the headline,
waterfall and top spans on the console, or the report as JSON (``--json``, schema ``tokprof.report/1``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tokprof.fleet.report import fleet_command
from tokprof.run_files import load_file
from tokprof.optimizers.base import expand_passes
from tokprof.profiler.providers.currency import run_currency
from tokprof.profiler.run_loader import load_run
from tokprof.profiler.store import resolve_run
from tokprof.reports.console import render_report
from tokprof.reports.html import write_html, write_private
from tokprof.reports.json import render_json
from tokprof.reports.model import build_optimized_report, build_report
from tokprof.reports.renderers import get_renderer

DEFAULT_OUTPUT = "tokprof-report.html"


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "report",
        help="write the savings report (HTML) of runs, optionally optimized by passes",
        description="Report RUN (run ids, id prefixes, run files, or trace files of other tools such as "
                    "τ-bench / SWE-agent results; default: the latest run) as one self-contained HTML file: "
                    "headline, savings waterfall, where the tokens go, context growth, call graph, "
                    "diagnostics, attribution and drill-down. With --passes, the pass pipeline runs first "
                    "and the report shows before -> after.",
    )
    add_common(p)
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run id, id prefix, run file, trace file or folder of them (default: latest)")
    # one value per flag (repeatable), so `--passes default RUN` does not read RUN as a pass
    p.add_argument("--passes", action="append", default=[], metavar="PASSES",
                   help="optimization passes to apply, in order: comma-separated names, or `default` "
                        "for caching + compression (repeatable; see `tokprof optimize --passes list`)")
    p.add_argument("--fleet", action="store_true",
                   help="report every run in the fleet ledger instead (see `tokprof ingest`): spend over time, "
                        "models, cache trend, top functions/tools, diagnostics across runs, budgets")
    p.add_argument("--fleet-by", metavar="KEY", help="with --fleet: stack spend by this key (default tag:team)")
    p.add_argument("--budgets", metavar="FILE", help="with --fleet: budgets file (default budgets.toml in the runs folder)")
    p.add_argument("--ledger", metavar="FILE", help="with --fleet: ledger file (default <runs folder>/ledger.duckdb, "
                                                    "as for ingest and stats)")
    p.set_defaults(func=report_command)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help=f"HTML file to write (default {DEFAULT_OUTPUT})")
    p.add_argument("--currency", default=None, type=str.upper, choices=["USD", "CNY"],
                   help="currency of every amount (default: the runs'; CNY for runs on CNY-priced models; "
                        "$TOKPROF_CURRENCY)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema tokprof.report/1) "
                                                       "instead of writing HTML (same as --format json)")
    p.add_argument("--format", choices=["html", "json", "console"], default=None,
                   help="one renderer only: html (write -o), json or console (print); default: console "
                        "summary plus the HTML file")
    p.add_argument("--title", help="report title (default: the run's name)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--no-html", action="store_true", help="do not write the HTML file (console summary only)")


def load_runs(refs: list[str], directory: str | None, *, folders: bool = False) -> list[Any]:
    """Runs from ids/prefixes/run files, or from other tools' trace files through the importers; with
    ``folders``, a folder stands for every run or trace file below it. No ``refs``: the latest run."""
    if not refs:
        return [load_run(resolve_run(None, directory))]
    runs: list[Any] = []
    for ref in refs:
        path = Path(ref)
        if folders and path.is_dir():
            files = sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith(".")
                           and not f.name.lower().startswith("readme"))
            if not files:
                raise FileNotFoundError(f"{path}: folder holds no run files")
            for f in files:
                runs.extend(load_file(f))
        elif path.is_file():
            runs.extend(load_file(path))
        else:
            runs.append(load_run(resolve_run(ref, directory)))
    return runs


def parse_passes(items: list[str]) -> list[str]:
    """Pass names from the command line: comma-separated lists, and ``default`` for the default pipeline."""
    return [str(p) for p in expand_passes(items)]


def emit(model: Any, args: argparse.Namespace) -> int:
    """Write/print the model as the flags ask: JSON on stdout, or HTML file plus console summary."""
    fmt = getattr(args, "format", None)
    if fmt in ("html", "console"):
        out = get_renderer(fmt).render(model)
        if fmt == "console":
            sys.stdout.write(out if isinstance(out, str) else out.decode("utf-8"))
            return 0
        path = write_private(Path(args.output), out.encode("utf-8") if isinstance(out, str) else out)
        print(f"report written to {path}")
        return 0
    if args.json or fmt == "json":
        if not args.no_html and args.output != DEFAULT_OUTPUT:
            write_html(model, args.output)
        print(render_json(model))
        return 0
    from tokprof.console_safe import SafeConsole as Console

    console = Console(stderr=False)
    render_report(model, console=console)
    if not args.no_html:
        path = write_html(model, args.output)
        from tokprof.console_safe import escape

        console.print(f"report written to [bold]{escape(path)}[/bold] ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def report_command(args: argparse.Namespace) -> int:
    if getattr(args, "fleet", False):
        return fleet_command(args)
    runs = load_runs(args.runs, args.dir, folders=True)
    passes = parse_passes(args.passes)
    args.currency = run_currency(runs, args.currency)
    if passes:
        model = build_optimized_report(runs, passes, currency=args.currency, title=args.title)
    else:
        model = build_report(runs, currency=args.currency, title=args.title)
    return emit(model, args)
