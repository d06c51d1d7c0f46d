"""`tokprof report [RUN ...]`: the savings report of one run, a set of runs or an imported corpus.

Writes one self-contained HTML file (``-o``, default ``tokprof-report.html``), prints the headline,
waterfall and top spans on the console, or the report as JSON (``--json``, schema ``tokprof.report/1``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
    p.add_argument("runs", nargs="*", metavar="RUN", help="run id, id prefix, run file or trace file (default: latest)")
    p.add_argument("--passes", nargs="+", default=[], metavar="PASS",
                   help="optimization passes to apply, in order (names or comma-separated lists, or `default` "
                        "for caching + compression; see "
                        "`tokprof optimize --passes list`)")
    p.set_defaults(func=report_command)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help=f"HTML file to write (default {DEFAULT_OUTPUT})")
    p.add_argument("--currency", default="USD", choices=["USD", "CNY"], help="currency of every amount")
    p.add_argument("--json", action="store_true", help="print the report as JSON (schema tokprof.report/1) "
                                                       "instead of writing HTML")
    p.add_argument("--title", help="report title (default: the run's name)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--no-html", action="store_true", help="do not write the HTML file (console summary only)")


def load_runs(refs: list[str], directory: str | None, *, folders: bool = False) -> list[Any]:
    """Runs from ids/prefixes/run files, or from other tools' trace files through the importers; with
    ``folders``, a folder stands for every run or trace file below it. No ``refs``: the latest run."""
    from tokprof.profiler.store import load_run, resolve_run

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


def load_file(path: Path) -> list[Any]:
    """The runs of one file: a tokprof run file, else whatever the importers read in it."""
    from tokprof.profiler.store import RunFileError, load_run

    run_error: RunFileError | None = None
    if path.name.lower().endswith((".jsonl", ".jsonl.gz")):
        try:
            return [load_run(path)]
        except RunFileError as exc:
            run_error = exc  # perhaps a chat log: let the importers try
    try:
        return _import(path)
    except ValueError:
        # a damaged tokprof run file: its own error (file:line, what is wrong), not "unknown trace format"
        if run_error is not None and _starts_like_run_file(path):
            raise run_error from None
        raise


def _starts_like_run_file(path: Path) -> bool:
    import gzip

    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(512)
    except (OSError, EOFError):
        return False
    return b'"type":"run"' in head.replace(b" ", b"")


def _import(path: Path) -> list[Any]:
    try:
        from tokprof.profiler.interchange import import_file
    except ImportError as exc:  # pragma: no cover - the importers ship with tokprof
        raise ValueError(f"{path}: not a tokprof run file, and the trace importers are not available") from exc
    result = import_file(path)
    if result.errors:
        from tokprof.console_safe import clean

        print(clean(f"tokprof: warning: {result.error_summary()}"), file=sys.stderr)
    if not result.runs:
        raise ValueError(f"{path}: no runs could be imported")
    return list(result.runs)


def parse_passes(items: list[str]) -> list[str]:
    """Pass names from the command line: comma-separated lists, and ``default`` for the default pipeline."""
    from tokprof.optimizers.base import expand_passes

    return [str(p) for p in expand_passes(items)]


def emit(model: Any, args: argparse.Namespace) -> int:
    """Write/print the model as the flags ask: JSON on stdout, or HTML file plus console summary."""
    if args.json:
        from tokprof.reports.json import render_json

        if not args.no_html and args.output != DEFAULT_OUTPUT:
            from tokprof.reports.html import write_html

            write_html(model, args.output)
        print(render_json(model))
        return 0
    from tokprof.console_safe import SafeConsole as Console

    from tokprof.reports.console import render_report

    console = Console(stderr=False)
    render_report(model, console=console)
    if not args.no_html:
        from tokprof.reports.html import write_html

        path = write_html(model, args.output)
        from tokprof.console_safe import escape

        console.print(f"report written to [bold]{escape(path)}[/bold] ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def report_command(args: argparse.Namespace) -> int:
    from tokprof.reports.model import build_optimized_report, build_report

    runs = load_runs(args.runs, args.dir)
    passes = parse_passes(args.passes)
    if passes:
        model = build_optimized_report(runs, passes, currency=args.currency, title=args.title)
    else:
        model = build_report(runs, currency=args.currency, title=args.title)
    return emit(model, args)
