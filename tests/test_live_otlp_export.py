"""Live OTLP export from ``profile()`` (issue #17, point 4): ``TOKPROF_OTLP_EXPORT`` sends each run as its
profile ends to an OTLP/HTTP endpoint — here ``tokprof collect``'s receiver on loopback — while the real
``openai`` client calls the loopback LLM server. The received spans' tokens and tree equal the run's; the
tokprof extras arrive as ``tokprof.*`` attributes; failures are logged once and never reach the agent; the
local run file is written either way."""

from __future__ import annotations

import json
import logging
import socket

import openai
import pytest

from llm_server import Reply
from tokprof.profiler import profile, trace, uninstrument
from tokprof.profiler.interchange import live_export
from tokprof.profiler.interchange.otlp import decode_attributes
from tokprof.profiler.interchange.receiver import Collector, ReceiverServer
from tokprof.profiler.store import iter_run_files, load_run


@pytest.fixture
def receiver(tmp_path):
    server = ReceiverServer(Collector(tmp_path / "collected"), port=0).start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    for var in ("TOKPROF_OTLP_EXPORT", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_EXPORTER_OTLP_HEADERS"):
        monkeypatch.delenv(var, raising=False)
    live_export._warned.clear()
    live_export.sent.clear()
    yield
    live_export.flush()


def _calls(run) -> list[tuple[str | None, int, int, int]]:  # noqa: ANN001
    return [(s.llm.model, s.llm.usage.input_tokens, s.llm.usage.output_tokens, s.llm.usage.cache_read_tokens)
            for s in sorted(run.llm_spans(), key=lambda s: s.start_ns)]


def _tree(run) -> list[tuple[str, str, str]]:  # noqa: ANN001
    by_id = {s.span_id: s for s in run.spans}
    return sorted((by_id[s.parent_id].name if s.parent_id in by_id else "<root>", s.kind, s.name)
                  for s in run.spans)


def _agent(llm_server, tmp_path, **kw):  # noqa: ANN001, ANN003
    llm_server.script(Reply(text="Checking.", input_tokens=1200, cached_tokens=1024, output_tokens=80),
                      Reply(text="Done: 5.", input_tokens=1350, cached_tokens=1152, output_tokens=12))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)

    @trace(name="solve")
    def solve() -> str:
        out = ""
        for q in ("What is 2+3?", "And now?"):
            r = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": q}])
            out = r.choices[0].message.content
        return out

    try:
        with profile("live-export", save=tmp_path / "runs", instrument=["openai"], **kw) as run:
            answer = solve()
    finally:
        uninstrument("openai")
    return run, answer


def test_profile_sends_its_run_to_the_collector_with_tokprof_extras(receiver, llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKPROF_OTLP_EXPORT", "1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.removesuffix("/v1/traces"))
    own, answer = _agent(llm_server, tmp_path)
    assert answer == "Done: 5."
    assert live_export.flush()
    assert [r["run_id"] for r in live_export.sent] == [own.run_id]
    (got,) = [load_run(p) for p in iter_run_files(receiver.collector.out_dir)]
    expected = [("gpt-4o-mini", 1200, 80, 1024), ("gpt-4o-mini", 1350, 12, 1152)]  # what the server sent
    assert _calls(own) == _calls(got) == expected
    assert _tree(got) == _tree(own)
    assert got.run_id == own.run_id and all(s.end_ns is not None for s in got.spans)  # the root ended too
    # the local run file is written as always, and holds the same run
    assert _calls(load_run(own.path)) == expected
    # on the wire: tokprof's extras, namespaced
    lines = [json.loads(x) for x in next(receiver.collector.spool.glob("*.jsonl")).read_text().splitlines()]
    attrs = [decode_attributes(sp["attributes"]) for doc in lines for rs in doc["resourceSpans"]
             for ss in rs["scopeSpans"] for sp in ss["spans"]]
    llm = [a for a in attrs if a.get("tokprof.span.kind") == "llm"]
    assert len(llm) == 2 and all(a["tokprof.usage.evidence"] == "provider" for a in llm)
    assert all(a["tokprof.cost.currency"] == "USD" and a["tokprof.cost.amount"] for a in llm)
    assert {a["gen_ai.usage.input_tokens"] for a in llm} == {1200, 1350}


def test_a_run_kept_only_in_its_file_is_sent_from_the_file(receiver, llm_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKPROF_OTLP_EXPORT", receiver.endpoint)  # the URL itself
    own, _ = _agent(llm_server, tmp_path, keep_in_memory=False)
    assert own.llm_spans() == [] and live_export.flush()  # the calls are in the run file only
    (got,) = [load_run(p) for p in iter_run_files(receiver.collector.out_dir)]
    assert [c[1:] for c in _calls(got)] == [(1200, 80, 1024), (1350, 12, 1152)]


def test_unreachable_endpoint_is_logged_once_and_never_breaks_the_agent(llm_server, tmp_path, monkeypatch,
                                                                        caplog):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("TOKPROF_OTLP_EXPORT", f"http://127.0.0.1:{port}")
    with caplog.at_level(logging.WARNING, logger="tokprof"):
        for _ in range(2):
            own, answer = _agent(llm_server, tmp_path)
            assert answer == "Done: 5."
            assert live_export.flush()
    warnings = [r for r in caplog.records if "live OTLP export" in r.getMessage()]
    assert len(warnings) == 1 and f"127.0.0.1:{port}" in warnings[0].getMessage()
    assert live_export.sent == []
    assert len(list(iter_run_files(tmp_path / "runs"))) == 2  # nothing lost locally


def test_user_exception_passes_unchanged_and_the_run_is_still_sent(receiver, tmp_path, monkeypatch):
    monkeypatch.setenv("TOKPROF_OTLP_EXPORT", receiver.endpoint)

    class Boom(Exception):
        pass

    with pytest.raises(Boom, match="agent failed"):
        with profile("fails", save=tmp_path / "runs"):
            raise Boom("agent failed")
    assert live_export.flush()
    (got,) = [load_run(p) for p in iter_run_files(receiver.collector.out_dir)]
    assert got.name == "fails" and got.spans[0].status == "error"


def test_off_unless_opted_in(receiver, tmp_path, monkeypatch):
    # The OTel variables alone (an app's own tracer may use them) do not make tokprof send anything.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.removesuffix("/v1/traces"))
    with profile("quiet"):
        pass
    monkeypatch.setenv("TOKPROF_OTLP_EXPORT", "0")
    with profile("quiet"):
        pass
    assert live_export.flush() and live_export.sent == []
    assert list(iter_run_files(receiver.collector.out_dir)) == []
    assert live_export.endpoint_from_env() is None
