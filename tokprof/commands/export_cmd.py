"""`tokprof export RUN --format otlp [-o FILE]`: a run as OTLP-JSON with GenAI semantic conventions."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "export",
        help="export a run as OpenTelemetry OTLP-JSON (GenAI semantic conventions)",
        description="Write RUN (run id, id prefix or run file; default: the latest run) as an OTLP-JSON "
                    "ExportTraceServiceRequest using the OpenTelemetry GenAI semantic conventions "
                    "(gen_ai.usage.*, gen_ai.request.model, gen_ai.input.messages...), ready to POST to a "
                    "collector's /v1/traces. tokprof.* attributes keep what the conventions have no place "
                    "for, so `tokprof import` gives back the same run.",
    )
    p.add_argument("run", nargs="?", help="run id, id prefix, or path (default: latest)")
    p.add_argument("--format", default="otlp", choices=["otlp"], help="output format (default otlp)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (.gz compresses; default: stdout)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    from tokprof.profiler.interchange.otlp import export_runs, write_otlp
    from tokprof.profiler.store import load_run, resolve_run

    run = load_run(resolve_run(args.run, args.dir))
    if args.output:
        path = write_otlp([run], args.output)
        from tokprof.console_safe import clean

        print(clean(f"wrote {path} ({len(run.spans)} spans of run {run.run_id})"), file=sys.stderr)
    else:
        json.dump(export_runs([run]), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0
