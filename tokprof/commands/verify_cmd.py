"""`tokprof verify RUN --passes a,b --base-url URL --model M [--json]`: replay every request the passes
rewrote, and the original, to an OpenAI-compatible model; the share of calls where it takes the same next
action (same tool and arguments, or the same answer) is a measured fidelity."""

from __future__ import annotations

import argparse
import json
import os


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "verify",
        help="measure fidelity: does a model act the same on the rewritten requests?",
        description="Apply --passes to RUN, then send each rewritten request and its original to the model "
                    "at --base-url (any OpenAI-compatible /chat/completions endpoint, e.g. a local llama.cpp "
                    "server) and compare its next actions. Prints the agreement rate (evidence: measured, "
                    "with that model). Calls the passes left unchanged are not sent.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run id, run file, folder, or foreign trace file")
    p.add_argument("--passes", required=True, help="comma-separated passes in order")
    p.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    p.add_argument("--model", required=True, help="model name sent to the endpoint")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY",
                   help="environment variable holding the endpoint's key, if it needs one")
    p.add_argument("--max-calls", type=int, default=None, help="check at most this many changed calls per run")
    p.add_argument("--max-tokens", type=int, default=256, help="bound on each reply (default 256)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for each reply (default 600: a local model on a CPU is slow)")
    p.add_argument("--extra-body", default=None,
                   help='JSON object merged into each request, e.g. \'{"cache_prompt": false}\' for llama.cpp')
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--dir", help="runs folder to resolve run ids in")
    p.set_defaults(func=verify_command)


def verify_command(args: argparse.Namespace) -> int:
    from tokprof.commands.report_cmd import load_runs, parse_passes
    from tokprof.optimizers.base import available_passes, optimize_runs
    from tokprof.optimizers.verify import openai_asker, verify_run

    passes = parse_passes([args.passes])
    known = available_passes()
    for name in passes:
        if name not in known:
            raise ValueError(f"unknown pass {name!r}; available: {', '.join(known)}")
    runs = load_runs(args.runs, args.dir, folders=True)
    extra = json.loads(args.extra_body) if args.extra_body else None
    if extra is not None and not isinstance(extra, dict):
        raise ValueError(f"--extra-body must be a JSON object, got {args.extra_body!r}")
    ask = openai_asker(args.base_url, args.model, os.environ.get(args.api_key_env), args.timeout,
                       max_tokens=args.max_tokens, extra_body=extra)
    results = [verify_run(run, new, ask, args.model, args.max_calls)
               for run, new, _ in optimize_runs(runs, passes)]
    checked = sum(len(r.checks) for r in results)
    agreed = sum(c.agree for r in results for c in r.checks)
    rate = agreed / checked if checked else None
    if args.json:
        print(json.dumps({"passes": passes, "model": args.model, "evidence": "measured", "checked": checked,
                          "agreement": rate, "runs": [r.to_dict() for r in results]}, indent=2))
        return 0
    from tokprof.console_safe import clean

    # run and span ids come from the run file, the actions from the model's answers: cleaned before printing
    for r in results:
        a = "n/a (no call changed)" if r.agreement is None else f"{r.agreement:.0%}"
        print(clean(f"{r.run_id}: {len(r.checks)} changed call(s) checked, {r.unchanged} unchanged; agreement {a}"))
        for c in r.checks:
            if not c.agree:
                print(clean(f"  {c.span_id}: original -> {' '.join(c.original)[:100]}"))
                print(clean(f"  {' ' * len(c.span_id)}  rewritten -> {' '.join(c.rewritten)[:100]}"))
    total = "n/a" if rate is None else f"{rate:.1%}"
    print(f"agreement with {args.model}: {total} of {checked} changed call(s) [measured; passes: {', '.join(passes)}]")
    return 0
