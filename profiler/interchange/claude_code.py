"""Claude Code session transcripts: ``~/.claude/projects/<project>/<session>.jsonl``, one run per session.

Each line is an entry ``{type, uuid, parentUuid, sessionId, timestamp, isSidechain, message, ...}``:

* ``type: "assistant"``: ``message`` is an Anthropic Messages API response (``id``, ``model``, ``content``
  blocks ``text``/``thinking``/``tool_use``, ``usage`` with ``input_tokens``, ``output_tokens``,
  ``cache_read_input_tokens``, ``cache_creation_input_tokens`` and ``cache_creation.ephemeral_5m_input_tokens``
  / ``ephemeral_1h_input_tokens``). A streamed response is logged as several entries that repeat one
  ``message.id`` (one content block each, the usage repeated, ``output_tokens`` growing): they are one call,
  counted once, with the largest usage seen.
* ``type: "user"``: a prompt (``message.content`` a string or blocks) or tool results
  (``{"type": "tool_result", "tool_use_id", "content", "is_error"}`` blocks).
* ``isSidechain: true``: a sub-agent's conversation (the ``Task`` tool). Newer versions also write sub-agents
  to ``<session>/subagents/agent-*.jsonl`` beside the session file; those are read too. Entries carrying
  ``agentId`` group by it, others by the root of their ``parentUuid`` chain.
* Other types (``summary``, ``system``, ``file-history-snapshot``...) are not calls and are skipped;
  ``<synthetic>`` model entries (Claude Code's own error notices, zero usage) are not calls either.

A run: a root ``agent`` span for the session; an ``llm`` span per response (provider usage; Anthropic's input
count excludes the cache, so ``input_tokens`` = input + cache reads + cache writes, see
:mod:`~tokprof.profiler.interchange.usage_dialects`); a ``tool`` span per ``tool_use`` lasting until its
result; each sub-agent an ``agent`` child span under the ``Task`` tool span that started it (matched by its
prompt) or else under the root. A call's ``messages`` are the conversation of its own thread before it, in
OpenAI format; cost comes from the price table, except where an entry records ``costUSD`` (Claude Code
1.0.x wrote it, above 0, per assistant entry): that is kept as the call's recorded cost.
Format as observed in Claude Code 1.x/2.x transcripts and documented by tools that read them (e.g.
https://github.com/ryoppippi/ccusage, which counts a ``message.id``+``requestId`` once).
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    fill_counts,
    json_lines,
    parse_time_ns,
    stable_id,
)
from tokprof.profiler.interchange.usage_dialects import read_usage
from tokprof.profiler.model import Cost, LLMCall, Message, Run, Span, Usage

FORMAT = "claude_code"
ENTRY_TYPES = ("user", "assistant")
SUBAGENT_TOOLS = ("Task", "Agent")


def looks_like(obj: Any) -> bool:
    """One transcript line: Claude Code's entry envelope."""
    return isinstance(obj, dict) and ("sessionId" in obj or "leafUuid" in obj) and "type" in obj


def _entries(text: str, path: Path | None, result: ImportResult, sink: list[dict[str, Any]], tag: str) -> None:
    for lineno, obj in json_lines(text, path, result, "a Claude Code transcript entry", tag):
        if isinstance(obj, dict) and obj.get("type") in ENTRY_TYPES and isinstance(obj.get("message"), dict):
            obj["_line"] = f"{tag}line {lineno}"
            sink.append(obj)


def import_text(text: str, path: Path | None = None) -> ImportResult:
    """One session file (plus its ``subagents/`` folder when ``path`` is given)."""
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    entries: list[dict[str, Any]] = []
    _entries(text, path, result, entries, "")
    if path is not None:
        sub = Path(path).with_suffix("") / "subagents"
        if sub.is_dir():
            for f in sorted(sub.glob("*.jsonl")):
                try:
                    sub_text = f.read_text(encoding="utf-8")
                except OSError as exc:
                    result.errors.append(InterchangeError(f, None, f"cannot read sub-agent file ({exc})"))
                    continue
                more: list[dict[str, Any]] = []
                _entries(sub_text, f, result, more, f"{f.name} ")
                for e in more:
                    e["isSidechain"] = True
                    e.setdefault("agentId", f.stem)
                entries.extend(more)
    if not entries:
        return result
    result.records += 1
    try:
        run = session_run(entries, Path(path).name if path is not None else "<data>")
    except (InterchangeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        result.errors.append(InterchangeError(path, "session", f"malformed Claude Code session ({exc})"))
        return result
    fill_counts(run)
    result.runs.append(run)
    return result


# ---------------------------------------------------------------------------------------------------
def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)] if isinstance(content, list) else []


