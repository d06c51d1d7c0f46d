"""`tokprof demo`: run the bundled agent, re-run it with live optimization, write the comparison report."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "demo",
        help="run the bundled example agent twice (baseline, then optimized live) and write a report",
        description="Fully offline, a few seconds: runs a LangChain tool-calling support agent over bundled "
                    "data (a scripted chat model priced as claude-sonnet-4-5), profiles it, re-runs it with "
                    "the default live optimization passes (response cache, prompt-cache planning, dedupe, "
                    "observation masking, JSON minify), checks both runs give the same final answer, and "
                    "writes an HTML report of the measured savings.",
    )
    p.add_argument("-o", "--output", default="tokprof-report.html", help="report file (default %(default)s)")
    p.add_argument("--no-optimize", action="store_true",
                   help="only the baseline run (profile and summarise, no re-run, no comparison)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--json", action="store_true", help="print the headline as one JSON document")
    p.set_defaults(func=demo_command)


def demo_command(args: argparse.Namespace) -> int:
    from tokprof.console_safe import SafeConsole as Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tokprof.demo import MODEL_CALLS_PER_RUN, AnswerMismatch, run_demo

    err = Console(stderr=True)
    runs = 1 if args.no_optimize else 2
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[step]}"), TimeElapsedColumn(), console=err,
                  disable=args.json,
                  transient=False) as bar:
        task = bar.add_task("baseline run", total=runs * MODEL_CALLS_PER_RUN + (0 if args.no_optimize else 1),
                            step="")
        done = {"n": 0}

        def progress(message: str) -> None:
            if message.startswith(("merged",)):
                return  # not a model call
            done["n"] += 1
            phase = "baseline run" if done["n"] <= MODEL_CALLS_PER_RUN else "optimized re-run"
            if message == "report written":
                phase = "report"
            bar.update(task, advance=1, description=phase, step=message)

        try:
            result = run_demo(None if args.no_optimize else args.output, optimize=not args.no_optimize,
                              directory=args.dir, progress=progress)
        except AnswerMismatch as exc:
            err.print(f"[bold red]tokprof demo: the optimized re-run changed the agent's answer[/]\n{exc}")
            return 1
    headline = result.headline()
    if args.json:
        print(json.dumps(headline, indent=2))
        return 0
    out = Console(file=sys.stdout)
    out.print(str(result.baseline.summary()))
    before, after = result.before, result.after
    out.print(f"\nbaseline run saved: {result.baseline.path}")
    if after is None or result.optimized is None:
        return 0
    saved = headline["saved"]

    def money(x: object) -> str:
        return "unknown" if x is None else f"${x:.4f}"

    out.print(f"optimized run saved: {result.optimized.path}")
    out.print(f"live passes: {', '.join(headline['optimized']['live_passes'])}")
    out.print("final answer: [green]identical in both runs[/]")
    out.print(
        f"\n[bold]tokens {before.total_tokens:,} → {after.total_tokens:,} "
        f"(-{saved['total_tokens_pct']:.1f}%), input {before.input_tokens:,} → {after.input_tokens:,} "
        f"(cache reads {after.cache_read_tokens:,}); cost {money(before.cost)} → {money(after.cost)}"
        + (f" (-{saved['cost_pct']:.1f}%)" if saved.get("cost_pct") is not None else "")
        + "  [measured on a live re-run][/]")
    out.print(f"report: {result.report_path}  ({result.timings['total']:.1f} s)")
    return 0
