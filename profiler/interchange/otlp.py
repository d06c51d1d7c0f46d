"""OpenTelemetry traces in OTLP-JSON with GenAI semantic conventions: import and export.

**Layout** (the OTLP/HTTP JSON encoding of ``ExportTraceServiceRequest``)::
    {"resourceSpans": [{"resource": {"attributes": [{"key": ..., "value": {"stringValue": ...}}]},
                        "scopeSpans": [{"scope": {"name": ...}, "spans": [
                            {"traceId": <32 hex>, "spanId": <16 hex>, "parentSpanId": <16 hex or "">,
                             "name", "kind", "startTimeUnixNano": "<ns>", "endTimeUnixNano": "<ns>",
                             "attributes": [...], "status": {"code": 0|1|2, "message"}}]}]}]}

A file is one such object, a JSON list of them, or JSON Lines of them (the collector's file exporter).
Attribute values are ``stringValue`` / ``intValue`` (int64, usually a string) / ``doubleValue`` /
``boolValue`` / ``arrayValue`` / ``kvlistValue``. Ids are hex (base64 ids are accepted too).

**Import**: one run per ``traceId``. A span is an LLM call when ``gen_ai.operation.name`` is a model
operation (``chat``, ``text_completion``, ``generate_content``, ``embeddings``), OpenInference's
``openinference.span.kind`` is ``LLM``/``EMBEDDING``, or it carries a model or token counts. Usage, first
name found wins:

============  =================================================================================
input         ``gen_ai.usage.input_tokens``, ``gen_ai.usage.prompt_tokens``, ``llm.token_count.prompt``
output        ``gen_ai.usage.output_tokens``, ``gen_ai.usage.completion_tokens``, ``llm.token_count.completion``
cache read    ``gen_ai.usage.cache_read.input_tokens`` (+ older ``cache_read_input_tokens``,
              ``input_tokens.cached``), ``llm.token_count.prompt_details.cache_read``
cache write   ``gen_ai.usage.cache_creation.input_tokens`` (+ older spellings),
              ``llm.token_count.prompt_details.cache_write``
reasoning     ``gen_ai.usage.reasoning.output_tokens``, ``gen_ai.usage.output_tokens.reasoning``,
              ``llm.token_count.completion_details.reasoning``
============  =================================================================================

The conventions make the cache counts parts of ``input_tokens``; an instrumentation that reports
Anthropic's exclusive ``input_tokens`` is recognised (input smaller than the cache counts) and the cache
counts are added in. Model: ``gen_ai.request.model`` / ``gen_ai.response.model`` / ``llm.model_name``;
provider: ``gen_ai.provider.name`` / ``gen_ai.system`` / ``llm.provider`` / ``llm.system``. Messages:
``gen_ai.input.messages`` / ``gen_ai.output.messages`` (structured parts, JSON), OpenInference's flattened
``llm.input_messages.<i>.message.*``, or the older flattened ``gen_ai.prompt.<i>.*`` /
``gen_ai.completion.<i>.*``.

**Export** writes the same conventions (and ``gen_ai.system`` next to ``gen_ai.provider.name`` for older
backends), plus ``tokprof.*`` attributes carrying what the conventions have no place for, so that export ->
import gives back the same run: ``tokprof.run.*`` (resource: id, name, tags, metadata, wall times),
``tokprof.span.id``, ``tokprof.span.kind``, ``tokprof.start_ns``, ``tokprof.tags``, ``tokprof.attributes``,
``tokprof.llm.messages`` / ``.output`` / ``.tools`` / ``.params`` (exact OpenAI-format JSON),
``tokprof.usage.sources``, ``tokprof.usage.tool_requests`` (server tools billed per use, e.g. web
searches; JSON ``{kind: count}``) and ``tokprof.cost.amount`` / ``.currency`` / ``.source``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    fill_counts,
    iter_jsonl,
    json_or_text,
    stable_id,
)
from tokprof.profiler.interchange.otlp_dialects import (
    CONSUMED_PREFIXES,
    USAGE_ATTRIBUTES,
    has_llm_data,
    llm_call,
    span_kind,
    with_event_messages,
)
from tokprof.profiler.interchange.otlp_export import export_run, export_runs, export_span, write_otlp
from tokprof.profiler.interchange.otlp_values import (
    decode_attributes,
    decode_value,
    encode_attributes,
    encode_value,
    hex_id,
)
from tokprof.profiler.model import Run, Span

__all__ = ["EXPECTED", "FORMAT", "USAGE_ATTRIBUTES", "InterchangeError", "decode_attributes", "decode_value",
           "encode_attributes", "encode_value", "export_run", "export_runs", "export_span", "hex_id",
           "import_text", "write_otlp"]

FORMAT = "otlp"
EXPECTED = 'OTLP-JSON traces {"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}'


def _documents(text: str, path: Path | None) -> list[tuple[str, Any]]:
    """(record label, ExportTraceServiceRequest-like object) for a JSON doc, JSON list or JSON Lines file.

    A JSON Lines file is read line by line: a line that is malformed or nested too deeply to parse becomes
    an error naming the file and line, and the other lines still import (issue #21)."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        if isinstance(exc, json.JSONDecodeError):
            deep, where = False, f"line {exc.lineno}"
            whole = f"malformed JSON ({exc.msg} at column {exc.colno}); expected {EXPECTED}"
        else:
            deep, where, whole = True, None, f"JSON nested too deeply to read; expected {EXPECTED}"
        if deep or "Extra data" not in whole:
            lines = [x for x in text.lstrip().split("\n") if x.strip()]  # not splitlines: see base.iter_jsonl
            if len(lines) <= 1:
                raise InterchangeError(path, where, whole) from None
        docs: list[tuple[str, Any]] = []
        for lineno, line in iter_jsonl(text):
            try:
                docs.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                docs.append((f"line {lineno}", InterchangeError(path, f"line {lineno}",
                                                                f"malformed JSON ({e.msg} at column {e.colno}); "
                                                                f"expected {EXPECTED}")))
            except RecursionError:
                docs.append((f"line {lineno}", InterchangeError(path, f"line {lineno}",
                                                                "JSON nested too deeply to read; the record "
                                                                f"was skipped (expected {EXPECTED})")))
        if not any(not isinstance(d, InterchangeError) for _, d in docs):
            # Nothing parses line by line either: report the whole-document error (e.g. a truncated file).
            raise InterchangeError(path, where, whole) from None
        return docs
    if isinstance(doc, list):
        return [(f"record {i}", d) for i, d in enumerate(doc)]
    return [("document", doc)]


def import_text(text: str, path: Path | None = None) -> ImportResult:
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    # trace id -> (resource attributes, [(record, span)])
    traces: dict[str, tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]] = {}
    for label, doc in _documents(text, path):
        if isinstance(doc, InterchangeError):
            result.records += 1
            result.errors.append(doc)
            continue
        rss = doc.get("resourceSpans") if isinstance(doc, dict) else None
        if not isinstance(rss, list):
            result.records += 1
            result.errors.append(InterchangeError(path, label, f"no 'resourceSpans' list; expected {EXPECTED}"))
            continue
        for ri, rs in enumerate(rss):
            if not isinstance(rs, dict):
                result.records += 1
                result.errors.append(InterchangeError(path, f"{label} resourceSpans[{ri}]", "expected an object"))
                continue
            try:
                resource = decode_attributes((rs.get("resource") or {}).get("attributes"))
            except (TypeError, ValueError, AttributeError, RecursionError) as exc:
                result.records += 1
                result.errors.append(InterchangeError(
                    path, f"{label} resourceSpans[{ri}].resource",
                    f"malformed resource attributes ({type(exc).__name__}: {exc}); its spans were skipped"))
                continue
            scopes = rs.get("scopeSpans", rs.get("instrumentationLibrarySpans")) or []
            if not isinstance(scopes, list):
                result.records += 1
                result.errors.append(InterchangeError(path, f"{label} resourceSpans[{ri}].scopeSpans",
                                                      "expected a list of scopes"))
                continue
            for si, ss in enumerate(scopes):
                spans = (ss.get("spans") or []) if isinstance(ss, dict) else (None if ss else [])
                if not isinstance(spans, list):  # a scope that is not an object, or spans not a list
                    result.records += 1
                    result.errors.append(InterchangeError(path, f"{label} resourceSpans[{ri}].scopeSpans[{si}]",
                                                          "expected a scope object with a list of spans"))
                    continue
                for pi, sp in enumerate(spans):
                    result.records += 1
                    where = f"{label} resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"
                    if not isinstance(sp, dict) or not sp.get("spanId") or not sp.get("traceId"):
                        result.errors.append(InterchangeError(path, where, "expected a span with traceId and spanId"))
                        continue
                    tid = hex_id(sp["traceId"], 32)
                    traces.setdefault(tid, (resource, []))[1].append((where, sp))
    source = Path(path).name if path is not None else "<data>"
    for tid, (resource, spans) in traces.items():
        try:
            run = _trace_run(tid, resource, spans, source, result)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            # The trace's resource attributes are malformed: this trace is a bad record, the rest imports.
            result.errors.append(InterchangeError(path, f"trace {tid}",
                                                  f"malformed resource attributes ({type(exc).__name__}: {exc})"))
            continue
        if run is not None and run.spans:
            fill_counts(run)
            result.runs.append(run)
    if result.records == 0 and not result.errors:
        raise InterchangeError(path, None, f"no spans found; expected {EXPECTED}")
    return result


