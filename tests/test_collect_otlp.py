"""`tokprof collect`: the live OTLP/HTTP receiver (issue #17, point 3).

End to end: the real ``openai`` client calls the loopback LLM server (tests/llm_server.py) while two
recorders watch the same calls — tokprof's own OpenAI instrumentation, and OpenInference's third-party
``OpenAIInstrumentor`` exporting through the real OTLP/HTTP protobuf exporter to the receiver. The run the
receiver writes must have the same calls with the same tokens under the same tree as tokprof's own run.
GenAI semantic-convention spans (old and new attribute names) go through the same exporter; bad payloads get a
400 with a reason; a restarted receiver keeps what it had.
"""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request
from typing import Any

import openai
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from llm_server import Reply
from tokprof.profiler import profile, trace, uninstrument
from tokprof.profiler import span as trace_span
from tokprof.profiler.interchange.receiver import Collector, ReceiverServer
from tokprof.profiler.store import iter_run_files, load_run


@pytest.fixture
def receiver(tmp_path):
    server = ReceiverServer(Collector(tmp_path / "collected"), port=0).start()
    yield server
    server.stop()


def _provider(endpoint: str, service: str = "agent-app") -> TracerProvider:
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=10)))
    return tp


def _collected(server: ReceiverServer) -> list:
    return [load_run(p) for p in iter_run_files(server.collector.out_dir)]


def _calls(run) -> list[tuple[str | None, int, int, int]]:  # noqa: ANN001
    return [(s.llm.model, s.llm.usage.input_tokens, s.llm.usage.output_tokens, s.llm.usage.cache_read_tokens)
            for s in sorted(run.llm_spans(), key=lambda s: s.start_ns)]


def _tree(run) -> list[tuple[str, str]]:  # noqa: ANN001
    """(kind of parent -> llm) edges: which span each call hangs under, by name."""
    by_id = {s.span_id: s for s in run.spans}
    return sorted((by_id[s.parent_id].name if s.parent_id in by_id else "<root>", s.kind) for s in run.llm_spans())


def test_openinference_over_otlp_equals_tokprofs_own_recording(receiver, llm_server):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    replies = [Reply(text="Checking.", input_tokens=1200, cached_tokens=1024, output_tokens=80),
               Reply(text="Done: 5.", input_tokens=1350, cached_tokens=1152, output_tokens=12)]
    llm_server.script(*replies)
    tp = _provider(receiver.endpoint)
    tracer = tp.get_tracer("agent")
    oi = OpenAIInstrumentor()
    oi.instrument(tracer_provider=tp)
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)

    @trace(name="solve")
    def solve() -> None:
        with tracer.start_as_current_span("solve"):
            for q in ("What is 2+3?", "And now?"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": q}])

    try:
        with profile("own", instrument=["openai"]) as own:
            solve()
    finally:
        oi.uninstrument()
        uninstrument("openai")
        tp.force_flush()
        tp.shutdown()
    runs = _collected(receiver)
    assert len(runs) == 1
    got = runs[0]
    expected = [("gpt-4o-mini", 1200, 80, 1024), ("gpt-4o-mini", 1350, 12, 1152)]
    assert _calls(own) == expected  # what the server sent, seen by tokprof
    assert [c[1:] for c in _calls(got)] == [c[1:] for c in expected]  # ... and by the collected run
    assert all(s.llm.usage.source("input_tokens") == "provider" for s in got.llm_spans())
    assert _tree(got) == _tree(own) == [("solve", "llm"), ("solve", "llm")]
    assert got.metadata.get("trace_id")


def test_genai_semconv_old_and_new_names_over_http(receiver):
    """Spans shaped like the OTel GenAI instrumentations (new ``gen_ai.usage.input_tokens`` and the older
    ``gen_ai.usage.prompt_tokens``/``gen_ai.system``), exported by the real OTLP/HTTP exporter."""
    tp = _provider(receiver.endpoint)
    tracer = tp.get_tracer("genai")
    with tracer.start_as_current_span("invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent"}):
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 900, "gen_ai.usage.output_tokens": 30,
                "gen_ai.usage.cache_read.input_tokens": 512}):
            pass
        with tracer.start_as_current_span("execute_tool lookup", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}):
            pass
        with tracer.start_as_current_span("chat gpt-4o", attributes={
                "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.prompt_tokens": 1000, "gen_ai.usage.completion_tokens": 40}):
            pass
    tp.force_flush()
    tp.shutdown()
    (run,) = _collected(receiver)
    assert _calls(run) == [("gpt-4o", 900, 30, 512), ("gpt-4o", 1000, 40, 0)]
    kinds = sorted((s.kind, s.name) for s in run.spans)
    assert kinds == [("agent", "invoke_agent planner"), ("llm", "chat gpt-4o"), ("llm", "chat gpt-4o"),
                     ("tool", "lookup")]
    root = next(s for s in run.spans if s.kind == "agent")
    assert all(s.parent_id == root.span_id for s in run.spans if s is not root)


