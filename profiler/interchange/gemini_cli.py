"""Gemini CLI chat recordings: ``~/.gemini/tmp/<project-hash>/chats/session-*.json``, one run per session.

File: ``{"sessionId", "projectHash", "startTime", "lastUpdated", "messages": [...]}``; a message has ``id``,
``timestamp``, ``type`` (``user``, ``gemini``, ``info``, ``error``...), ``content`` and, for ``gemini``
messages (one model response each), ``model``, ``thoughts``, ``toolCalls`` (``[{id, name, args, result,
status, timestamp}]``) and ``tokens``: ``{input, output, cached, thoughts, tool, total}`` — the response's
``usageMetadata`` (``promptTokenCount``, ``candidatesTokenCount``, ``cachedContentTokenCount``,
``thoughtsTokenCount``, ``toolUsePromptTokenCount``, ``totalTokenCount``;
https://ai.google.dev/api/generate-content#UsageMetadata). The prompt count includes the cached part; thoughts
are billed as output, tool-use prompt tokens as input, so: input = ``input + tool``, output = ``output +
thoughts`` (reasoning = ``thoughts``), cache read = ``cached``. Qwen Code, a Gemini CLI fork, writes the same
shape. Format as documented by tools reading these files (e.g. littlebearapps/token-audit, docs/platforms/gemini-cli.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    collect,
    parse_json,
    parse_time_ns,
    split_model,
    stable_id,
)
from tokprof.profiler.model import LLMCall, Message, Run, Usage

FORMAT = "gemini_cli"
EXPECTED = 'a Gemini CLI session {"sessionId", "messages": [{"type": "user"|"gemini", "tokens", ...}]}'


def looks_like(obj: Any) -> bool:
    return (isinstance(obj, dict) and "sessionId" in obj and isinstance(obj.get("messages"), list)
            and ("projectHash" in obj or any(isinstance(m, dict) and m.get("type") == "gemini"
                                              for m in obj["messages"][:50])))


def _n(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else None


def to_usage(t: Any) -> Usage:
    if not isinstance(t, dict):
        return Usage()
    inp, out, cached, thoughts, tool = (_n(t.get(k)) for k in ("input", "output", "cached", "thoughts", "tool"))
    return Usage.from_provider(
        input_tokens=None if inp is None else inp + (tool or 0),
        output_tokens=None if out is None else out + (thoughts or 0),
        cache_read_tokens=cached, reasoning_tokens=thoughts)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text") or "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def import_text(text: str, path: Path | None = None) -> ImportResult:
    data = parse_json(path, text, EXPECTED)
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    if not looks_like(data):
        raise InterchangeError(path, None, f"no 'sessionId' and 'messages'; expected {EXPECTED}")
    source = Path(path).name if path is not None else "<data>"
    return collect(result, [("session", data)], lambda d: session_run(d, source))


def session_run(data: dict[str, Any], source: str) -> Run:
    msgs = [m for m in data["messages"] if isinstance(m, dict)]
    t0 = parse_time_ns(data.get("startTime")) or min((parse_time_ns(m.get("timestamp")) or 0 for m in msgs), default=0)
    session = str(data.get("sessionId"))
    run = Run(run_id=stable_id(FORMAT, session), name=f"gemini-cli {session[:8]}",
              tags={"agent": "gemini-cli", "session": session}, started_wall_ns=t0,
              metadata={"source": FORMAT, "source_file": source, "session_id": session,
                        "project_hash": data.get("projectHash"),
                        "notes": ["Gemini CLI records no system prompt or tool definitions: call messages are the "
                                  "conversation only; token counts are the provider's"]})
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, t0, parse_time_ns(data.get("lastUpdated")))
    seen: list[Message] = []
    prev = t0
    last = t0
    for m in msgs:
        ts = parse_time_ns(m.get("timestamp")) or prev
        kind = m.get("type")
        if kind == "user":
            seen.append({"role": "user", "content": _text(m.get("content"))})
        elif kind == "gemini":
            calls = [c for c in m.get("toolCalls") or [] if isinstance(c, dict)]
            out: Message = {"role": "assistant", "content": _text(m.get("content")) or None}
            if calls:
                out["tool_calls"] = [{"id": str(c.get("id") or ""), "type": "function", "function": {
                    "name": str(c.get("name") or ""), "arguments": json.dumps(c.get("args") or {})}} for c in calls]
            provider, model = split_model(m.get("model"))
            usage = to_usage(m.get("tokens"))
            if usage.sources:
                b.span("llm", f"agent {model or 'gemini'}", root, prev, ts, llm=LLMCall(
                    provider=provider or "google", model=model, messages=list(seen), output=out, usage=usage,
                    response_id=m.get("id")))
            seen.append(out)
            for c in calls:
                cts = parse_time_ns(c.get("timestamp")) or ts
                b.span("tool", str(c.get("name") or "tool"), root, ts, max(ts, cts),
                       status="error" if c.get("status") == "error" else "ok",
                       attributes={"tool_call_id": c.get("id"), "arguments": c.get("args"), "output": c.get("result")})
                seen.append({"role": "tool", "tool_call_id": str(c.get("id") or ""),
                             "content": json.dumps(c.get("result")) if not isinstance(c.get("result"), str)
                             else c["result"]})
        prev = ts
        last = max(last, ts)
    if root.end_ns is None or root.end_ns < last:
        root.end_ns = last
    run.ended_wall_ns = root.end_ns
    return run
