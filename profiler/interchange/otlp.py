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
``tokprof.usage.sources`` and ``tokprof.cost.amount`` / ``.currency`` / ``.source``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    fill_counts,
    iter_jsonl,
    json_or_text,
    nullish,
    stable_id,
)
from tokprof.profiler.model import (
    SCHEMA_VERSION,
    TOKEN_SOURCES,
    USAGE_FIELDS,
    Cost,
    LLMCall,
    Message,
    Run,
    Span,
    Usage,
)
from tokprof.profiler.redact import redact_runs

FORMAT = "otlp"
EXPECTED = 'OTLP-JSON traces {"resourceSpans": [{"scopeSpans": [{"spans": [...]}]}]}'

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion", "embeddings", "responses"}
_OPERATION_KIND = {"execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent"}
_OPENINFERENCE_KIND = {"LLM": "llm", "EMBEDDING": "llm", "TOOL": "tool", "CHAIN": "chain", "AGENT": "agent",
                       "RETRIEVER": "retriever", "RERANKER": "retriever", "GUARDRAIL": "chain",
                       "EVALUATOR": "chain"}
USAGE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                          "gen_ai.usage.input_tokens.cached", "llm.token_count.prompt_details.cache_read"),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens",
                           "gen_ai.usage.cache_creation_input_tokens", "gen_ai.usage.input_tokens.cache_write",
                           "llm.token_count.prompt_details.cache_write"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning",
                         "llm.token_count.completion_details.reasoning"),
}
_EXPORT_USAGE = {field: names[0] for field, names in USAGE_ATTRIBUTES.items()}
_SEMCONV_PARAMS = {"temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
                   "max_tokens": "gen_ai.request.max_tokens", "seed": "gen_ai.request.seed",
                   "frequency_penalty": "gen_ai.request.frequency_penalty",
                   "presence_penalty": "gen_ai.request.presence_penalty", "stop": "gen_ai.request.stop_sequences"}
# Attributes whose content is re-read into the LLMCall (not kept again in span.attributes).
_CONSUMED_PREFIXES = ("gen_ai.", "llm.", "tokprof.", "openinference.", "input.", "output.")