def to_openai(role: str, content: Any) -> list[Message]:
    """An Anthropic message as OpenAI-format messages (tool results become ``tool`` messages)."""
    blocks = _blocks(content)
    text = "\n".join(str(b.get("text") or "") for b in blocks if b.get("type") == "text")
    if role == "assistant":
        msg: Message = {"role": "assistant", "content": text or None}
        calls = [{"id": str(b.get("id") or ""), "type": "function",
                  "function": {"name": str(b.get("name") or ""), "arguments": json.dumps(b.get("input") or {})}}
                 for b in blocks if b.get("type") == "tool_use"]
        if calls:
            msg["tool_calls"] = calls
        return [msg]
    out: list[Message] = []
    for b in blocks:
        if b.get("type") == "tool_result":
            c = b.get("content")
            if isinstance(c, list):
                c = "\n".join(str(x.get("text") or "") for x in c if isinstance(x, dict))
            out.append({"role": "tool", "tool_call_id": str(b.get("tool_use_id") or ""), "content": c or ""})
    if text or not out:
        out.append({"role": "user", "content": text})
    return out


class _Response:
    """One model response, possibly logged as several streamed entries (one ``message.id``)."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.first = entry
        self.blocks: list[dict[str, Any]] = []
        self.usage: dict[str, Any] | None = None
        self.end = entry
        self.cost_usd: Decimal | None = None
        self.add(entry)

    def add(self, entry: dict[str, Any]) -> None:
        msg = entry["message"]
        for b in _blocks(msg.get("content")):
            if b not in self.blocks:  # later entries may repeat earlier blocks
                self.blocks.append(b)
        u = msg.get("usage")
        if isinstance(u, dict) and (self.usage is None or
                                    (u.get("output_tokens") or 0) >= (self.usage.get("output_tokens") or 0)):
            self.usage = u
        cost = _cost_usd(entry.get("costUSD"))
        if cost is not None:
            self.cost_usd = cost  # the entry with the final usage carries the whole call's cost
        self.end = entry


def _cost_usd(value: Any) -> Decimal | None:
    """Claude Code 1.0.x wrote ``costUSD`` on each assistant entry; ccusage's ``auto`` mode takes it when it is
    above 0 (https://github.com/ryoppippi/ccusage, ``calculateCostForEntry``). 0 or absent: not recorded."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount > 0 else None


def _thread_key(e: dict[str, Any], by_uuid: dict[str, dict[str, Any]]) -> str:
    """Main thread, or which sub-agent: ``agentId`` when written, else the root of the parentUuid chain."""
    if not e.get("isSidechain"):
        return "main"
    if e.get("agentId"):
        return f"agent:{e['agentId']}"
    seen = set()
    cur = e
    while cur.get("parentUuid") and cur["parentUuid"] in by_uuid and cur["uuid"] not in seen:
        seen.add(cur["uuid"])
        parent = by_uuid[cur["parentUuid"]]
        if not parent.get("isSidechain"):
            break
        cur = parent
    return f"chain:{cur.get('uuid')}"


def session_run(entries: list[dict[str, Any]], source: str) -> Run:
    entries.sort(key=lambda e: parse_time_ns(e.get("timestamp")) or 0)
    by_uuid = {str(e.get("uuid")): e for e in entries if e.get("uuid")}
    session = next((e.get("sessionId") for e in entries if e.get("sessionId")), None) or source
    t0 = parse_time_ns(entries[0].get("timestamp")) or 0
    t1 = max(parse_time_ns(e.get("timestamp")) or t0 for e in entries)
    cwd = next((e.get("cwd") for e in entries if e.get("cwd")), None)
    run = Run(run_id=stable_id(FORMAT, session), name=f"claude-code {Path(str(cwd)).name if cwd else session}",
              tags={"agent": "claude-code", "session": str(session)}, started_wall_ns=t0,
              metadata={"source": FORMAT, "source_file": source, "session_id": session, "cwd": cwd,
                        "version": next((e.get("version") for e in entries if e.get("version")), None),
                        "git_branch": next((e.get("gitBranch") for e in entries if e.get("gitBranch")), None),
                        "notes": ["Claude Code records no tool definitions or system prompt: call messages are "
                                  "the conversation only; token counts are the provider's"]})
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, t0, t1)

    # Responses, merged by message id within each thread, in order of first appearance.
    threads: dict[str, list[tuple[str, Any]]] = {}
    responses: dict[tuple[str, str], _Response] = {}
    for e in entries:
        key = _thread_key(e, by_uuid)
        items = threads.setdefault(key, [])
        if e["type"] == "assistant":
            mid = str(e["message"].get("id") or e.get("requestId") or e.get("uuid"))
            if (key, mid) in responses:
                responses[(key, mid)].add(e)
                continue
            responses[(key, mid)] = _Response(e)
            items.append(("response", responses[(key, mid)]))
        else:
            items.append(("user", e))

    tool_spans: dict[str, Span] = {}
    pending_agents: dict[str, Span] = {}  # Task prompt -> its tool span
    skipped = 0

    def emit(key: str, parent: Span) -> None:
        nonlocal skipped
        seen: list[Message] = []
        prev = None  # when the request was sent: the thread's previous entry (the prompt or tool result)
        for kind, item in threads.get(key, []):
            if kind == "user":
                e = item
                ts = parse_time_ns(e.get("timestamp")) or t0
                prev = ts
                for blk in _blocks(e["message"].get("content")):
                    if blk.get("type") == "tool_result":
                        span = tool_spans.get(str(blk.get("tool_use_id")))
                        if span is not None:
                            span.end_ns = max(span.start_ns, ts)
                            if blk.get("is_error"):
                                span.status, span.error = "error", str(blk.get("content"))[:2000]
                            span.set_attribute("output", blk.get("content"))
                seen.extend(to_openai("user", e["message"].get("content")))
                continue
            r: _Response = item
            msg = r.first["message"]
            end = parse_time_ns(r.end.get("timestamp")) or t0
            start = prev if prev is not None and prev <= end else (parse_time_ns(r.first.get("timestamp")) or end)
            prev = end
            out = to_openai("assistant", r.blocks)[0]
            model = msg.get("model")
            reading = read_usage(r.usage)
            if model == "<synthetic>" or reading is None:
                skipped += 1
                seen.append(out)
                continue
            usage: Usage = reading.to_usage()
            call = LLMCall(provider="anthropic", model=model, messages=list(seen), output=out, usage=usage,
                           cost=Cost(r.cost_usd, "USD", "recorded") if r.cost_usd is not None else None,
                           response_id=msg.get("id"), finish_reason=msg.get("stop_reason"))
            b.span("llm", f"{'sub-agent' if key != 'main' else 'agent'} {model}", parent, start, end, llm=call,
                   attributes={"request_id": r.first.get("requestId"), "entries": r.first.get("_line")})
            for blk in r.blocks:
                if blk.get("type") != "tool_use":
                    continue
                name = str(blk.get("name") or "tool")
                span = b.span("tool", name, parent, end, end,
                              attributes={"tool_call_id": blk.get("id"), "arguments": blk.get("input")})
                tool_spans[str(blk.get("id"))] = span
                prompt = (blk.get("input") or {}).get("prompt") if isinstance(blk.get("input"), dict) else None
                if name in SUBAGENT_TOOLS and prompt:
                    pending_agents[str(prompt).strip()] = span
            seen.append(out)

    emit("main", root)
    for key in threads:
        if key == "main":
            continue
        first = threads[key][0][1]
        first_entry = first.first if isinstance(first, _Response) else first
        prompt = first_entry["message"].get("content") if first_entry["type"] == "user" else None
        text = prompt if isinstance(prompt, str) else "\n".join(
            str(x.get("text") or "") for x in _blocks(prompt) if x.get("type") == "text")
        parent = pending_agents.get(text.strip()) or root
        ts = [parse_time_ns(x[1].first.get("timestamp") if isinstance(x[1], _Response) else x[1].get("timestamp"))
              or t0 for x in threads[key]]
        agent = b.span("agent", f"sub-agent {key.split(':', 1)[1][:12]}", parent, min(ts), max(ts),
                       tags={"side": "sub-agent"})
        emit(key, agent)
    if skipped:
        run.metadata["notes"].append(f"{skipped} responses without usage (Claude Code's <synthetic> notices) "
                                     "are conversation only, not calls")
    run.ended_wall_ns = t1
    return run
