"""OTLP-JSON: export -> import gives the same run; foreign GenAI / OpenInference spans import."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal

import pytest

from tokprof.profiler.interchange import detect_format, import_file
from tokprof.profiler.interchange.otlp import export_runs, write_otlp
from tokprof.profiler.model import Cost, LLMCall, Run, Span, Usage
from tokprof.profiler.store import load_run, save_run
from tests.conftest import CORPUS
from tokprof.cli import main


def hand_built_run() -> Run:
    run = Run(run_id="abc123", name="checkout", tags={"team": "payments"}, started_wall_ns=1_700_000_000_000_000_000,
              metadata={"source": "live", "notes": ["n1"]})
    root = Span("1", None, run.run_id, "agent", "agent", 100, 1_700_000_000_000_000_000, 9_100)
    u1 = Usage.from_provider(input_tokens=1200, output_tokens=80, cache_read_tokens=1000, reasoning_tokens=20)
    u1.fill("cache_write_tokens", 0, "counted")
    llm1 = Span("2", "1", run.run_id, "llm", "chat gpt-4o", 200, 1_700_000_000_000_000_100, 2_200,
                tags={"feature": "refunds"},
                llm=LLMCall(provider="openai", model="gpt-4o", params={"temperature": 0.2, "seed": 7},
                            messages=[{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": [{"type": "text", "text": "refund 42"}]}],
                            tools=[{"type": "function", "function": {"name": "refund", "parameters": {}}}],
                            output={"role": "assistant", "content": None,
                                    "tool_calls": [{"id": "c1", "type": "function",
                                                    "function": {"name": "refund", "arguments": "{\"id\": 42}"}}]},
                            usage=u1, cost=Cost(Decimal("0.0123"), "USD", "recorded"), response_id="r1",
                            finish_reason="tool_calls"))
    tool = Span("3", "1", run.run_id, "tool", "refund", 2_300, 1_700_000_000_000_002_200, 3_000, status="error",
                error="ValueError: no such order", attributes={"tool_call_id": "c1", "arguments": {"id": 42}})
    u2 = Usage()
    u2.set("input_tokens", 1300, "counted")
    u2.set("output_tokens", 12, "estimated")
    llm2 = Span("a", "1", run.run_id, "llm", "chat claude", 3_100, 1_700_000_000_000_003_000, 9_000,
                llm=LLMCall(provider="anthropic", model="claude-sonnet-4-5",
                            messages=[{"role": "user", "content": "x"},
                                      {"role": "tool", "tool_call_id": "c1", "content": "error"}],
                            output={"role": "assistant", "content": "sorry"}, usage=u2))
    run.spans = [root, llm1, tool, llm2]
    run.ended_wall_ns = 1_700_000_000_000_009_000
    return run


def shape(run: Run):
    """Everything the round trip must keep: tree, kinds, names, times, tokens with sources, cost, payloads."""
    by_id = run.by_id()
    out = []
    for depth, s in run.walk():
        parent = by_id[s.parent_id].name if s.parent_id else None
        llm = None
        if s.llm is not None:
            c = s.llm
            llm = (c.provider, c.model, c.params, c.messages, c.tools, c.output, c.usage.to_dict(),
                   c.cost.to_dict() if c.cost else None, c.response_id, c.finish_reason)
        out.append((depth, s.span_id, parent, s.kind, s.name, s.start_ns, s.end_ns, s.wall_start_ns, s.status,
                    s.error, s.tags, s.attributes, llm))
    return out


def roundtrip(run: Run, tmp_path):
    path = write_otlp([run], tmp_path / "trace.json")
    result = import_file(path)
    assert result.format == "otlp" and result.errors == []
    assert len(result.runs) == 1
    return result.runs[0]


def test_hand_built_run_round_trips_identically(tmp_path):
    run = hand_built_run()
    back = roundtrip(run, tmp_path)
    assert shape(back) == shape(run)
    assert (back.run_id, back.name, back.tags, back.metadata) == (run.run_id, run.name, run.tags, run.metadata)
    assert (back.started_wall_ns, back.ended_wall_ns) == (run.started_wall_ns, run.ended_wall_ns)
    assert back.total_usage().to_dict() == run.total_usage().to_dict()


def test_export_uses_genai_semantic_conventions(tmp_path):
    doc = export_runs([hand_built_run()])
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    llm = next(s for s in spans if s["name"] == "chat gpt-4o")
    attrs = {a["key"]: a["value"] for a in llm["attributes"]}
    assert attrs["gen_ai.operation.name"] == {"stringValue": "chat"}
    assert attrs["gen_ai.provider.name"] == {"stringValue": "openai"}
    assert attrs["gen_ai.request.model"] == {"stringValue": "gpt-4o"}
    assert attrs["gen_ai.usage.input_tokens"] == {"intValue": "1200"}
    assert attrs["gen_ai.usage.output_tokens"] == {"intValue": "80"}
    assert attrs["gen_ai.usage.cache_read.input_tokens"] == {"intValue": "1000"}
    assert attrs["gen_ai.usage.reasoning.output_tokens"] == {"intValue": "20"}
    assert attrs["gen_ai.request.temperature"] == {"doubleValue": 0.2}
    assert attrs["gen_ai.response.finish_reasons"] == {"arrayValue": {"values": [{"stringValue": "tool_calls"}]}}
    inputs = json.loads(attrs["gen_ai.input.messages"]["stringValue"])
    assert inputs[0] == {"role": "system", "parts": [{"type": "text", "content": "be brief"}]}
    out = json.loads(attrs["gen_ai.output.messages"]["stringValue"])
    assert out[0]["parts"][0] == {"type": "tool_call", "id": "c1", "name": "refund", "arguments": {"id": 42}}
    assert len(llm["traceId"]) == 32 and len(llm["spanId"]) == 16 and len(llm["parentSpanId"]) == 16
    assert llm["kind"] == 3
    tool = next(s for s in spans if s["name"] == "refund")
    tattrs = {a["key"]: a["value"] for a in tool["attributes"]}
    assert tattrs["gen_ai.operation.name"] == {"stringValue": "execute_tool"}
    assert tool["status"] == {"code": 2, "message": "ValueError: no such order"}


def test_imported_tau2_run_round_trips_through_store_and_otlp(corpus, tmp_path):
    path = CORPUS / "tau2"
    f = next(p for p in sorted(path.glob("*.gz")) if p.name.startswith("ironshell"))
    run = import_file(f).runs[0]
    saved = load_run(save_run(run, tmp_path / "runs"))
    back = roundtrip(saved, tmp_path)
    assert shape(back) == shape(saved) == shape(run)
    assert back.total_usage().to_dict() == run.total_usage().to_dict()


def test_cli_export_then_import(corpus, tmp_path, _runs_dir):
    f = next(p for p in sorted((CORPUS / "tau2").glob("*.gz")) if p.name.startswith("ironshell"))
    assert main(["import", str(f), "--json"]) == 0
    original = import_file(f).runs[-1]
    out = tmp_path / "run.otlp.json.gz"
    assert main(["export", original.run_id, "--format", "otlp", "-o", str(out)]) == 0
    assert detect_format(out) == "otlp"
    back = import_file(out).runs[0]
    assert shape(back) == shape(original)


def _kv(d):
    out = []
    for k, v in d.items():
        if isinstance(v, bool):
            out.append({"key": k, "value": {"boolValue": v}})
        elif isinstance(v, int):
            out.append({"key": k, "value": {"intValue": str(v)}})
        elif isinstance(v, float):
            out.append({"key": k, "value": {"doubleValue": v}})
        else:
            out.append({"key": k, "value": {"stringValue": v}})
    return out


def foreign_doc():
    """Spans as other instrumentations write them (no tokprof.* attributes)."""
    trace = "5b8efff798038103d269b633813fc60c"
    spans = [
        {"traceId": trace, "spanId": "eee19b7ec3c1b174", "parentSpanId": "", "name": "invoke_agent support",
         "kind": 1, "startTimeUnixNano": "1000", "endTimeUnixNano": "9000",
         "attributes": _kv({"gen_ai.operation.name": "invoke_agent"})},
        # current GenAI conventions
        {"traceId": trace, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174", "name": "chat gpt-4o",
         "kind": 3, "startTimeUnixNano": "1100", "endTimeUnixNano": "2000",
         "attributes": _kv({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                            "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 500,
                            "gen_ai.usage.output_tokens": 40, "gen_ai.usage.cache_read.input_tokens": 300,
                            "gen_ai.usage.reasoning.output_tokens": 10, "gen_ai.request.temperature": 0.0,
                            "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [
                                {"type": "text", "content": "hi"}]}]),
                            "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [
                                {"type": "tool_call", "id": "t1", "name": "lookup", "arguments": {"q": 1}}],
                                "finish_reason": "tool_call"}])})},
        {"traceId": trace, "spanId": "eee19b7ec3c1b176", "parentSpanId": "eee19b7ec3c1b174",
         "name": "execute_tool lookup", "kind": 1, "startTimeUnixNano": "2100", "endTimeUnixNano": "2500",
         "attributes": _kv({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                            "gen_ai.tool.call.id": "t1"}),
         "status": {"code": 2, "message": "timeout"}},
        # older names, Anthropic-style exclusive input count
        {"traceId": trace, "spanId": "eee19b7ec3c1b177", "parentSpanId": "eee19b7ec3c1b174", "name": "anthropic.chat",
         "kind": 3, "startTimeUnixNano": "2600", "endTimeUnixNano": "3000",
         "attributes": _kv({"gen_ai.system": "anthropic", "gen_ai.request.model": "claude-3-5-sonnet",
                            "gen_ai.usage.prompt_tokens": 20, "gen_ai.usage.completion_tokens": 7,
                            "gen_ai.usage.cache_read_input_tokens": 900,
                            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "again",
                            "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "ok"})},
        # OpenInference
        {"traceId": trace, "spanId": "eee19b7ec3c1b178", "parentSpanId": "eee19b7ec3c1b174", "name": "ChatOpenAI",
         "kind": 1, "startTimeUnixNano": "3100", "endTimeUnixNano": "4000",
         "attributes": _kv({"openinference.span.kind": "LLM", "llm.model_name": "gpt-4o-mini",
                            "llm.provider": "openai", "llm.token_count.prompt": 77,
                            "llm.token_count.completion": 5, "llm.token_count.prompt_details.cache_read": 64,
                            "llm.input_messages.0.message.role": "system",
                            "llm.input_messages.0.message.content": "sys",
                            "llm.input_messages.1.message.role": "user",
                            "llm.input_messages.1.message.content": "q",
                            "llm.output_messages.0.message.role": "assistant",
                            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
                            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{}",
                            "llm.invocation_parameters": json.dumps({"temperature": 1})})},
    ]
    return {"resourceSpans": [{"resource": {"attributes": _kv({"service.name": "support-bot"})},
                               "scopeSpans": [{"scope": {"name": "x"}, "spans": spans}]}]}


def test_foreign_genai_and_openinference_spans_import(tmp_path):
    p = tmp_path / "foreign.json"
    p.write_text(json.dumps(foreign_doc()))
    result = import_file(p)
    assert result.errors == []
    (run,) = result.runs
    assert run.name == "invoke_agent support"
    assert run.metadata["resource"] == {"service.name": "support-bot"}
    spans = {s.name: s for s in run.spans}
    root = spans["invoke_agent support"]
    assert root.kind == "agent" and all(s.parent_id == root.span_id for s in run.spans if s is not root)

    chat = spans["chat gpt-4o"].llm
    assert (chat.provider, chat.model) == ("openai", "gpt-4o")
    assert chat.usage.to_dict() == {"input_tokens": 500, "output_tokens": 40, "cache_read_tokens": 300,
                                    "reasoning_tokens": 10,
                                    "sources": {k: "provider" for k in ("input_tokens", "output_tokens",
                                                                        "cache_read_tokens", "reasoning_tokens")}}
    assert chat.messages == [{"role": "user", "content": "hi"}]
    fn = chat.output["tool_calls"][0]["function"]
    assert fn["name"] == "lookup" and json.loads(fn["arguments"]) == {"q": 1}
    assert chat.params == {"temperature": 0.0}

    tool = spans["lookup"]
    assert tool.kind == "tool" and tool.status == "error" and tool.error == "timeout"
    assert tool.attributes["tool_call_id"] == "t1"

    old = spans["anthropic.chat"].llm
    assert old.provider == "anthropic"
    # exclusive Anthropic input (20) + cache read (900): the model's input_tokens includes the cache
    assert (old.usage.input_tokens, old.usage.cache_read_tokens, old.usage.output_tokens) == (920, 900, 7)
    assert old.messages == [{"role": "user", "content": "again"}]
    assert old.output == {"role": "assistant", "content": "ok"}

    oi = spans["ChatOpenAI"].llm
    assert (oi.model, oi.usage.input_tokens, oi.usage.output_tokens, oi.usage.cache_read_tokens) == (
        "gpt-4o-mini", 77, 5, 64)
    assert [m["role"] for m in oi.messages] == ["system", "user"]
    assert oi.output["tool_calls"][0]["function"]["name"] == "f"
    assert oi.params == {"temperature": 1}


def test_jsonl_batches_base64_ids_and_split_traces(tmp_path):
    doc = foreign_doc()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    import base64

    def b64(h):
        return base64.b64encode(bytes.fromhex(h)).decode()

    for s in spans:
        s["traceId"], s["spanId"] = b64(s["traceId"]), b64(s["spanId"])
        if s["parentSpanId"]:
            s["parentSpanId"] = b64(s["parentSpanId"])
    first = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans[:2]}]}]}
    second = {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans[2:]}]}]}
    p = tmp_path / "spans.jsonl.gz"
    with gzip.open(p, "wt") as fh:
        fh.write(json.dumps(first) + "\n" + json.dumps(second) + "\n")
    result = import_file(p)
    assert result.errors == [] and len(result.runs) == 1
    run = result.runs[0]
    assert len(run.spans) == 5 and len(run.roots()) == 1


def test_bad_span_is_reported_and_the_rest_imports(tmp_path):
    doc = foreign_doc()
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans.append({"name": "no ids"})
    spans[1]["attributes"].append({"key": "gen_ai.usage.input_tokens", "value": {"intValue": "many"}})
    p = tmp_path / "t.json"
    p.write_text(json.dumps(doc))
    result = import_file(p)
    assert len(result.errors) == 2
    assert "spans[5]" in str(result.errors[0]) or "spans[5]" in str(result.errors[1])
    assert all(str(p) in str(e) for e in result.errors)
    assert len(result.runs[0].spans) == 4


def test_truncated_otlp_file_names_file_and_line(tmp_path):
    p = tmp_path / "t.json"
    text = json.dumps(foreign_doc(), indent=1)
    p.write_text(text[: len(text) // 2])
    from tokprof.profiler.interchange import InterchangeError

    with pytest.raises(InterchangeError) as exc:
        import_file(p, "otlp")
    assert str(p) in str(exc.value) and "line" in str(exc.value) and "resourceSpans" in str(exc.value)


@pytest.mark.parametrize("deep_line", [1, 2])
def test_a_too_deep_jsonl_line_skips_only_that_record(tmp_path, deep_line):
    """Issue #21 leftover: one line of an OTLP JSON Lines file nested deeper than the JSON parser goes (first
    line, or a later one) is skipped with a reason naming the file and line; every other line imports."""
    good = json.dumps(foreign_doc())
    deep = '{"resourceSpans": ' + "[" * 200_000 + "]" * 200_000 + "}"
    lines = [good, good.replace("5b8efff798038103d269b633813fc60c", "0af7651916cd43dd8448eb211c80319c")]
    lines.insert(deep_line - 1, deep)
    p = tmp_path / "t.jsonl"
    p.write_text("\n".join(lines) + "\n")
    result = import_file(p)
    assert [e.record for e in result.errors] == [f"line {deep_line}"]
    assert str(p) in str(result.errors[0]) and "nested too deeply" in str(result.errors[0])
    assert len(result.runs) == 2 and all(len(r.spans) == 5 for r in result.runs)
