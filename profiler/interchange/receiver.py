"""A live OTLP/HTTP trace receiver: spans in (protobuf or JSON), tokprof run files out, as they arrive.

Point any OpenTelemetry exporter at ``http://127.0.0.1:<port>/v1/traces`` (OpenLLMetry, OpenInference, the
OTel GenAI instrumentations): each ``ExportTraceServiceRequest`` is

1. decoded — ``application/x-protobuf`` (``opentelemetry-proto``) or ``application/json`` (the OTLP JSON
   encoding), optionally ``Content-Encoding: gzip`` (bounded by :data:`MAX_BODY_BYTES` decompressed);
2. validated — a body that is not an export request gets ``400`` and a reason (a ``google.rpc.Status``-
   shaped JSON ``{"code": 3, "message": ...}``); spans without trace or span id are rejected one by one and
   reported in the response's ``partialSuccess``, the rest are kept;
3. made durable — appended, one OTLP-JSON line per request and trace, to ``<runs>/.otlp-spool/<trace>.jsonl``
   and flushed to disk *before* the ``200`` answer, so nothing acknowledged is ever lost;
4. turned into a run — all spans of the trace so far go through the OTLP importer
   (:mod:`tokprof.profiler.interchange.otlp`: GenAI semantic conventions old and new, OpenInference) and the
   run file ``<runs>/<run_id>.jsonl`` is rewritten atomically by the store's writer (a crash leaves the
   previous complete snapshot, never half a file). Spans arriving later for the same trace update the run.

A restarted receiver reloads the spool, so runs keep growing across restarts. Only loopback is served.
Reference: OTLP/HTTP (https://opentelemetry.io/docs/specs/otlp/#otlphttp): ``POST /v1/traces``, responses
``200`` with ``ExportTraceServiceResponse``, ``400`` for a malformed request.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange import otlp

log = logging.getLogger("tokprof.collect")

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Largest request body accepted (after gzip): a bigger one is refused with 413, not read into memory."""
SPOOL = ".otlp-spool"
REBUILD_ALWAYS = 32
"""A trace of up to this many spans has its run rebuilt on every request. A bigger one only once the spans
not yet in its run are a quarter of it (and by the flusher within :data:`FLUSH_SECONDS`, and at close):
rebuilding on every request re-imported the whole trace each time, quadratic (a one-span-per-request
exporter took 0.15 s per request at 800 spans, growing, holding the lock every sender waits on)."""
FLUSH_SECONDS = 2.0
REQUEST_TIMEOUT = 60.0
"""Seconds a connection may stay silent (headers or body not coming): then it is closed, so a stalled or
hostile client (slowloris) never holds one of the receiver's threads for ever."""


class BadPayload(ValueError):
    """A request that is not an OTLP trace export (the reason goes back in the 400)."""


def decode_request(body: bytes, content_type: str, encoding: str) -> dict[str, Any]:
    """The request as an OTLP-JSON dict (hex ids), whatever its wire encoding."""
    if encoding.lower() == "gzip":
        try:
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = d.decompress(body, MAX_BODY_BYTES + 1)
        except zlib.error as exc:
            raise BadPayload(f"gzip body is corrupt ({exc})") from None
        if len(body) > MAX_BODY_BYTES:
            raise BadPayload(f"decompressed body exceeds {MAX_BODY_BYTES} bytes")
    ctype = content_type.split(";")[0].strip().lower()
    if ctype in ("application/x-protobuf", "application/protobuf"):
        return _from_protobuf(body)
    if ctype in ("application/json", ""):
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadPayload(f"body is not JSON ({exc})") from None
        except RecursionError:
            raise BadPayload("body is JSON nested too deeply to read") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("resourceSpans", []), list):
            raise BadPayload("expected an ExportTraceServiceRequest {\"resourceSpans\": [...]}")
        return doc
    raise BadPayload(f"unsupported Content-Type {content_type!r}; send application/x-protobuf or application/json")


