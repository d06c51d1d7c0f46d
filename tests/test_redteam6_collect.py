"""Red team 6: `tokprof collect`'s OTLP/HTTP receiver against hostile HTTP, below what an OTel exporter
sends: a Content-Length that is not a number or is negative, a JSON body nested past the recursion limit, a
chunked body, a client that stops sending (slowloris). Each must get an answer (or a closed connection),
never a traceback on the collector's terminal, never an unbounded read or a thread held forever; the good
trace sent before is still there. Raw sockets: the header bytes are the attack. Each test failed before
its fix in profiler/interchange/receiver.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from tokprof.profiler.interchange.receiver import Collector, ReceiverServer
from tokprof.profiler.store import iter_run_files, load_run

TID, SID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b173"
GOOD = json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [
    {"traceId": TID, "spanId": SID, "name": "agent", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]}).encode()


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverServer]:
    server = ReceiverServer(Collector(tmp_path / "collected"), port=0)
    server.request_timeout = 2.0  # seconds a client may stay silent (default 60); small so the tests end soon
    server.start()
    yield server
    server.stop()


def _exchange(server: ReceiverServer, data: bytes, *, half_close: bool = False) -> bytes:
    """Send ``data``; what the server answers before it closes (at most 64 KiB). ``half_close=False`` keeps
    our side open, as a slow or hostile client does: a server that waits for more bytes shows as a
    ``socket.timeout`` after 30 s (a hang guard, far above any answer here, not a timing assertion)."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port)) as s:
        s.settimeout(30)
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        got = b""
        while len(got) < 65536:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            if b"\r\n\r\n" in got:
                head, _, rest = got.partition(b"\r\n\r\n")
                n = next((int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")), 0)
                if len(rest) >= n:
                    break
        return got


def _post(length: bytes, body: bytes, extra: bytes = b"") -> bytes:
    return (b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + (b"Content-Length: " + length + b"\r\n" if length else b"") + extra + b"\r\n" + body)


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.") else 0


def _good_trace_kept(server: ReceiverServer) -> bool:
    runs = [load_run(p) for p in iter_run_files(server.collector.out_dir)]
    return any(s.name == "agent" for r in runs for s in r.spans)


@pytest.mark.parametrize("length", [b"abc", b"1e3", b"-1", b"-99999", b" 12 12"])
def test_content_length_not_a_size_is_a_400(length: bytes, receiver: ReceiverServer,
                                            capfd: pytest.CaptureFixture[str]) -> None:
    """Before: ``int('abc')`` raised in ``do_POST`` (socketserver printed a traceback, the client got no
    answer); ``-1`` passed the size check and ``rfile.read(-1)`` read until the client closed: no bound on
    the body (the 64 MiB limit bypassed) and a client that keeps the connection open holds the thread."""
    assert _status(_exchange(receiver, _post(b"%d" % len(GOOD), GOOD))) == 200
    reply = _exchange(receiver, _post(length, b'{"resourceSpans": []}'))
    assert _status(reply) == 400 and b"Content-Length" in reply
    assert "Traceback" not in capfd.readouterr().err
    assert _status(_exchange(receiver, _post(b"%d" % len(GOOD), GOOD))) == 200
    assert _good_trace_kept(receiver)


def test_json_nested_past_the_recursion_limit_is_a_400(receiver: ReceiverServer,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    """Before: json.loads raised RecursionError (not a ValueError): a traceback on the collector's terminal
    and no answer, so the exporter retried the same body."""
    body = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    reply = _exchange(receiver, _post(b"%d" % len(body), body))
    assert _status(reply) == 400 and b"nested" in reply
    assert "Traceback" not in capfd.readouterr().err


def test_chunked_body_is_refused_not_misread(receiver: ReceiverServer, capfd: pytest.CaptureFixture[str]) -> None:
    """A chunked body has no Content-Length: it was read as empty (400 "not JSON") and its chunks were then
    parsed as the next request on the kept-alive connection. Now 411 Length Required, connection closed."""
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(GOOD), GOOD)
    reply = _exchange(receiver, _post(b"", chunked, b"Transfer-Encoding: chunked\r\n"))
    assert _status(reply) == 411 and reply.count(b"HTTP/1.") == 1
    assert "Traceback" not in capfd.readouterr().err


@pytest.mark.parametrize("data", [b"POST /v1/traces HTTP/1.1\r\nHost: x\r\n",  # headers never finished
                                  _post(b"%d" % (len(GOOD) + 100), GOOD)])  # body shorter than announced
def test_silent_client_is_dropped(data: bytes, receiver: ReceiverServer, capfd: pytest.CaptureFixture[str]) -> None:
    """Slowloris: before, the handler had no socket timeout, so each silent connection held a thread forever
    (a few thousand exhaust the process). Now the server closes it after ``request_timeout`` (2 s here):
    the client sees the connection end (before: the 30 s guard raised ``socket.timeout``)."""
    reply = _exchange(receiver, data)
    assert _status(reply) in (0, 400, 408)
    assert "Traceback" not in capfd.readouterr().err
    assert _status(_exchange(receiver, _post(b"%d" % len(GOOD), GOOD))) == 200


def test_unforeseen_handler_error_is_logged_not_printed(receiver: ReceiverServer, monkeypatch: pytest.MonkeyPatch,
                                                         capfd: pytest.CaptureFixture[str],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """Whatever else escapes the request's handling (here the collector raising a RuntimeError) is a 500 and
    one log line; before, socketserver printed its traceback on stderr and the client got no answer."""
    def boom(*_: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(receiver.collector, "accept", boom)
    assert _status(_exchange(receiver, _post(b"%d" % len(GOOD), GOOD))) == 500  # an answer: the sender retries
    assert "Traceback" not in capfd.readouterr().err
    assert any("RuntimeError" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    assert _status(_exchange(receiver, _post(b"%d" % len(GOOD), GOOD))) == 200


def _one_span_request(i: int) -> bytes:
    sp = {"traceId": TID, "spanId": "%016x" % (i + 2), "parentSpanId": SID, "name": "chat",
          "startTimeUnixNano": str(1000 + i), "endTimeUnixNano": str(2000 + i),
          "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                         {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                         {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}}]}
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [sp]}]}]}).encode()