def _post(url: str, body: bytes, ctype: str = "application/json", encoding: str | None = None) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    if encoding:
        req.add_header("Content-Encoding", encoding)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _span(tid: str, sid: str, name: str, parent: str = "", **attrs: int | str) -> dict[str, Any]:
    return {"traceId": tid, "spanId": sid, "parentSpanId": parent, "name": name, "startTimeUnixNano": "1000",
            "endTimeUnixNano": "2000",
            "attributes": [{"key": k, "value": {"intValue": str(v)} if isinstance(v, int) else {"stringValue": v}}
                           for k, v in attrs.items()]}


def _doc(*spans: dict[str, Any]) -> bytes:
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []},
                                          "scopeSpans": [{"scope": {"name": "t"}, "spans": list(spans)}]}]}).encode()


TID = "5b8efff798038103d269b633813fc60c"


def test_json_gzip_incremental_and_bad_payloads(receiver):
    url = receiver.endpoint
    # Child first, parent later, in two requests (JSON, then gzipped JSON): the run grows as spans arrive.
    status, _ = _post(url, _doc(_span(TID, "eee19b7ec3c1b174", "chat", "eee19b7ec3c1b173",
                                      **{"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                                         "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2})))
    assert status == 200
    (run,) = _collected(receiver)
    assert len(run.spans) == 1
    status, _ = _post(url, gzip.compress(_doc(_span(TID, "eee19b7ec3c1b173", "agent"))), encoding="gzip")
    assert status == 200
    (run,) = _collected(receiver)
    assert len(run.spans) == 2 and run.llm_spans()[0].parent_id is not None

    # Bad payloads: a reason, a 400, and nothing already collected is touched.
    for body, ctype, reason in ((b"{not json", "application/json", "not JSON"),
                                (b"\x00\x01garbage", "application/x-protobuf", "protobuf"),
                                (b"[]", "application/json", "ExportTraceServiceRequest"),
                                (b"hello", "text/plain", "Content-Type")):
        status, payload = _post(url, body, ctype)
        assert status == 400 and reason in payload["message"], (body, payload)
    status, payload = _post(url, b"\x1f\x8bnot really", encoding="gzip")
    assert status == 400 and "gzip" in payload["message"]
    # Spans without ids are rejected one by one; the good one in the same request is kept.
    status, body = _post(url, _doc({"name": "no ids"}, _span(TID, "eee19b7ec3c1b175", "tool2")))
    assert status == 200 and json.loads(body)["partialSuccess"]["rejectedSpans"] == 1
    (run,) = _collected(receiver)
    assert len(run.spans) == 3
    assert _post(url.replace("/v1/traces", "/v1/metrics"), b"{}")[0] == 404


def test_restart_keeps_everything(tmp_path):
    out = tmp_path / "collected"
    first = ReceiverServer(Collector(out), port=0).start()
    try:
        assert _post(first.endpoint, _doc(_span(TID, "eee19b7ec3c1b173", "agent")))[0] == 200
    finally:
        first.stop()
    second = ReceiverServer(Collector(out), port=0).start()
    try:
        assert _post(second.endpoint, _doc(_span(TID, "eee19b7ec3c1b174", "step", "eee19b7ec3c1b173")))[0] == 200
        (run,) = [load_run(p) for p in iter_run_files(out)]
        assert sorted(s.name for s in run.spans) == ["agent", "step"]
    finally:
        second.stop()


def test_collect_command_is_registered(capsys):
    from tokprof.cli import main

    with pytest.raises(SystemExit):
        main(["collect", "--help"])
    assert "/v1/traces" in capsys.readouterr().out