def _from_protobuf(body: bytes) -> dict[str, Any]:
    try:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:
        raise BadPayload("protobuf OTLP needs the opentelemetry-proto package (pip install 'tokprof[collect]'); "
                         "or configure the exporter for http/json") from None

    req = ExportTraceServiceRequest()
    try:
        req.ParseFromString(body)
    except DecodeError as exc:
        raise BadPayload(f"body is not a protobuf ExportTraceServiceRequest ({exc})") from None
    # The protobuf JSON mapping writes ids in base64; the OTLP importer reads both, but hex is what the
    # OTLP JSON encoding specifies, so the spool holds hex.
    doc = MessageToDict(req)
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                for key, n in (("traceId", 32), ("spanId", 16), ("parentSpanId", 16)):
                    if sp.get(key):
                        sp[key] = otlp.hex_id(sp[key], n)
    return doc


def split_by_trace(doc: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """``{trace_id: OTLP-JSON doc with only that trace's spans}`` and the reasons spans were rejected."""
    out: dict[str, dict[str, Any]] = {}
    rejected: list[str] = []
    for ri, rs in enumerate(doc.get("resourceSpans") or []):
        if not isinstance(rs, dict):
            rejected.append(f"resourceSpans[{ri}] is not an object")
            continue
        scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans")) or []
        if not isinstance(scopes, list):
            rejected.append(f"resourceSpans[{ri}].scopeSpans is not a list")
            continue
        for si, ss in enumerate(scopes):
            spans = ss.get("spans") if isinstance(ss, dict) else None
            if not isinstance(spans, list):
                rejected.append(f"resourceSpans[{ri}].scopeSpans[{si}] has no spans list")
                continue
            for pi, sp in enumerate(spans):
                if not isinstance(sp, dict) or not sp.get("traceId") or not sp.get("spanId"):
                    rejected.append(f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}] has no traceId/spanId")
                    continue
                if not isinstance(sp["traceId"], str) or not isinstance(sp["spanId"], str):
                    rejected.append(f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}] ids are not strings")
                    continue
                tid = otlp.hex_id(sp["traceId"], 32)
                tdoc = out.setdefault(tid, {"resourceSpans": []})
                # One resourceSpans entry per (request resource, scope), holding this trace's spans.
                key = (ri, si)
                holders = tdoc.setdefault("_holders", {})
                if key not in holders:
                    resource = rs.get("resource") if isinstance(rs.get("resource"), dict) else {}
                    holders[key] = {"resource": resource,
                                    "scopeSpans": [{"scope": ss.get("scope") or {}, "spans": []}]}
                    tdoc["resourceSpans"].append(holders[key])
                holders[key]["scopeSpans"][0]["spans"].append(sp)
    for tdoc in out.values():
        tdoc.pop("_holders", None)
    return out, rejected


def spool_name(tid: str) -> str:
    """The spool file's stem for a trace id: the id itself when it is a safe name (OTLP's hex ids), else its
    letters and digits plus a hash of the whole id: ``a-b`` and ``ab`` are different traces (stripping the
    other characters alone merged their spans into one run)."""
    safe = "".join(c for c in tid if c.isalnum())[:64]
    if safe and safe == tid:
        return safe
    return f"{safe[:40] or 'trace'}_{hashlib.sha1(tid.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


