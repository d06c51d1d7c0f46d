"""`tokprof collect [--port N]`: receive OpenTelemetry traces over OTLP/HTTP and write them as tokprof runs."""

from __future__ import annotations

import argparse
import sys


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser(
        "collect",
        help="receive OTLP/HTTP traces (GenAI semconv, OpenInference) live and save them as runs",
        description="Listen on 127.0.0.1:PORT for OTLP/HTTP trace exports (POST /v1/traces, protobuf or JSON, "
                    "optionally gzip). Spans are grouped into one run per trace and the run file is updated as "
                    "spans arrive; every accepted request is first appended to <runs>/.otlp-spool so nothing "
                    "acknowledged is lost. Point an instrumented app at it with "
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://127.0.0.1:PORT/v1/traces. Stop with Ctrl-C.",
    )
    p.add_argument("--port", type=int, default=4318, help="port on 127.0.0.1 (default 4318, the OTLP/HTTP port)")
    p.add_argument("--out", "--dir", dest="out", metavar="DIR",
                   help="runs folder (default .tokprof/runs or $TOKPROF_DIR)")
    p.set_defaults(func=collect_command)


def collect_command(args: argparse.Namespace) -> int:
    from tokprof.profiler.interchange.receiver import Collector, ReceiverServer

    collector = Collector(args.out)
    try:
        server = ReceiverServer(collector, args.port)
    except OSError as exc:
        raise OSError(f"cannot listen on 127.0.0.1:{args.port} ({exc.strerror or exc}); pick another --port") from None
    print(f"tokprof collect: listening on {server.endpoint}, writing runs to {collector.out_dir} "
          f"({len(collector.traces)} traces reloaded from the spool). Ctrl-C stops.", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print(f"tokprof collect: {collector.spans_received} spans received, {len(collector.runs)} runs written "
              f"to {collector.out_dir}", file=sys.stderr)
    return 0