# --- and out again (issue #17, point 4) -----------------------------------------------------------------------
def test_export_to_endpoint_round_trips_through_the_receiver(receiver, tmp_path, capsys, monkeypatch):
    """`tokprof export --otlp-endpoint` sends a run to our own receiver: same calls, tokens and tree; cost,
    currency and evidence arrive as tokprof.* attributes."""
    from tokprof.cli import main
    from tokprof.profiler import record_llm_call
    from tokprof.profiler.accounting import call_cost
    from tokprof.profiler.interchange.otlp import decode_attributes
    from tokprof.profiler.model import Usage

    src = tmp_path / "src"
    monkeypatch.setenv("TOKPROF_DIR", str(src))
    with profile("to-send", save=True) as own:
        with trace_span("plan"):
            record_llm_call(provider="openai", model="gpt-4o", messages=[{"role": "user", "content": "hi"}],
                            output={"role": "assistant", "content": "hello"},
                            usage=Usage.from_provider(input_tokens=1000, output_tokens=50, cache_read_tokens=600))
    base = receiver.endpoint.removesuffix("/v1/traces")  # a bare base URL gets /v1/traces added
    assert main(["export", own.run_id, "--dir", str(src), "--otlp-endpoint", base, "--header", "X-Test=1"]) == 0
    assert "sent" in capsys.readouterr().err
    (got,) = _collected(receiver)
    assert got.run_id == own.run_id and _calls(got) == _calls(own) == [("gpt-4o", 1000, 50, 600)]
    assert _tree(got) == _tree(own)
    # The spool keeps what was on the wire: the tokprof.* attributes.
    line = json.loads(next((receiver.collector.spool).glob("*.jsonl")).read_text().splitlines()[0])
    spans = [sp for rs in line["resourceSpans"] for ss in rs["scopeSpans"] for sp in ss["spans"]]
    llm = next(decode_attributes(sp["attributes"]) for sp in spans
               if decode_attributes(sp["attributes"]).get("tokprof.span.kind") == "llm")
    expected = call_cost(own.llm_spans()[0].llm, "USD")
    assert llm["tokprof.cost.amount"] == str(expected.amount) and llm["tokprof.cost.currency"] == "USD"
    # the label is tokprof's own (computed, or estimated when the price row is not confirmed): carried as is
    assert llm["tokprof.cost.source"] == expected.source and llm["tokprof.usage.evidence"] == "provider"
    assert json.loads(llm["tokprof.usage.sources"])["input_tokens"] == "provider"


def test_export_to_unreachable_endpoint_is_one_clear_error(tmp_path, capsys, monkeypatch):
    from tokprof.cli import main

    src = tmp_path / "src"
    monkeypatch.setenv("TOKPROF_DIR", str(src))
    with profile("x", save=True) as own:
        with trace_span("step"):
            pass
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    assert main(["export", own.run_id, "--dir", str(src), "--otlp-endpoint", f"http://127.0.0.1:{port}"]) != 0
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}/v1/traces" in err and "Traceback" not in err


def test_collect_command_serves_until_interrupted(tmp_path):
    """The real command in its own process: prints its endpoint, accepts an export, writes the run, and stops
    cleanly on Ctrl-C (SIGINT) with a summary."""
    import os
    import re
    import signal
    import subprocess
    import sys

    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-c", "from tokprof.cli import main; raise SystemExit(main())",
                             "collect", "--port", "0", "--out", str(out)],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stderr.readline()
        endpoint = re.search(r"http://127\.0\.0\.1:\d+/v1/traces", first).group(0)
        assert _post(endpoint, _doc(_span(TID, "eee19b7ec3c1b173", "agent")))[0] == 200
        assert [load_run(p).spans[0].name for p in iter_run_files(out)] == ["agent"]
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "1 spans received, 1 runs written" in err


def test_older_genai_event_messages_are_read(receiver):
    """Semconv <= 1.27 kept prompts in span events (gen_ai.content.prompt/completion); 1.28-1.36 in
    gen_ai.*.message / gen_ai.choice events. Both arrive over the real exporter and become the call's messages."""
    tp = _provider(receiver.endpoint)
    tracer = tp.get_tracer("old-genai")
    with tracer.start_as_current_span("chat a", attributes={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4",
                                                              "gen_ai.usage.prompt_tokens": 20,
                                                              "gen_ai.usage.completion_tokens": 3}) as sp:
        sp.add_event("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": "hi"}])})
        sp.add_event("gen_ai.content.completion",
                     {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "hello"}])})
    with tracer.start_as_current_span("chat b", attributes={"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4",
                                                              "gen_ai.usage.input_tokens": 30,
                                                              "gen_ai.usage.output_tokens": 4}) as sp:
        sp.add_event("gen_ai.system.message", {"content": "be brief"})
        sp.add_event("gen_ai.user.message", {"content": "2+2?"})
        sp.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                       "message": json.dumps({"content": "4"})})
    tp.force_flush()
    tp.shutdown()
    calls = sorted((s.llm for r in _collected(receiver) for s in r.llm_spans()), key=lambda c: c.usage.input_tokens)
    assert [(c.messages, c.output["content"]) for c in calls] == [
        ([{"role": "user", "content": "hi"}], "hello"),
        ([{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}], "4")]


