"""`tokprof show [RUN]`: the span tree of a run with inclusive and exclusive tokens and cost."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tokprof.profiler.interchange import detect_format
from tokprof.profiler.providers.currency import run_currency
from tokprof.profiler.run_loader import RunFileError, load_run
from tokprof.profiler.store import resolve_run
from tokprof.reports.console import render_tree, tree_rows
from tokprof.console_safe import SafeConsole, clean


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "show",
        help="show a run's span tree (latest run by default)",
        description="Show RUN (a run id or prefix, or a run file; default: the latest run) as a tree of "
                    "spans with tokens in/out/cached, cost and time, inclusive (the span and everything "
                    "it called) and exclusive (the span alone).",
    )
    p.add_argument("run", nargs="?", help="run id, id prefix, or path (default: latest)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--depth", type=int, default=None, help="limit the tree depth")
    p.add_argument("--min-tokens", type=int, default=0, help="hide subtrees with fewer inclusive tokens")
    p.add_argument("--currency", default=None, type=str.upper, choices=["USD", "CNY"],
                   help="currency of every amount (default: the run's; CNY for a run on CNY-priced models; "
                        "$TOKPROF_CURRENCY)")
    p.add_argument("--strict", action="store_true",
                   help="fail on the first damaged line instead of showing the spans that can be read")
    p.add_argument("--json", action="store_true", help="print the summary and tree as JSON")
    p.add_argument("--view", choices=["carried", "own"], default="carried",
                   help="carried (default): charge each input token to the span that put it into the "
                        "conversation; own: each LLM call's own tokens (self/total, like a time profiler)")
    p.set_defaults(func=show_command)


def show_command(args: argparse.Namespace) -> int:
    path = resolve_run(args.run, args.dir)
    problems: list[Exception] = []
    # A damaged file (crash, disk error) still shows every span that can be read, and says what was skipped.
    try:
        run = load_run(path) if args.strict else load_run(path, on_error=problems.append)
    except RunFileError:
        _foreign_trace(path)
        raise
    for err in problems[:5]:
        print(clean(f"tokprof: warning: skipped {err}"), file=sys.stderr)
    if len(problems) > 5:
        print(f"tokprof: warning: ... and {len(problems) - 5} more damaged lines", file=sys.stderr)
    args.currency = run_currency(run, args.currency)
    if args.json:
        doc = run.summary(currency=args.currency).to_dict()
        doc["tree"] = tree_rows(run, max_depth=args.depth, min_tokens=args.min_tokens)
        print(json.dumps(doc, indent=2))
        return 0
    render_tree(run, max_depth=args.depth, min_tokens=args.min_tokens, currency=args.currency, view=args.view,
                console=SafeConsole())
    return 0


def _foreign_trace(path: object) -> None:
    """Another tool's trace (τ-bench, SWE-agent, OTLP...) is not a run file: say how to use it."""
    p = Path(str(path))
    if not p.is_file():
        return
    try:
        fmt = detect_format(p)
    except Exception:  # noqa: BLE001 - not a format the importers know either: the loader's error stands
        return
    raise ValueError(f"{p} is a {fmt} trace, not a tokprof run file: bring it in with `tokprof import {p}` "
                     f"(then `tokprof show`), or report it directly with `tokprof report {p}`")
