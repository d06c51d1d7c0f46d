"""`tokprof compare A B`: a before/after report of two recorded runs (e.g. without and with live passes)."""

from __future__ import annotations

import argparse

from tokprof.commands.report_cmd import add_common, emit, load_runs
from tokprof.reports.model import build_comparison


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "compare",
        help="before/after report of two runs",
        description="Compare run A (before) with run B (after): the same report as `tokprof report`, with "
                    "tokens and cost before -> after, context growth of both, and a per-call diff of the "
                    "messages (calls paired by span id when B was derived from A by `tokprof optimize`, else by "
                    "call order within the same call path).",
    )
    p.add_argument("before", metavar="A", help="the run before (id, prefix, run file or trace file)")
    p.add_argument("after", metavar="B", help="the run after")
    add_common(p)
    p.set_defaults(func=compare_command)


def compare_command(args: argparse.Namespace) -> int:
    before = load_runs([args.before], args.dir)
    after = load_runs([args.after], args.dir)
    from tokprof.profiler.providers.currency import run_currency

    args.currency = run_currency(list(before) + list(after), args.currency)
    if len(before) != len(after):
        raise ValueError(f"{args.before} holds {len(before)} runs but {args.after} holds {len(after)}; "
                         "compare files with the same runs")
    from tokprof.reports.model import same_task

    same, why = same_task(before, after)
    if not same:
        import sys

        from tokprof.console_safe import clean

        print(clean(f"tokprof: warning: {args.before} and {args.after} are not the same task ({why}); "
                    "the difference is not a measured saving"), file=sys.stderr)
    model = build_comparison(before, after, currency=args.currency, title=args.title)
    return emit(model, args)