def test_hostile_payloads_never_break_the_receiver(receiver):
    """Random JSON edits of a valid request and random bytes: always a 200 (maybe partial) or a 400 with a
    reason, the server stays up, and the good trace sent first is still there afterwards."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    good = json.loads(_doc(_span(TID, "eee19b7ec3c1b173", "agent", **{"gen_ai.usage.input_tokens": 5})))
    assert _post(receiver.endpoint, json.dumps(good).encode())[0] == 200
    leaves = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**70), st.text(max_size=8), st.just([]),
                       st.just({}))

    def paths(v: Any, prefix: tuple = ()) -> list[tuple]:
        out = [prefix]
        if isinstance(v, dict):
            for k, x in v.items():
                out += paths(x, prefix + (k,))
        elif isinstance(v, list):
            for i, x in enumerate(v):
                out += paths(x, prefix + (i,))
        return out

    all_paths = [p for p in paths(good) if p]

    @settings(derandomize=True, deadline=None, database=None, max_examples=150,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(path=st.sampled_from(all_paths), value=leaves, raw=st.binary(max_size=64), use_raw=st.booleans(),
           ctype=st.sampled_from(["application/json", "application/x-protobuf"]))
    def check(path, value, raw, use_raw, ctype):
        if use_raw:
            body = raw
        else:
            doc = json.loads(json.dumps(good))
            node = doc
            for k in path[:-1]:
                node = node[k]
            node[path[-1]] = value
            body = json.dumps(doc).encode()
            ctype = "application/json"
        status, payload = _post(receiver.endpoint, body, ctype)
        assert status in (200, 400), (status, payload)
        if status == 400:
            assert payload["message"]

    check()
    runs = _collected(receiver)
    assert any(s.name == "agent" and s.llm is None for r in runs for s in r.spans)


def test_official_otel_openai_v2_over_otlp_equals_tokprofs_own_recording(receiver, llm_server):
    """The official ``opentelemetry-instrumentation-openai-v2`` (2.4b0, with ``opentelemetry-util-genai``
    1.1b0: 1.3b0 dropped the ``instruments`` module 2.4b0 imports) exporting over the real OTLP/HTTP exporter
    while the real ``openai`` client calls the loopback server: the collected run has tokprof's own calls,
    input/output tokens and tree.

    openai-v2 2.4b0 wraps chat completions and embeddings only (not the Responses API), and its chat path sets
    prompt/completion tokens but no cache read (``patch.py``; the ``gen_ai.usage.cache_read.input_tokens``
    helper in ``response_extractors.py`` is not wired to chat), so the collected calls carry no cache read
    where tokprof's own recording has the provider's 1024/1152: the receiver cannot invent what was not sent."""
    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    llm_server.script(Reply(text="Checking.", input_tokens=1200, cached_tokens=1024, output_tokens=80),
                      Reply(text="Done: 5.", input_tokens=1350, cached_tokens=1152, output_tokens=12))
    tp = _provider(receiver.endpoint)
    tracer = tp.get_tracer("agent")
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=tp)
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)

    @trace(name="solve")
    def solve() -> None:
        with tracer.start_as_current_span("solve"):
            for q in ("What is 2+3?", "And now?"):
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": q}])

    try:
        with profile("own", instrument=["openai"]) as own:
            solve()
    finally:
        inst.uninstrument()
        uninstrument("openai")
        tp.force_flush()
        tp.shutdown()
    (got,) = _collected(receiver)
    assert _calls(own) == [("gpt-4o-mini", 1200, 80, 1024), ("gpt-4o-mini", 1350, 12, 1152)]  # what was sent
    assert _calls(got) == [("gpt-4o-mini", 1200, 80, 0), ("gpt-4o-mini", 1350, 12, 0)]
    assert all(s.llm.usage.source("input_tokens") == "provider" for s in got.llm_spans())
    assert _tree(got) == _tree(own) == [("solve", "llm"), ("solve", "llm")]
