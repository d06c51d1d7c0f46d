"""Qwen Code session recordings: ``~/.qwen/projects/<project>/chats/<sessionId>.jsonl``, one run per session.

Qwen Code is a Gemini CLI fork, but its recording differs from Gemini CLI's one JSON document per session
(:mod:`~tokprof.profiler.interchange.gemini_cli`): it appends one ``ChatRecord`` per line (read in
QwenLM/qwen-code ``packages/core/src/services/chatRecordingService.ts``)::

    {uuid, parentUuid, sessionId, timestamp, type: "user"|"assistant"|"tool_result"|"system", subtype?,
     cwd, version, gitBranch?, message?: {role, parts: [...]}, model?, usageMetadata?, toolCallResult?,
     systemPayload?, agentId?, agentName?, isSidechain?}

* ``assistant`` (``recordAssistantTurn``): one model response; ``message.parts`` hold ``text``, ``thought``
  text and ``functionCall: {id, name, args}``; ``usageMetadata`` is a ``GenerateContentResponseUsageMetadata``
  (``promptTokenCount``, ``candidatesTokenCount``, ``cachedContentTokenCount``, ``thoughtsTokenCount``,
  ``toolUsePromptTokenCount``, ``totalTokenCount``).
* ``tool_result``: ``functionResponse: {id, name, response}`` parts plus ``toolCallResult`` (status, error).
* ``system``: session events (``chat_compression``, ``slash_command``, ``ui_telemetry``...). ``ui_telemetry``
  replays the API-response telemetry, whose token counts repeat the assistant record's usage: never summed.

**Usage dialect.** Gemini's API counts thoughts apart from ``candidatesTokenCount``; Qwen Code's OpenAI-
compatible path (``packages/core/src/core/openaiContentGenerator/converter.ts``) puts ``completion_tokens``
(reasoning included) in ``candidatesTokenCount`` and reasoning — estimated from the streamed text when the
provider gives none — in ``thoughtsTokenCount``. Which one a record is, is read from ``totalTokenCount``:
prompt + candidates + thoughts = total means thoughts are extra output; prompt + candidates = total (or no
total: the OpenAI path's default) means they are inside it, labelled ``estimated``. The prompt count includes
the cached part (both paths); a cached count larger than the prompt means a prompt that excludes it, and the
cache is added back, never twice. Tool-use prompt tokens are input.

**Tree.** A root ``agent`` span; an ``llm`` span per distinct assistant record (a record repeated verbatim —
a resume or ``/branch`` copy, a retried append — is one call, by ``uuid``); a ``tool`` span per
``functionCall`` lasting until its result; records of a sub-agent (``isSidechain``/``agentId``, and any
``<session>/subagents/*.jsonl`` beside the file) under an ``agent`` child span of the ``task``/``agent`` tool
call that launched it (matched by prompt), else of the root. Cost comes from the price table.
A legacy Gemini-CLI-shaped JSON session is read by the Gemini CLI importer and tagged ``qwen-code``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    fill_counts,
    json_lines,
    parse_time_ns,
    split_model,
    stable_id,
)
from tokprof.profiler.model import LLMCall, Message, Run, Span, Usage

FORMAT = "qwen_code"
RECORD_TYPES = ("user", "assistant", "tool_result", "system")
SUBAGENT_TOOLS = ("task", "agent", "Task", "Agent")


def looks_like(obj: Any) -> bool:
    """One recording line: a ChatRecord (Gemini ``parts`` content, or Qwen's own metadata fields)."""
    if not (isinstance(obj, dict) and "sessionId" in obj and obj.get("type") in RECORD_TYPES and "uuid" in obj):
        return False
    msg = obj.get("message")
    return ((isinstance(msg, dict) and "parts" in msg) or "usageMetadata" in obj or "systemPayload" in obj
            or "toolCallResult" in obj or obj.get("type") == "tool_result")


def _n(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 << 62 else None


def to_usage(meta: Any) -> tuple[Usage, str | None]:
    """A ``usageMetadata`` as tokprof usage, and a note when the dialect had to be inferred."""
    if not isinstance(meta, dict):
        return Usage(), None
    prompt, cand, cached, thoughts, tool, total = (_n(meta.get(k)) for k in (
        "promptTokenCount", "candidatesTokenCount", "cachedContentTokenCount", "thoughtsTokenCount",
        "toolUsePromptTokenCount", "totalTokenCount"))
    if prompt is None and cand is None:
        return Usage(), None
    note = None
    inp = None if prompt is None else prompt + (tool or 0)
    if inp is not None and cached and cached > (prompt or 0):
        inp += cached  # a prompt count that excludes the cache: add it back once
        note = "prompt count excluded the cache; cache reads added to input"
    separate = (total is not None and thoughts and prompt is not None and cand is not None
                and (prompt + (tool or 0) + cand + thoughts == total
                     or prompt + (tool or 0) + cand + thoughts + (cached or 0) == total))
    out = None if cand is None else cand + (thoughts or 0 if separate else 0)
    u = Usage.from_provider(input_tokens=inp, output_tokens=out, cache_read_tokens=cached)
    if thoughts:
        # Separate thoughts are the provider's own count; inside candidates they may be Qwen's estimate.
        u.set("reasoning_tokens", min(thoughts, out or thoughts), "provider" if separate else "estimated")
    return u, note


def _parts(msg: Any) -> list[dict[str, Any]]:
    parts = msg.get("parts") if isinstance(msg, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _text(parts: list[dict[str, Any]]) -> str:
    return "\n".join(str(p.get("text")) for p in parts if p.get("text") and not p.get("thought"))


def _call_id(fc: dict[str, Any]) -> str:
    return str(fc.get("id") or fc.get("callId") or fc.get("name") or "")


def _records(text: str, path: Path | None, result: ImportResult, sink: list[dict[str, Any]], tag: str,
             sidechain: bool = False) -> None:
    for lineno, obj in json_lines(text, path, result, "a Qwen Code chat record", tag):
        if isinstance(obj, dict) and obj.get("type") in RECORD_TYPES:
            obj["_line"] = f"{tag}line {lineno}"
            if sidechain:
                obj["isSidechain"] = True
            sink.append(obj)


def import_text(text: str, path: Path | None = None) -> ImportResult:
    """One session file (plus sub-agent files in a ``<session>/subagents/`` folder beside it)."""
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    if text.lstrip().startswith("{") and '"messages"' in text[:65536]:
        try:
            whole = json.loads(text)
        except (ValueError, RecursionError):
            whole = None  # JSON Lines (or broken): read line by line below
        if isinstance(whole, dict) and isinstance(whole.get("messages"), list):
            return _legacy(text, path)
    records: list[dict[str, Any]] = []
    _records(text, path, result, records, "")
    if path is not None:
        sub = Path(path).with_suffix("") / "subagents"
        if sub.is_dir():
            for f in sorted(sub.rglob("*.jsonl")):
                try:
                    more = f.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    result.errors.append(InterchangeError(f, None, f"cannot read sub-agent file ({exc})"))
                    continue
                before = len(records)
                _records(more, f, result, records, f"{f.name} ", sidechain=True)
                for r in records[before:]:
                    r.setdefault("agentId", f.stem)
    if not any(r.get("type") == "assistant" for r in records):
        return result
    result.records += 1
    try:
        run = session_run(records, Path(path).name if path is not None else "<data>")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.errors.append(InterchangeError(path, "session", f"malformed Qwen Code session ({exc})"))
        return result
    fill_counts(run)
    result.runs.append(run)
    return result


def _legacy(text: str, path: Path | None) -> ImportResult:
    from tokprof.profiler.interchange import gemini_cli

    res = gemini_cli.import_text(text, path)
    res.format = FORMAT
    for run in res.runs:
        run.tags["agent"] = "qwen-code"
        run.name = run.name.replace("gemini-cli", "qwen-code", 1)
        run.metadata["source"] = FORMAT
    return res


class _Thread:
    """One conversation: the main one or a sub-agent's."""

    def __init__(self, key: str, name: str) -> None:
        self.key, self.name = key, name
        self.items: list[dict[str, Any]] = []


def session_run(records: list[dict[str, Any]], source: str) -> Run:
    records.sort(key=lambda r: parse_time_ns(r.get("timestamp")) or 0)  # stable: file order within a tick
    session = next((str(r["sessionId"]) for r in records if r.get("sessionId")), source)
    t0 = parse_time_ns(records[0].get("timestamp")) or 0
    t1 = max(parse_time_ns(r.get("timestamp")) or t0 for r in records)
    cwd = next((r.get("cwd") for r in records if r.get("cwd")), None)
    run = Run(run_id=stable_id(FORMAT, session), name=f"qwen-code {Path(str(cwd)).name if cwd else session[:8]}",
              tags={"agent": "qwen-code", "session": session}, started_wall_ns=t0,
              metadata={"source": FORMAT, "source_file": source, "session_id": session, "cwd": cwd,
                        "version": next((r.get("version") for r in records if r.get("version")), None),
                        "git_branch": next((r.get("gitBranch") for r in records if r.get("gitBranch")), None),
                        "notes": ["Qwen Code records no system prompt or tool definitions: call messages are the "
                                  "conversation only; token counts are the provider's"]})
    parent_session = next((r.get("systemPayload", {}).get("parentSessionId") for r in records
                           if r.get("subtype") == "parent_session" and isinstance(r.get("systemPayload"), dict)),
                          None)
    if parent_session:
        run.metadata["parent_session_id"] = parent_session
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, t0, t1)
    threads: dict[str, _Thread] = {}
    seen_uuid: set[str] = set()
    dropped = 0
    for r in records:
        if r.get("type") == "assistant" and r.get("uuid"):
            if str(r["uuid"]) in seen_uuid:
                dropped += 1  # the same record again (resume/branch copy, retried append): one call
                continue
            seen_uuid.add(str(r["uuid"]))
        side = r.get("isSidechain") or r.get("agentId")
        key = f"agent:{r.get('agentId') or 'sidechain'}" if side else "main"
        th = threads.setdefault(key, _Thread(key, str(r.get("agentName") or r.get("agentId") or "sub-agent")))
        th.items.append(r)
    tool_spans: dict[str, Span] = {}
    launchers: dict[str, Span] = {}  # sub-agent prompt -> the tool span that launched it
    notes: list[str] = []

    def emit(th: _Thread, parent: Span) -> None:
        seen: list[Message] = []
        prev: int | None = None
        for r in th.items:
            ts = parse_time_ns(r.get("timestamp")) or t0
            kind, parts = r.get("type"), _parts(r.get("message"))
            if kind == "user" and parts:
                seen.append({"role": "user", "content": _text(parts)})
                prev = ts
            elif kind == "tool_result":
                for p in parts:
                    fr = p.get("functionResponse")
                    if not isinstance(fr, dict):
                        continue
                    cid = _call_id(fr)
                    resp = fr.get("response")
                    content = resp if isinstance(resp, str) else json.dumps(resp, default=str)
                    seen.append({"role": "tool", "tool_call_id": cid, "content": content})
                    span = tool_spans.get(cid)
                    if span is not None:
                        span.end_ns = max(span.start_ns, ts)
                        span.attributes = {**(span.attributes or {}), "output": resp}
                        tcr = r.get("toolCallResult")
                        tcr = tcr if isinstance(tcr, dict) else {}
                        if tcr.get("status") in ("error", "cancelled") or tcr.get("error"):
                            span.status, span.error = "error", str(tcr.get("error") or tcr.get("status"))[:2000]
                prev = ts
            elif kind == "assistant":
                calls = [p["functionCall"] for p in parts if isinstance(p.get("functionCall"), dict)]
                out: Message = {"role": "assistant", "content": _text(parts) or None}
                if calls:
                    out["tool_calls"] = [{"id": _call_id(c), "type": "function", "function": {
                        "name": str(c.get("name") or ""), "arguments": json.dumps(c.get("args") or {})}}
                        for c in calls]
                usage, note = to_usage(r.get("usageMetadata"))
                if note and note not in notes:
                    notes.append(note)
                provider, model = split_model(r.get("model"))
                if usage.sources:
                    start = prev if prev is not None and prev <= ts else ts
                    b.span("llm", f"{'sub-agent' if th.key != 'main' else 'agent'} {model or 'qwen'}", parent,
                           start, ts, llm=LLMCall(provider=provider or "qwen", model=model, messages=list(seen),
                                                  output=out, usage=usage, response_id=r.get("uuid")),
                           attributes={"record": r.get("_line")})
                seen.append(out)
                for c in calls:
                    name = str(c.get("name") or "tool")
                    span = b.span("tool", name, parent, ts, ts,
                                  attributes={"tool_call_id": _call_id(c), "arguments": c.get("args")})
                    tool_spans[_call_id(c)] = span
                    args = c.get("args") if isinstance(c.get("args"), dict) else {}
                    if name in SUBAGENT_TOOLS and args.get("prompt"):
                        launchers[str(args["prompt"]).strip()] = span
                prev = ts

    emit(threads.pop("main", _Thread("main", "main")), root)
    for th in threads.values():
        first_user = next((_text(_parts(r.get("message"))) for r in th.items if r.get("type") == "user"), "")
        parent = launchers.get(first_user.strip()) or root
        times = [parse_time_ns(r.get("timestamp")) or t0 for r in th.items]
        agent = b.span("agent", f"sub-agent {th.name[:24]}", parent, min(times), max(times),
                       tags={"side": "sub-agent"})
        emit(th, agent)
    if dropped:
        notes.append(f"{dropped} repeated assistant records (same uuid) counted once")
    run.metadata["notes"].extend(notes)
    run.ended_wall_ns = t1
    return run