class Collector:
    """The receiver's state: per trace, the spool file and the spans so far; writes runs as spans arrive."""

    def __init__(self, out_dir: str | Path | None = None) -> None:
        from tokprof.profiler.store import make_private_dir, runs_dir

        self.out_dir = runs_dir(out_dir)
        self.spool = self.out_dir / SPOOL
        make_private_dir(self.out_dir)
        make_private_dir(self.spool)
        self._lock = threading.Lock()
        # trace id -> requests spooled. The spans themselves are read back from the spool file when the run is
        # rebuilt: holding every line of every trace ever received grew without bound in a long-lived collector
        self.traces: dict[str, int] = {}
        self.runs: dict[str, Path] = {}  # trace id -> run file
        self.spans_received = 0
        self._size: dict[str, int] = {}  # trace id -> spans spooled (as of its last rebuild, plus since)
        self._pending: dict[str, int] = {}  # trace id -> spans spooled since its run was last written
        self._closed = threading.Event()
        for f in sorted(self.spool.glob("*.jsonl")):  # a restart picks up where the last process stopped
            lines = self._spooled(f.stem)
            if lines:
                self.traces[f.stem] = len(lines)
                self._write_run(f.stem)

    def _spooled(self, tid: str) -> list[str]:
        """The trace's spooled request lines. Split at "\n" only: the spool is written with
        ensure_ascii=False, so a span attribute may hold a raw U+2028 that str.splitlines would cut at."""
        try:
            text = (self.spool / f"{tid}.jsonl").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [x for x in text.split("\n") if x.strip()]

    def accept(self, doc: dict[str, Any]) -> tuple[int, list[str]]:
        """Spool and convert one decoded request. Returns (spans accepted, rejection reasons)."""
        by_trace, rejected = split_by_trace(doc)
        accepted = 0
        with self._lock:
            for tid, tdoc in by_trace.items():
                safe = spool_name(tid)
                line = json.dumps(tdoc, ensure_ascii=False, separators=(",", ":"))
                path = self.spool / f"{safe}.jsonl"
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                try:
                    os.write(fd, (line + "\n").encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
                self.traces[safe] = self.traces.get(safe, 0) + 1
                n = sum(len(ss["spans"]) for rs in tdoc["resourceSpans"] for ss in rs["scopeSpans"])
                accepted += n
                self._size[safe] = self._size.get(safe, 0) + n
                self._pending[safe] = self._pending.get(safe, 0) + n
                if self._size[safe] <= REBUILD_ALWAYS or self._pending[safe] * 4 >= self._size[safe]:
                    self._write_run(safe)
            self.spans_received += accepted
        return accepted, rejected

    def flush(self) -> None:
        """Write the run of every trace with spans spooled since its last rebuild."""
        with self._lock:
            for tid in list(self._pending):
                self._write_run(tid)

    def start_flusher(self, every: float = FLUSH_SECONDS) -> None:
        """Flush in a background thread every ``every`` seconds until :meth:`close`."""
        def loop() -> None:
            while not self._closed.wait(every):
                try:
                    self.flush()
                except Exception as exc:  # noqa: BLE001 - the spool keeps the spans; the next flush retries
                    log.warning("collect: writing runs failed (%s: %s)", type(exc).__name__, exc)

        threading.Thread(target=loop, name="tokprof-collect-flush", daemon=True).start()

    def close(self) -> None:
        """Stop the flusher and write every pending run."""
        self._closed.set()
        self.flush()

    def _write_run(self, tid: str) -> None:
        """Rebuild the trace's run from every span spooled so far and save it atomically."""
        from tokprof.profiler.store import save_run

        self._pending.pop(tid, None)  # a failed rebuild is not retried until new spans come: the spool has them
        try:
            result = otlp.import_text("\n".join(self._spooled(tid)), self.spool / f"{tid}.jsonl")
        except otlp.InterchangeError as exc:
            log.warning("trace %s: %s (its spans stay in the spool)", tid, exc)
            return
        except Exception as exc:  # noqa: BLE001 - never lose the receiver over one trace; the spool keeps it
            from tokprof.profiler.hooks import internal_error

            internal_error("collect: building a run", exc)
            return
        self._size[tid] = sum(len(run.spans) for run in result.runs)
        for run in result.runs:
            run.metadata.setdefault("source", "otlp-collect")
            self.runs[tid] = save_run(run, self.out_dir)


class _Handler(BaseHTTPRequestHandler):
    server: "ReceiverServer"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug("collect: " + format, *args)

    def _reply(self, status: int, payload: Any, protobuf: bool) -> None:
        if protobuf and status == 200:
            from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

            resp = ExportTraceServiceResponse()
            if payload.get("partialSuccess"):
                resp.partial_success.rejected_spans = payload["partialSuccess"]["rejectedSpans"]
                resp.partial_success.error_message = payload["partialSuccess"]["errorMessage"]
            body, ctype = resp.SerializeToString(), "application/x-protobuf"
        else:
            body, ctype = json.dumps(payload).encode("utf-8"), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    @property
    def timeout(self) -> float | None:  # type: ignore[override]  # read by StreamRequestHandler.setup
        return self.server.request_timeout

    def _length(self) -> int | None:
        """The body's Content-Length, or ``None`` (and an answer sent, the connection closed) when there is
        none to trust: not a decimal number, negative (``rfile.read(-1)`` would read until the client
        closes: no bound), chunked (not supported: its chunks would be read as the next request)."""
        raw = (self.headers.get("Content-Length") or "").strip()
        self.close_connection = True  # until the body is read exactly: never parse leftovers as a request
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self._reply(411, {"code": 3, "message": "chunked bodies are not supported; send a Content-Length"},
                        False)
            return None
        if raw and not raw.isdigit():
            self._reply(400, {"code": 3, "message": f"Content-Length {raw[:40]!r} is not a size in bytes"}, False)
            return None
        length = int(raw or 0)
        if length > MAX_BODY_BYTES:
            self._reply(413, {"code": 8, "message": f"body of {length} bytes exceeds {MAX_BODY_BYTES}"}, False)
            return None
        self.close_connection = False
        return length

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        protobuf = "protobuf" in (self.headers.get("Content-Type") or "")
        length = self._length()
        if length is None:
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:  # the client stopped (closed, or silent past the timeout): nothing to answer
            self.close_connection = True
            return
        if self.path.split("?")[0].rstrip("/") != "/v1/traces":
            self._reply(404, {"code": 5, "message": f"no such endpoint {self.path}; POST traces to /v1/traces"},
                        False)
            return
        try:
            doc = decode_request(body, self.headers.get("Content-Type") or "",
                                 self.headers.get("Content-Encoding") or "")
            accepted, rejected = self.server.collector.accept(doc)
        except BadPayload as exc:
            self._reply(400, {"code": 3, "message": str(exc)}, False)
            return
        except RecursionError:  # a request nested deeper than the importer reads (json.loads caught above)
            self._reply(400, {"code": 3, "message": "request nested too deeply to read"}, False)
            return
        except (TypeError, AttributeError, KeyError) as exc:  # a shape the checks above did not foresee
            self._reply(400, {"code": 3, "message": f"malformed ExportTraceServiceRequest ({type(exc).__name__}: "
                                                    f"{exc})"}, False)
            return
        except OSError as exc:  # the spool could not be written: tell the sender to retry
            log.warning("collect: cannot spool spans (%s)", exc)
            self._reply(503, {"code": 14, "message": f"cannot store spans ({exc})"}, False)
            return
        except Exception as exc:  # noqa: BLE001 - a case not foreseen: one log line, an answer, keep serving
            log.warning("collect: a request failed (%s: %s); the receiver keeps serving", type(exc).__name__,
                        str(exc)[:200])
            self._reply(500, {"code": 13, "message": f"internal error ({type(exc).__name__})"}, False)
            return
        payload: dict[str, Any] = {}
        if rejected:
            payload["partialSuccess"] = {"rejectedSpans": len(rejected), "errorMessage": "; ".join(rejected[:5])}
        self._reply(200, payload, protobuf)



class ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, collector: Collector, port: int = 4318) -> None:
        self.collector = collector
        self.request_timeout: float | None = REQUEST_TIMEOUT
        super().__init__(("127.0.0.1", port), _Handler)
        collector.start_flusher()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """What escaped a handler (a client gone mid-answer, a timeout while reading, a case not foreseen):
        one log line; socketserver's default prints a traceback on the collector's terminal."""
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (TimeoutError, ConnectionError)):
            log.debug("collect: %s: %s", client_address, exc)
            return
        log.warning("collect: a request from %s failed (%s: %s); the receiver keeps serving", client_address,
                    type(exc).__name__, str(exc)[:200])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def start(self) -> "ReceiverServer":
        """Serve in a background thread (tests, embedding); the CLI calls ``serve_forever`` itself."""
        threading.Thread(target=self.serve_forever, name="tokprof-collect", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def server_close(self) -> None:
        super().server_close()
        self.collector.close()  # every trace's run written (the CLI's Ctrl-C ends here)


def gzip_body(data: bytes) -> bytes:
    """Helper for senders (and tests): gzip a request body."""
    return gzip.compress(data)
