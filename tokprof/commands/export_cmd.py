"""`tokprof export RUN --format otlp [-o FILE | --otlp-endpoint URL]`: a run as OTLP-JSON with GenAI semantic
conventions, to stdout, a file, or sent live to an OTLP/HTTP endpoint."""

from __future__ import annotations

import argparse
import json
import sys

from tokprof.fleet.export import export_command as export_parquet
from tokprof.profiler.interchange.otlp import export_runs, write_otlp
from tokprof.profiler.interchange.otlp_send import send_runs
from tokprof.profiler.store import iter_run_files, resolve_run
from tokprof.profiler.run_loader import load_run
from tokprof.profiler.run_paths import runs_dir
from tokprof.console_safe import clean


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
    p.add_argument("run", nargs="?", help="run id, id prefix, or path (default: latest); with --format parquet: "
                                          "the output folder")
    p.add_argument("--format", default="otlp", choices=["otlp", "parquet"],
                   help="output format (default otlp); parquet: the fleet ledger's tables as a Parquet dataset "
                        "partitioned by day (see `tokprof ingest`)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (.gz compresses; default: stdout)")
    p.add_argument("--dir", help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--otlp-endpoint", nargs="?", const="", metavar="URL",
                   help="send the run to this OTLP/HTTP endpoint (a Collector, Langfuse, Phoenix, `tokprof collect`) "
                        "instead of writing it; without URL, $OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. Costs, "
                        "currency and evidence labels travel as tokprof.* attributes")
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE",
                   help="HTTP header for --otlp-endpoint (repeatable; default: $OTEL_EXPORTER_OTLP_HEADERS)")
    p.add_argument("--all", action="store_true", help="export every run in the runs folder")
    p.add_argument("--currency", default="USD", choices=["USD", "CNY"], help="currency of computed costs")
    p.set_defaults(func=export_command)


def export_command(args: argparse.Namespace) -> int:
    if args.format == "parquet":
        return export_parquet(args)
    runs = ([load_run(p) for p in iter_run_files(args.dir)] if getattr(args, "all", False)
            else [load_run(resolve_run(args.run, args.dir))])
    if not runs:
        raise FileNotFoundError(f"no runs in {runs_dir(args.dir)}")
    if getattr(args, "otlp_endpoint", None) is not None:
        headers = None
        if args.header:
            headers = {}
            for h in args.header:
                k, sep, v = h.partition("=")
                if not sep or not k.strip():
                    raise ValueError(f"--header {h!r}: expected KEY=VALUE")
                headers[k.strip()] = v.strip()
        sent = send_runs(runs, args.otlp_endpoint or None, headers, currency=args.currency)
        note = f"; endpoint rejected {sent['partial_success']}" if sent["partial_success"] else ""
        # the endpoint's partialSuccess message is the remote server's text: cleaned like any data
        print(clean(f"sent {sent['spans']} spans of {len(runs)} run(s) to {sent['endpoint']} (HTTP {sent['status']})"
                    f"{note}"), file=sys.stderr)
        return 1 if sent["partial_success"] and sent["partial_success"].get("rejectedSpans") else 0
    if len(runs) > 1 and not args.output:
        json.dump(export_runs(runs), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    run = runs[0]
    if args.output:
        path = write_otlp(runs, args.output)
        print(clean(f"wrote {path} ({sum(len(r.spans) for r in runs)} spans of {len(runs)} run(s))"), file=sys.stderr)
    else:
        json.dump(export_runs([run]), sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0
