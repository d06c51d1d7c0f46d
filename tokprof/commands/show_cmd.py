"""`tokprof show [RUN]`: the span tree of a run with inclusive and exclusive tokens and cost."""

from __future__ import annotations

import argparse
import json


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
    p.add_argument("--currency", default="USD", choices=["USD", "CNY"])
    p.add_argument("--strict", action="store_true",
                   help="fail on the first damaged line instead of showing the spans that can be read")
    p.add_argument("--json", action="store_true", help="print the summary and tree as JSON")
    p.set_defaults(func=show_command)


def show_command(args: argparse.Namespace) -> int:
    from tokprof.profiler.store import load_run, resolve_run
    from tokprof.reports.console import render_tree, tree_rows

    import sys

    path = resolve_run(args.run, args.dir)
    problems: list[Exception] = []
    # A damaged file (crash, disk error) still shows every span that can be read, and says what was skipped.
    run = load_run(path) if args.strict else load_run(path, on_error=problems.append)
    from tokprof.console_safe import SafeConsole, clean

    for err in problems[:5]:
        print(clean(f"tokprof: warning: skipped {err}"), file=sys.stderr)
    if len(problems) > 5:
        print(f"tokprof: warning: ... and {len(problems) - 5} more damaged lines", file=sys.stderr)
    if args.json:
        doc = run.summary(currency=args.currency).to_dict()
        doc["tree"] = tree_rows(run, max_depth=args.depth, min_tokens=args.min_tokens)
        print(json.dumps(doc, indent=2))
        return 0
    render_tree(run, max_depth=args.depth, min_tokens=args.min_tokens, currency=args.currency,
                console=SafeConsole())
    return 0
