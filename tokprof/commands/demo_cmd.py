"""`tokprof demo`: run the bundled agent, re-run it with live optimization, write the comparison report."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal
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
    # imported here: the demo brings LangChain (~1 s), which every other command's start-up must not pay
    from tokprof.demo import MODEL_CALLS_PER_RUN, AnswerMismatch, run_demo
    from tokprof.demo_checks import run_checks
    from tokprof.console_safe import SafeConsole as Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
                              directory=args.dir, progress=progress, checks=run_checks)
        except AnswerMismatch as exc:
            err.print(f"[bold red]tokprof demo: the optimized re-run changed the agent's answer[/]\n{exc}")
            return 1
    headline = result.headline()
    if args.json:
        print(json.dumps(headline, indent=2))
        return 0
    from rich.markup import escape

    out = Console(file=sys.stdout)
    out.print(str(result.baseline.summary()))
    before, after = result.before, result.after
    out.print(f"\nbaseline run saved: {result.baseline.path}")
    if after is None or result.optimized is None:
        return 0
    saved = headline["saved"]

    def money(x: object) -> str:
        from tokprof.profiler.providers.currency import money as fmt

        return fmt(x, str((headline.get("baseline") or {}).get("currency") or "USD"))  # type: ignore[arg-type]

    out.print(f"optimized run saved: {result.optimized.path}")
    out.print(f"live passes: {', '.join(headline['optimized']['live_passes'])}")
    out.print("final answer: [green]identical in both runs[/]")
    out.print(
        f"\n[bold]tokens {before.total_tokens:,} → {after.total_tokens:,} "
        f"(-{saved['total_tokens_pct']:.1f}%), input {before.input_tokens:,} → {after.input_tokens:,} "
        f"(cache reads {after.cache_read_tokens:,}); cost {money(before.cost)} → {money(after.cost)}"
        + (f" (-{saved['cost_pct']:.1f}%)" if saved.get("cost_pct") is not None else "")
        + escape(f"  [measured on a live re-run; {headline['evidence_note']}]") + "[/]")
    out.print(f"baseline caching: {headline['baseline_caching']}")
    out.print("\neach pass alone on the baseline run (simulated, credited only with its own change):")
    for c in headline.get("pass_contributions") or []:
        if "error" in c:
            out.print(f"  {c['pass']:18} could not be simulated: {c['error']}")
            continue
        kind = "lossless" if c["lossless"] else "lossy"
        fid = "" if c["fidelity"] is None else f", fidelity {c['fidelity']:.2f}"
        out.print(f"  {c['pass']:18} saves {money(Decimal(c['saved']) if c['saved'] else None)} "
                  f"({kind}, {c['calls_changed']} call(s) changed{fid})")
    lc = headline.get("lossy_check")
    if lc:
        out.print(f"\nlossy pass check: {lc['pass']} (max {lc['max_tokens']:,} tokens per output) on the same agent "
                  f"with {8} more orders: the model's next action changed on {lc['actions_changed']} of "
                  f"{lc['calls_rewritten']} rewritten call(s)")
        for c in lc["changed"]:
            out.print(f"  was: {c['original'][:110]}\n  now: {c['rewritten'][:110]}\n"
                      f"  context fidelity of that call {c['fidelity']:.2f} (lost {', '.join(c['lost'][:4])})")
        verdict = "[green]caught by the fidelity check[/]" if lc["caught"] else "[red]NOT caught by the fidelity check[/]"
        out.print(f"  {verdict} (threshold {lc['fidelity']['threshold']}; {lc['fidelity']['below_threshold']} "
                  f"call(s) below it)")
    out.print(f"report: {result.report_path}  ({result.timings['total']:.1f} s)")
    return 0
