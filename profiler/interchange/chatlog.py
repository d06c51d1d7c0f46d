"""A plain JSONL log of OpenAI chat-completions requests and responses (what many teams log).

One JSON object per line, in any of these shapes:

1. **Request/response pair** — ``{"request": {<chat.completions.create arguments: model, messages,
   tools, temperature, ...>}, "response": {<the ChatCompletion: id, model, choices, usage>}}``.
   Optional top-level fields: ``run_id`` / ``trace_id`` / ``session_id`` / ``conversation_id`` (lines
   sharing one become one run), ``start_time`` or ``timestamp`` (ISO-8601 or epoch s/ms/ns),
   ``end_time``, ``duration_ms`` / ``latency_ms``, ``tags`` (``{str: str}``), ``name``, and ``error``
   (a failed call: string or ``{"message"}``). ``response`` may be absent (request only: counted locally).
2. **OpenAI Batch API input** — ``{"custom_id", "method", "url", "body": {<request>}}``.
3. **OpenAI Batch API output** — ``{"id", "custom_id", "response": {"status_code", "request_id",
   "body": {<ChatCompletion>}}, "error"}``. Input and output lines with the same ``custom_id`` in one
   file are joined into one call; an output line alone gives a call with usage but no input messages.

Lines without a grouping id form one run per file. Usage is taken as the provider reported it, read in its
dialect (``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details.cached_tokens``,
``completion_tokens_details.reasoning_tokens``, and the OpenAI-compatible providers' and gateways' own
fields); a gateway's ``usage.cost`` (OpenRouter) is kept as the call's recorded cost; what is missing is
counted locally. A malformed line is
reported with its line number and the rest of the file is imported.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    as_int,
    collect,
    fill_counts,
    iter_jsonl,
    parse_time_ns,
    split_model,
    stable_id,
)
from tokprof.profiler.integrations.usage_dialects import reported_cost
from tokprof.profiler.interchange.usage_dialects import read_usage
from tokprof.profiler.model import Cost, LLMCall, Run, Usage

FORMAT = "chatlog"
STEP_NS = 1_000_000
GROUP_KEYS = ("run_id", "trace_id", "session_id", "conversation_id")
EXPECTED = ('a JSON object per line: {"request": {...}, "response": {...}} or an OpenAI Batch API '
            'input/output line {"custom_id", "body"|"response"}')
_NOT_PARAMS = {"model", "messages", "tools", "functions", "stream", "stream_options", "metadata", "user",
               "store", "extra_headers", "extra_body", "timeout"}


def looks_like(obj: Any) -> bool:
    """Whether one parsed line has one of the accepted shapes (used by format detection)."""
    return isinstance(obj, dict) and (
        isinstance(obj.get("request"), dict)
        or ("custom_id" in obj and ("body" in obj or "response" in obj))
        or (isinstance(obj.get("response"), dict) and "choices" in obj["response"])
    )


def import_text(text: str, path: Path | None = None) -> ImportResult:
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    source = Path(path).name if path is not None else "<data>"
    calls: list[tuple[int, dict[str, Any]]] = []  # (line, normalized call)
    by_custom_id: dict[str, dict[str, Any]] = {}

    def parse(item: tuple[int, str]) -> None:
        lineno, line = item
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InterchangeError(None, None, f"malformed JSON ({exc.msg} at column {exc.colno}); "
                                               f"expected {EXPECTED}") from None
        if not looks_like(obj):
            keys = ", ".join(list(obj)[:6]) if isinstance(obj, dict) else type(obj).__name__
            raise InterchangeError(None, None, f"unrecognized line (keys: {keys}); expected {EXPECTED}")
        call = _normalize(obj, lineno)
        cid = obj.get("custom_id")
        if cid is not None:
            cid = str(cid)
            if cid in by_custom_id:  # the other half of a batch input/output pair
                other = by_custom_id[cid]
                for k, v in call.items():
                    if v is not None and other.get(k) is None:
                        other[k] = v
                return None
            by_custom_id[cid] = call
        calls.append((lineno, call))
        return None

    collect(result, ((f"line {n}", (n, line)) for n, line in iter_jsonl(text)), parse)

    groups: dict[str | None, list[tuple[int, dict[str, Any]]]] = {}
    for lineno, call in calls:
        groups.setdefault(call["group"], []).append((lineno, call))
    for group, members in groups.items():
        try:
            run = _group_run(group, members, source)
        except (InterchangeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            first = members[0][0]
            result.errors.append(InterchangeError(result.path, f"line {first}", f"cannot build run: {exc}"))
            continue
        fill_counts(run)
        result.runs.append(run)
    return result


# ---------------------------------------------------------------------------------------------------
def _err_text(err: Any) -> str | None:
    if err is None or err == "":
        return None
    if isinstance(err, dict):
        return str(err.get("message") or err.get("code") or json.dumps(err))
    return str(err)


def _normalize(obj: dict[str, Any], lineno: int) -> dict[str, Any]:
    """Any accepted shape -> {request, response, error, group, times, tags, name}."""
    request = obj.get("request") if isinstance(obj.get("request"), dict) else obj.get("body")
    response = obj.get("response")
    error = _err_text(obj.get("error"))
    if isinstance(response, dict) and "body" in response and "choices" not in response:  # batch output
        status = as_int(response.get("status_code"))
        body = response.get("body")
        if status is not None and status >= 400:
            error = error or _err_text((body or {}).get("error") if isinstance(body, dict) else body) or f"HTTP {status}"
        response = body if isinstance(body, dict) else None
    if request is not None and not isinstance(request, dict):
        raise InterchangeError(None, None, "'request'/'body' must be an object")
    if response is not None and not isinstance(response, dict):
        raise InterchangeError(None, None, "'response' must be an object (a ChatCompletion)")
    if request is not None and not isinstance(request.get("messages", []), list):
        raise InterchangeError(None, None, "request 'messages' must be a list of chat messages")
    group = next((str(obj[k]) for k in GROUP_KEYS if obj.get(k) is not None), None)
    meta = (request or {}).get("metadata")
    if group is None and isinstance(meta, dict):
        group = next((str(meta[k]) for k in GROUP_KEYS if meta.get(k) is not None), None)
    start = parse_time_ns(obj.get("start_time", obj.get("timestamp")))
    end = parse_time_ns(obj.get("end_time"))
    dur_ms = obj.get("duration_ms", obj.get("latency_ms"))
    if start is None and response is not None and response.get("created") is not None:
        start = parse_time_ns(response.get("created"))
    if end is None and start is not None and isinstance(dur_ms, (int, float)):
        end = start + int(dur_ms * 1_000_000)
    tags = obj.get("tags") if isinstance(obj.get("tags"), dict) else None
    return {"request": request, "response": response, "error": error, "group": group, "start": start,
            "end": end, "tags": {str(k): str(v) for k, v in tags.items()} if tags else None,
            "name": obj.get("name"), "line": lineno, "custom_id": obj.get("custom_id")}


def usage_from_openai(u: Any) -> Usage:
    """Provider usage from a response's ``usage`` block, read in its own dialect (OpenAI chat or Responses
    names, and what OpenAI-compatible providers and gateways add: DeepSeek hit/miss, Moonshot's top-level
    ``cached_tokens``, cache writes, Anthropic-shaped counts through a gateway, xAI's reasoning beside the
    completion, Bedrock's camelCase; :mod:`tokprof.profiler.interchange.usage_dialects`)."""
    reading = read_usage(u) if isinstance(u, dict) else None
    return reading.to_usage() if reading is not None else Usage()