def test_one_span_per_request_is_not_quadratic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exporter with a SimpleSpanProcessor sends each span alone. Before: every request re-imported the
    whole trace, so n spans cost n²/2 span imports (600 spans: 180,300; 800 took 108 s, 0.15 s a request
    and growing, under the lock every sender waits on). Now a trace past 32 spans is rebuilt when a quarter
    of it is new (and by the flusher, and at close): the work is linear. Counted, not timed; and at close the
    run holds every span with the provider's tokens."""
    from tokprof.profiler.interchange import otlp, receiver as rcv

    imported = [0]
    real = otlp.import_text

    def counting(text: str, path: Any = None) -> Any:
        result = real(text, path)
        imported[0] += sum(len(r.spans) for r in result.runs)
        return result

    monkeypatch.setattr(rcv.otlp, "import_text", counting)
    col = Collector(tmp_path / "collected")
    n = 600
    for i in range(n):
        col.accept(json.loads(_one_span_request(i)))
    col.close()
    assert imported[0] < 10 * n, imported[0]  # before: n * (n + 1) / 2 = 180,300
    (run,) = [load_run(p) for p in iter_run_files(col.out_dir)]
    assert len(run.llm_spans()) == n
    assert sum(s.llm.usage.input_tokens for s in run.llm_spans()) == 100 * n


def test_pending_spans_are_written_by_the_flusher(tmp_path: Path) -> None:
    """Spans past the rebuild threshold reach the run file without another request and without close."""
    import threading

    col = Collector(tmp_path / "collected")
    for i in range(100):
        col.accept(json.loads(_one_span_request(i)))
    assert col._pending  # the last spans wait for a rebuild
    col.start_flusher(every=0.05)
    done = threading.Event()
    for _ in range(600):  # a hang guard (30 s), not a timing assertion
        if not col._pending:
            done.set()
            break
        done.wait(0.05)
    col.close()
    assert done.is_set()
    (run,) = [load_run(p) for p in iter_run_files(col.out_dir)]
    assert len(run.llm_spans()) == 100


def test_a_long_lived_collector_does_not_hold_every_span(tmp_path: Path) -> None:
    """Before: ``Collector.traces`` kept every spooled line of every trace ever received, so a collector
    left running grew without bound (each agent run is a new trace). The spool file holds them; a rebuild
    reads it back. Measured as memory still allocated after 300 traces of one 20 kB span each (6 MB sent):
    before, over 6 MB stayed; now what stays is per trace bookkeeping."""
    import tracemalloc

    col = Collector(tmp_path / "collected")
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(300):
            sp = {"traceId": "%032x" % (i + 1), "spanId": SID, "name": "agent", "startTimeUnixNano": "1",
                  "endTimeUnixNano": "2", "attributes": [{"key": "input.value", "value": {"stringValue": "x" * 20_000}}]}
            col.accept({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [sp]}]}]})
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    col.close()
    assert held < 2_000_000, held
    assert len(list(iter_run_files(col.out_dir))) == 300


def test_trace_ids_that_differ_only_in_punctuation_stay_two_runs(tmp_path: Path) -> None:
    """The spool file was named by the id's letters and digits alone: traces ``run-1x`` and ``run1x`` (ids
    that are not OTLP hex, as some SDKs and hand-written exporters send) shared one spool file, so each
    rebuild of one re-imported the other's spans and their span counts (which decide when a run is rebuilt)
    were mixed. Now each trace has its own file. Oracle: two traces sent, two spool files, two runs, each
    with its own call and 100 tokens."""
    col = Collector(tmp_path / "collected")
    for i, tid in enumerate(("run-1x", "run1x")):  # not hex, not base64: kept as sent
        sp = {"traceId": tid, "spanId": "%016x" % (i + 1), "name": "chat", "startTimeUnixNano": "1000",
              "endTimeUnixNano": "2000",
              "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "100"}},
                             {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "10"}}]}
        col.accept({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [sp]}]}]})
    col.close()
    assert len(list(col.spool.glob("*.jsonl"))) == 2
    runs = [load_run(p) for p in iter_run_files(col.out_dir)]
    assert len(runs) == 2
    assert sorted(len(r.llm_spans()) for r in runs) == [1, 1]
    assert all(r.llm_spans()[0].llm.usage.input_tokens == 100 for r in runs)