def _span(sp: dict[str, Any], run_id: str) -> Span:
    a = decode_attributes(sp.get("attributes"))
    kind = span_kind(a, has_llm_data(a))
    wall_start = int(sp.get("startTimeUnixNano") or 0)
    wall_end = int(sp["endTimeUnixNano"]) if sp.get("endTimeUnixNano") not in (None, "", "0", 0) else None
    start = int(a["tokprof.start_ns"]) if a.get("tokprof.start_ns") is not None else wall_start
    end = None if wall_end is None or a.get("tokprof.unfinished") else start + (wall_end - wall_start)
    status = sp.get("status") or {}
    failed = status.get("code") in (2, "STATUS_CODE_ERROR")
    tags = json_or_text(a.get("tokprof.tags"))
    if "tokprof.attributes" in a:
        attributes = json_or_text(a["tokprof.attributes"])
    else:
        attributes = {k: v for k, v in a.items() if not k.startswith(CONSUMED_PREFIXES)} or None
        if kind == "tool":
            attributes = dict(attributes or {})
            for k, key in (("gen_ai.tool.call.id", "tool_call_id"), ("gen_ai.tool.call.arguments", "arguments"),
                           ("gen_ai.tool.call.result", "output"), ("input.value", "arguments"),
                           ("output.value", "output")):
                if a.get(k) is not None:
                    attributes.setdefault(key, a[k])
            attributes = attributes or None
    name = str(sp.get("name") or "")
    if kind == "tool" and a.get("gen_ai.tool.name") and "tokprof.span.kind" not in a:
        name = str(a.get("gen_ai.tool.name") or name)
    return Span(
        span_id=str(a.get("tokprof.span.id") or hex_id(sp["spanId"], 16)),
        parent_id=None,  # linked after all spans of the trace are read
        run_id=run_id, kind=kind, name=name, start_ns=start, wall_start_ns=wall_start, end_ns=end,
        status="error" if failed else "ok",
        error=(status.get("message") or "error") if failed else None,
        attributes=attributes if isinstance(attributes, dict) else None,
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else None,
        llm=with_event_messages(llm_call(a), sp.get("events")) if kind == "llm" else None,
    )


