"""`tokprof whatif RUN --model M [--model M2] [--json]`: what the same requests would cost on another model
(re-tokenized, re-priced under its prices and cache rules, output estimated). Labelled estimated."""

from __future__ import annotations

import argparse
import json


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "whatif",
        help="estimate what a run would cost on another model",
        description="Re-tokenize every call's input with each --model's tokenizer, estimate its output "
                    "tokens, and price the calls under that model's prices and cache rules; compare with "
                    "what the run paid. Estimated: another model may behave differently.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run id, run file, folder, or foreign trace file")
    p.add_argument("--model", action="append", required=True, help="target model (repeat for several)")
    p.add_argument("--currency", default="USD")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--dir", help="runs folder to resolve run ids in")
    p.set_defaults(func=whatif_command)


def whatif_command(args: argparse.Namespace) -> int:
    from tokprof.commands.report_cmd import load_runs
    from tokprof.optimizers.whatif import CAVEAT, _fmt, paid_total, whatif

    runs = load_runs(args.runs, args.dir, folders=True)
    paid = paid_total(runs, args.currency)
    results = [whatif(runs, m, args.currency) for m in args.model]
    models = sorted({s.llm.model for r in runs for s in r.llm_spans() if s.llm is not None and s.llm.model})
    if args.json:
        print(json.dumps({"currency": args.currency, "paid": paid.to_dict(), "recorded_models": models,
                          "whatif": [w.to_dict() for w in results], "caveat": CAVEAT}, indent=2))
        return 0
    from tokprof.console_safe import clean

    # recorded model names come from the runs (foreign files): no control characters to the terminal
    print(clean(f"{len(runs)} run(s) on {', '.join(models) or 'unknown model'}: paid {_fmt(paid.expected)} "
          f"{args.currency}" + ("" if paid.is_point else f" (range {_fmt(paid.low)}-{_fmt(paid.high)})")))
    for w in results:
        rng = "" if w.cost.is_point else f" (range {_fmt(w.cost.low)}-{_fmt(w.cost.high)})"
        tok = "" if w.exact_tokenizer else " [tokenizer approximate]"
        print(clean(f"  on {w.model}: input {w.input_tokens:,} tok, output ~{w.output_tokens:,} tok, cost "
                    f"{_fmt(w.cost.expected)} {args.currency}{rng} [estimated]{tok}"
                    + (f"; {w.unpriced} call(s) without a price" if w.unpriced else "")))
    print(CAVEAT)
    return 0