# ===================================================================================================
# attribute values
# ===================================================================================================
def decode_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` -> a Python value."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [decode_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return decode_attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def decode_attributes(attrs: Any) -> dict[str, Any]:
    if isinstance(attrs, dict):  # some hand-written files use a plain map
        return dict(attrs)
    out: dict[str, Any] = {}
    for kv in attrs or []:
        if isinstance(kv, dict) and "key" in kv:
            out[str(kv["key"])] = decode_value(kv.get("value"))
    return out


def encode_value(value: Any) -> dict[str, Any]:
    """A Python value -> an OTLP ``AnyValue`` (ints as strings, as the JSON encoding of int64 requires)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)) and all(isinstance(x, (str, bool, int, float)) for x in value):
        return {"arrayValue": {"values": [encode_value(x) for x in value]}}
    return {"stringValue": _json(value)}


def encode_attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": encode_value(v)} for k, v in attrs.items() if v is not None]


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _hex_id(value: Any, length: int) -> str:
    """A trace/span id as lowercase hex; base64 ids (protobuf JSON mapping) are converted."""
    s = str(value or "")
    if not s:
        return ""
    if len(s) == length and all(c in "0123456789abcdefABCDEF" for c in s):
        return s.lower()
    try:
        return base64.b64decode(s, validate=True).hex()
    except (binascii.Error, ValueError):
        return s


# ===================================================================================================
# messages: OpenAI chat format <-> GenAI semantic-convention parts
# ===================================================================================================
def to_semconv_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        role = m.get("role")
        parts: list[dict[str, Any]] = []
        if role == "tool":
            parts.append({"type": "tool_call_response", "id": m.get("tool_call_id"), "response": m.get("content")})
        else:
            content = m.get("content")
            if isinstance(content, str):
                parts.append({"type": "text", "content": content})
            elif isinstance(content, list):
                for p in content:
                    if isinstance(p, dict) and p.get("type") == "text":
                        parts.append({"type": "text", "content": p.get("text")})
                    else:
                        parts.append(p if isinstance(p, dict) else {"type": "text", "content": str(p)})
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                parts.append({"type": "tool_call", "id": c.get("id"), "name": fn.get("name"),
                              "arguments": json_or_text(fn.get("arguments"))})
        msg: dict[str, Any] = {"role": role, "parts": parts}
        if m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def from_semconv_messages(messages: Any) -> list[Message]:
    out: list[Message] = []
    for m in messages or []:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        texts, calls, other = [], [], []
        for p in m.get("parts") or []:
            t = p.get("type") if isinstance(p, dict) else None
            if t == "text":
                texts.append(p.get("content") or "")
            elif t == "tool_call":
                args = p.get("arguments")
                calls.append({"id": p.get("id"), "type": "function",
                              "function": {"name": p.get("name"),
                                           "arguments": args if isinstance(args, str) else _json(args)}})
            elif t == "tool_call_response":
                resp = p.get("response")
                out.append({"role": "tool", "tool_call_id": p.get("id"),
                            "content": resp if isinstance(resp, str) or resp is None else _json(resp)})
            elif isinstance(p, dict):
                other.append(p)
        if role == "tool" and not texts and not calls:
            continue  # already appended as tool results
        msg: Message = {"role": role}
        if other:
            msg["content"] = [{"type": "text", "text": t} for t in texts] + other
        else:
            msg["content"] = texts[0] if len(texts) == 1 else ("".join(texts) if texts else None)
        if calls:
            msg["tool_calls"] = calls
        if m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def _flattened(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.<i>.rest = v`` attributes -> a list of ``{rest: v}`` dicts ordered by ``i``."""
    items: dict[int, dict[str, Any]] = {}
    plen = len(prefix) + 1
    for k, v in attrs.items():
        if not k.startswith(prefix + "."):
            continue
        idx, _, rest = k[plen:].partition(".")
        if idx.isdigit():
            items.setdefault(int(idx), {})[rest] = v
    return [items[i] for i in sorted(items)]


def _openinference_messages(attrs: dict[str, Any], prefix: str) -> list[Message]:
    out: list[Message] = []
    for d in _flattened(attrs, prefix):
        msg: Message = {"role": d.get("message.role")}
        content = d.get("message.content")
        if content is None:
            texts = [v for k, v in sorted(d.items()) if k.startswith("message.contents.") and k.endswith(".text")]
            content = "".join(texts) if texts else None
        msg["content"] = content
        calls = _flattened({k[len("message."):]: v for k, v in d.items() if k.startswith("message.tool_calls.")},
                           "tool_calls")
        if calls:
            msg["tool_calls"] = [{"id": c.get("tool_call.id"), "type": "function",
                                  "function": {"name": c.get("tool_call.function.name"),
                                               "arguments": c.get("tool_call.function.arguments") or "{}"}}
                                 for c in calls]
        if d.get("message.tool_call_id"):
            msg["tool_call_id"] = d["message.tool_call_id"]
        if d.get("message.name"):
            msg["name"] = d["message.name"]
        out.append(msg)
    return out


def _legacy_messages(attrs: dict[str, Any], prefix: str) -> list[Message]:
    """Traceloop-style ``gen_ai.prompt.<i>.role`` / ``.content``."""
    return [{"role": d.get("role"), "content": d.get("content")} for d in _flattened(attrs, prefix) if "role" in d]


# ===================================================================================================
# export
# ===================================================================================================
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
    for key, attr in _SEMCONV_PARAMS.items():
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
            a[_EXPORT_USAGE[field]] = getattr(call.usage, field)
    a["tokprof.usage.sources"] = _json(call.usage.sources)
    if call.cost is not None:
        a["tokprof.cost.amount"] = None if call.cost.amount is None else str(call.cost.amount)
        a["tokprof.cost.currency"] = call.cost.currency
        a["tokprof.cost.source"] = call.cost.source
    if call.messages:
        a["gen_ai.input.messages"] = _json(to_semconv_messages(call.messages))
        a["tokprof.llm.messages"] = _json(call.messages)
    if call.output is not None:
        out = to_semconv_messages([call.output])
        if call.finish_reason:
            out[0]["finish_reason"] = call.finish_reason
        a["gen_ai.output.messages"] = _json(out)
        a["tokprof.llm.output"] = _json(call.output)
    if call.tools:
        a["gen_ai.tool.definitions"] = _json(call.tools)
        a["tokprof.llm.tools"] = _json(call.tools)
    if call.params:
        a["tokprof.llm.params"] = _json(call.params)
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
    if span.tags:
        attrs["tokprof.tags"] = _json(span.tags)
    if span.attributes:
        attrs["tokprof.attributes"] = _json(span.attributes)
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
        "tokprof.run.tags": _json(run.tags),
        "tokprof.run.metadata": _json(run.metadata),
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


# ===================================================================================================
# import
# ===================================================================================================
def _documents(text: str, path: Path | None) -> list[tuple[str, Any]]:
    """(record label, ExportTraceServiceRequest-like object) for a JSON doc, JSON list or JSON Lines file."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg != "Extra data":
            lines = text.lstrip().splitlines()
            if len(lines) <= 1:
                raise InterchangeError(path, f"line {exc.lineno}",
                                       f"malformed JSON ({exc.msg} at column {exc.colno}); expected {EXPECTED}") from None
        docs: list[tuple[str, Any]] = []
        for lineno, line in iter_jsonl(text):
            try:
                docs.append((f"line {lineno}", json.loads(line)))
            except json.JSONDecodeError as e:
                docs.append((f"line {lineno}", InterchangeError(path, f"line {lineno}",
                                                                f"malformed JSON ({e.msg} at column {e.colno}); "
                                                                f"expected {EXPECTED}")))
        if not any(not isinstance(d, InterchangeError) for _, d in docs):
            # Nothing parses line by line either: report the whole-document error (e.g. a truncated file).
            raise InterchangeError(path, f"line {exc.lineno}",
                                   f"malformed JSON ({exc.msg} at column {exc.colno}); expected {EXPECTED}") from None
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
            except (TypeError, ValueError, AttributeError) as exc:
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
                    tid = _hex_id(sp["traceId"], 32)
                    traces.setdefault(tid, (resource, []))[1].append((where, sp))
    source = Path(path).name if path is not None else "<data>"
    for tid, (resource, spans) in traces.items():
        try:
            run = _trace_run(tid, resource, spans, source, result)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
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


def _usage(a: dict[str, Any]) -> Usage:
    counts: dict[str, int | None] = {}
    for field, names in USAGE_ATTRIBUTES.items():
        v = next((a[n] for n in names if nullish(a.get(n)) is not None), None)
        counts[field] = None if v is None else int(v)
    if (counts["input_tokens"] is not None and (counts["cache_read_tokens"] or counts["cache_write_tokens"])
            and counts["input_tokens"] < (counts["cache_read_tokens"] or 0) + (counts["cache_write_tokens"] or 0)):
        # Anthropic-style exclusive input count: the model wants the cache counts inside input_tokens.
        counts["input_tokens"] += (counts["cache_read_tokens"] or 0) + (counts["cache_write_tokens"] or 0)
    u = Usage.from_provider(**counts)
    sources = json_or_text(a.get("tokprof.usage.sources"))
    if isinstance(sources, dict):
        for field, src in sources.items():
            if field in u.sources and src in TOKEN_SOURCES:
                u.sources[field] = src
    return u


def _kind(a: dict[str, Any], has_llm_data: bool) -> str:
    kind = a.get("tokprof.span.kind")
    if kind:
        return str(kind)
    op = a.get("gen_ai.operation.name")
    if op in LLM_OPERATIONS:
        return "llm"
    if op in _OPERATION_KIND:
        return _OPERATION_KIND[op]
    oi = str(a.get("openinference.span.kind") or "").upper()
    if oi in _OPENINFERENCE_KIND:
        return _OPENINFERENCE_KIND[oi]
    return "llm" if has_llm_data else "function"


def _llm_call(a: dict[str, Any]) -> LLMCall:
    provider = (a.get("gen_ai.provider.name") or a.get("gen_ai.system") or a.get("llm.provider")
                or a.get("llm.system"))
    model = a.get("gen_ai.request.model") or a.get("gen_ai.response.model") or a.get("llm.model_name")
    messages = json_or_text(a.get("tokprof.llm.messages"))
    if not isinstance(messages, list):
        semconv = json_or_text(a.get("gen_ai.input.messages"))
        if isinstance(semconv, list):
            messages = from_semconv_messages(semconv)
            system = json_or_text(a.get("gen_ai.system_instructions"))
            if isinstance(system, list) and system:
                text = "".join(p.get("content") or "" for p in system if isinstance(p, dict))
                messages = [{"role": "system", "content": text}, *messages]
        else:
            messages = (_openinference_messages(a, "llm.input_messages") or _legacy_messages(a, "gen_ai.prompt"))
    output = json_or_text(a.get("tokprof.llm.output"))
    if not isinstance(output, dict):
        semconv = json_or_text(a.get("gen_ai.output.messages"))
        outs = (from_semconv_messages(semconv) if isinstance(semconv, list) else
                _openinference_messages(a, "llm.output_messages") or _legacy_messages(a, "gen_ai.completion"))
        output = outs[0] if outs else None
    tools = json_or_text(a.get("tokprof.llm.tools"))
    if not isinstance(tools, list):
        tools = json_or_text(a.get("gen_ai.tool.definitions"))
        if not isinstance(tools, list):
            tools = [json_or_text(t.get("tool.json_schema")) for t in _flattened(a, "llm.tools") if t.get("tool.json_schema")]
    params = json_or_text(a.get("tokprof.llm.params"))
    if not isinstance(params, dict):
        params = json_or_text(a.get("llm.invocation_parameters"))
        if not isinstance(params, dict):
            params = {}
            for key, attr in _SEMCONV_PARAMS.items():
                if a.get(attr) is not None:
                    params[key] = a[attr]
    cost = None
    if "tokprof.cost.amount" in a or "tokprof.cost.source" in a:
        amount = nullish(a.get("tokprof.cost.amount"))
        try:
            cost = Cost(None if amount is None else Decimal(str(amount)), str(a.get("tokprof.cost.currency") or "USD"),
                        a.get("tokprof.cost.source") or "recorded")
        except InvalidOperation:
            raise InterchangeError(None, None, f"tokprof.cost.amount {amount!r} is not a number") from None
    finish = a.get("gen_ai.response.finish_reasons")
    if isinstance(finish, list):
        finish = finish[0] if finish else None
    return LLMCall(provider=provider, model=model, params=params, messages=messages or [], tools=tools or [],
                   output=output, usage=_usage(a), cost=cost, response_id=a.get("gen_ai.response.id"),
                   finish_reason=finish)


def _has_llm_data(a: dict[str, Any]) -> bool:
    return any(k in a for names in USAGE_ATTRIBUTES.values() for k in names) or any(
        k in a for k in ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name"))


def _span(sp: dict[str, Any], run_id: str) -> Span:
    a = decode_attributes(sp.get("attributes"))
    kind = _kind(a, _has_llm_data(a))
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
        attributes = {k: v for k, v in a.items() if not k.startswith(_CONSUMED_PREFIXES)} or None
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
        span_id=str(a.get("tokprof.span.id") or _hex_id(sp["spanId"], 16)),
        parent_id=None,  # linked after all spans of the trace are read
        run_id=run_id, kind=kind, name=name, start_ns=start, wall_start_ns=wall_start, end_ns=end,
        status="error" if failed else "ok",
        error=(status.get("message") or "error") if failed else None,
        attributes=attributes if isinstance(attributes, dict) else None,
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else None,
        llm=_with_event_messages(_llm_call(a), sp.get("events")) if kind == "llm" else None,
    )


_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_message(role: str, ea: dict[str, Any]) -> Message:
    content = json_or_text(ea.get("content"))
    msg: Message = {"role": role, "content": content if isinstance(content, (str, list)) or content is None
                    else json.dumps(content)}
    calls = json_or_text(ea.get("tool_calls"))
    if isinstance(calls, list) and calls:
        msg["tool_calls"] = calls
    if role == "tool" and ea.get("id") is not None:
        msg["tool_call_id"] = str(ea["id"])
    return msg


def _with_event_messages(call: LLMCall, events: Any) -> LLMCall:
    """Messages the older GenAI conventions put in span events, when the attributes had none:
    ``gen_ai.content.prompt``/``gen_ai.content.completion`` (``gen_ai.prompt``/``gen_ai.completion`` JSON,
    semconv <= 1.27) and ``gen_ai.{system,user,assistant,tool}.message``/``gen_ai.choice`` (1.28-1.36,
    https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-events/)."""
    if not isinstance(events, list) or (call.messages and call.output is not None):
        return call
    messages: list[Message] = []
    output: Message | None = None
    for ev in events:
        if not isinstance(ev, dict):
            continue
        name = str(ev.get("name") or "")
        ea = decode_attributes(ev.get("attributes"))
        if name == "gen_ai.content.prompt":
            prompt = json_or_text(ea.get("gen_ai.prompt"))
            if isinstance(prompt, list):
                messages.extend(m for m in prompt if isinstance(m, dict))
        elif name == "gen_ai.content.completion":
            comp = json_or_text(ea.get("gen_ai.completion"))
            if isinstance(comp, list) and comp and isinstance(comp[0], dict):
                output = comp[0]
        elif name in _EVENT_ROLES:
            messages.append(_event_message(_EVENT_ROLES[name], ea))
        elif name == "gen_ai.choice" and output is None:
            body = json_or_text(ea.get("message"))
            output = _event_message("assistant", body if isinstance(body, dict) else ea)
    if not call.messages and messages:
        call.messages = messages
    if call.output is None and output is not None:
        call.output = output
    return call


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
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            result.errors.append(InterchangeError(result.path, where, f"malformed span ({type(exc).__name__}: {exc})"))
            continue
        otel_to_span[_hex_id(sp["spanId"], 16)] = s
        parent = _hex_id(sp.get("parentSpanId"), 16)
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