def _trace_run(tid: str, resource: dict[str, Any], spans: list[tuple[str, dict[str, Any]]], source: str,
               result: ImportResult) -> Run | None:
    run_id = str(resource.get("tokprof.run.id") or stable_id(FORMAT, tid))
    run = Run(run_id=run_id, name=str(resource.get("tokprof.run.name") or ""), started_wall_ns=0)
    otel_to_span: dict[str, Span] = {}
    parents: list[tuple[Span, str]] = []
    for where, sp in spans:
        try:
            s = _span(sp, run_id)
        except InterchangeError as exc:
            result.errors.append(InterchangeError(result.path, where, exc.reason))
            continue
        except RecursionError:
            result.errors.append(InterchangeError(result.path, where, "span attributes nested too deeply to read; "
                                                                      "the span was skipped"))
            continue
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.errors.append(InterchangeError(result.path, where, f"malformed span ({type(exc).__name__}: {exc})"))
            continue
        otel_to_span[hex_id(sp["spanId"], 16)] = s
        parent = hex_id(sp.get("parentSpanId"), 16)
        if parent:
            parents.append((s, parent))
        run.spans.append(s)
    for s, parent in parents:
        p = otel_to_span.get(parent)
        # A parent outside this file (a remote caller) leaves the span a root of the run.
        s.parent_id = p.span_id if p is not None else None
    if not run.spans:
        return None
    tags = json_or_text(resource.get("tokprof.run.tags"))
    run.tags = {str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {}
    meta = json_or_text(resource.get("tokprof.run.metadata"))
    if isinstance(meta, dict):
        run.metadata = meta
    else:
        run.metadata = {"source": FORMAT, "source_file": source, "trace_id": tid,
                        "resource": {k: v for k, v in resource.items() if not k.startswith("tokprof.")}}
    started = resource.get("tokprof.run.started_wall_ns")
    run.started_wall_ns = int(started) if started is not None else min(s.wall_start_ns for s in run.spans)
    ended = resource.get("tokprof.run.ended_wall_ns")
    if ended is not None:
        run.ended_wall_ns = int(ended)
    else:
        ends = [s.wall_end_ns for s in run.spans if s.wall_end_ns is not None]
        run.ended_wall_ns = max(ends) if ends else None
    if "tokprof.run.complete" in resource:
        run.complete = bool(resource["tokprof.run.complete"])
    if not run.name:
        roots = [s for s in run.spans if s.parent_id is None]
        run.name = (roots[0].name if roots else "") or str(resource.get("service.name") or "otlp trace")
    return run

