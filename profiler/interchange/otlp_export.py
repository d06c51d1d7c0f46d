"""Export tokprof runs as OTLP-JSON with the GenAI semantic conventions, plus ``tokprof.*`` attributes for what
the conventions have no place for (evidence labels, cost and currency, exact messages): see
:mod:`~tokprof.profiler.interchange.otlp` for the list. Secrets are redacted as in run files.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from tokprof.profiler import keys
from tokprof.profiler.interchange.otlp_dialects import EXPORT_USAGE, SEMCONV_PARAMS, to_semconv_messages
from tokprof.profiler.interchange.otlp_values import compact_json, encode_attributes
from tokprof.profiler.model import SCHEMA_VERSION, USAGE_FIELDS, LLMCall, Run, Span
from tokprof.profiler.redact import redact_runs


def _span_hex(span_id: str) -> str:
    s = span_id.lower()
    if 0 < len(s) <= 16 and all(c in "0123456789abcdef" for c in s):
        return s.zfill(16)
    return hashlib.sha1(span_id.encode("utf-8")).hexdigest()[:16]


def _trace_hex(run_id: str) -> str:
    return hashlib.sha1(run_id.encode("utf-8")).hexdigest()[:32]


def _llm_attributes(call: LLMCall) -> dict[str, Any]:
    a: dict[str, Any] = {"gen_ai.operation.name": "chat"}
    if call.provider:
        a["gen_ai.provider.name"] = call.provider
        a["gen_ai.system"] = call.provider  # the pre-1.37 name, still what many backends read
    if call.model:
        a["gen_ai.request.model"] = call.model
    for key, attr in SEMCONV_PARAMS.items():
        v = call.params.get(key)
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            a[attr] = v
        elif key == "stop" and isinstance(v, list):
            a[attr] = [str(x) for x in v]
    if call.response_id:
        a["gen_ai.response.id"] = call.response_id
    if call.finish_reason:
        a["gen_ai.response.finish_reasons"] = [call.finish_reason]
    for field in USAGE_FIELDS:
        if call.usage.known(field):
            a[EXPORT_USAGE[field]] = getattr(call.usage, field)
    a["tokprof.usage.sources"] = compact_json(call.usage.sources)
    if call.usage.tool_requests:  # server tools billed per use (web searches): part of the call's cost
        a["tokprof.usage.tool_requests"] = compact_json(call.usage.tool_requests)
    if call.cost is not None:
        a["tokprof.cost.amount"] = None if call.cost.amount is None else str(call.cost.amount)
        a["tokprof.cost.currency"] = call.cost.currency
        a["tokprof.cost.source"] = call.cost.source
    if call.messages:
        a["gen_ai.input.messages"] = compact_json(to_semconv_messages(call.messages))
        a["tokprof.llm.messages"] = compact_json(call.messages)
    if call.output is not None:
        out = to_semconv_messages([call.output])
        if call.finish_reason:
            out[0]["finish_reason"] = call.finish_reason
        a["gen_ai.output.messages"] = compact_json(out)
        a["tokprof.llm.output"] = compact_json(call.output)
    if call.tools:
        a["gen_ai.tool.definitions"] = compact_json(call.tools)
        a["tokprof.llm.tools"] = compact_json(call.tools)
    if call.params:
        a["tokprof.llm.params"] = compact_json(call.params)
    return a


def export_span(span: Span, trace_id: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {"tokprof.span.id": span.span_id, "tokprof.span.kind": span.kind,
                             "tokprof.start_ns": span.start_ns}
    if span.kind == "tool":
        attrs["gen_ai.operation.name"] = "execute_tool"
        attrs["gen_ai.tool.name"] = span.name
        if span.attributes and span.attributes.get("tool_call_id"):
            attrs["gen_ai.tool.call.id"] = str(span.attributes["tool_call_id"])
    elif span.kind == "agent":
        attrs["gen_ai.operation.name"] = "invoke_agent"
        attrs["gen_ai.agent.name"] = span.name
    if span.llm is not None:
        attrs.update(_llm_attributes(span.llm))
        if keys.is_embedding(span.attributes):  # OTel GenAI semconv's operation name for an embedding call
            attrs["gen_ai.operation.name"] = "embeddings"
    if span.tags:
        attrs["tokprof.tags"] = compact_json(span.tags)
    if span.attributes:
        attrs["tokprof.attributes"] = compact_json(span.attributes)
    out: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": _span_hex(span.span_id),
        "parentSpanId": _span_hex(span.parent_id) if span.parent_id is not None else "",
        "name": span.name,
        "kind": 3 if span.llm is not None else 1,  # CLIENT for a call to a model API, else INTERNAL
        "startTimeUnixNano": str(span.wall_start_ns),
        "endTimeUnixNano": str(span.wall_end_ns if span.wall_end_ns is not None else span.wall_start_ns),
        "attributes": encode_attributes(attrs),
        "status": {"code": 2, "message": span.error or ""} if span.status == "error" else {"code": 0},
    }
    if span.end_ns is None:
        out["attributes"].append({"key": "tokprof.unfinished", "value": {"boolValue": True}})
    return out


def export_run(run: Run) -> dict[str, Any]:
    """One ``ResourceSpans`` object for ``run``."""
    resource = {
        "service.name": "tokprof",
        "tokprof.schema": SCHEMA_VERSION,
        "tokprof.run.id": run.run_id,
        "tokprof.run.name": run.name,
        "tokprof.run.tags": compact_json(run.tags),
        "tokprof.run.metadata": compact_json(run.metadata),
        "tokprof.run.started_wall_ns": run.started_wall_ns,
        "tokprof.run.ended_wall_ns": run.ended_wall_ns,
        "tokprof.run.complete": run.complete,
    }
    trace_id = _trace_hex(run.run_id)
    return {"resource": {"attributes": encode_attributes(resource)},
            "scopeSpans": [{"scope": {"name": "tokprof"},
                            "spans": [export_span(s, trace_id) for s in run.spans]}]}


def export_runs(runs: Iterable[Run]) -> dict[str, Any]:
    """An OTLP-JSON ``ExportTraceServiceRequest`` holding ``runs`` (one resource, one trace per run)."""
    # An export leaves the machine: secrets are redacted as in run files.
    return {"resourceSpans": [export_run(r) for r in redact_runs(runs)]}


def write_otlp(runs: Iterable[Run], path: str | Path) -> Path:
    """Write ``runs`` as OTLP-JSON to ``path`` (gzip when it ends in ``.gz``)."""
    from tokprof.profiler.store import write_private

    path = Path(path)
    data = json.dumps(export_runs(runs), ensure_ascii=False).encode("utf-8", "surrogatepass")
    # owner-only (0600): an export holds the prompts (issue #21)
    return write_private(path, gzip.compress(data) if path.suffix == ".gz" else data)