def recorded_cost(u: Any) -> Cost | None:
    """What a gateway charged for the call, when its ``usage`` says (OpenRouter ``usage.cost``)."""
    amount = reported_cost(u) if isinstance(u, dict) else None
    return Cost(amount, "USD", "recorded") if amount is not None else None


def _tools(request: dict[str, Any]) -> list[dict[str, Any]]:
    tools = request.get("tools")
    if isinstance(tools, list):
        return tools
    functions = request.get("functions")  # the pre-tools API
    if isinstance(functions, list):
        return [{"type": "function", "function": f} for f in functions]
    return []


def _group_run(group: str | None, members: list[tuple[int, dict[str, Any]]], source: str) -> Run:
    first_start = next((c["start"] for _, c in members if c["start"] is not None), None)
    base = first_start if first_start is not None else 0
    name = f"chatlog {group}" if group is not None else f"chatlog {Path(source).name}"
    run = Run(run_id=stable_id(FORMAT, source, group), name=name, started_wall_ns=base,
              metadata={"source": FORMAT, "source_file": source, "group": group,
                        "lines": [ln for ln, _ in members], "notes": []})
    if first_start is None:
        run.metadata["notes"].append("no timestamps: span times are a synthetic 1 ms-per-call timeline")
    b = RunBuilder(run)
    root = b.span("agent", name, None, base, None)
    t = base
    last = base
    for i, (lineno, c) in enumerate(members):
        request = c["request"] or {}
        response = c["response"] or {}
        model_name = request.get("model") or response.get("model")
        provider, model = split_model(model_name)
        choices = response.get("choices") or []
        output = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        finish = choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else None
        if c["request"] is None:
            run.metadata["notes"].append(f"line {lineno}: response without its request: no input messages")
        call = LLMCall(
            provider=provider or "openai", model=model,
            params={k: v for k, v in request.items() if k not in _NOT_PARAMS},
            messages=request.get("messages") or [], tools=_tools(request), output=output,
            usage=usage_from_openai(response.get("usage")), cost=recorded_cost(response.get("usage")),
            response_id=response.get("id"), finish_reason=finish,
        )
        start = c["start"] if c["start"] is not None else (t if first_start is not None else base + i * STEP_NS)
        end = c["end"] if c["end"] is not None else start + STEP_NS
        b.span("llm", c["name"] or f"chat {model or 'model'}", root, start, end, llm=call,
               status="error" if c["error"] else "ok", error=c["error"], tags=c["tags"],
               attributes={"line": lineno, **({"custom_id": c["custom_id"]} if c["custom_id"] else {})})
        t = max(t, end)
        last = max(last, end)
    root.end_ns = last
    run.ended_wall_ns = last
    return run
