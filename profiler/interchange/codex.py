"""Codex CLI session logs: ``$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`` (``~/.codex`` by default).

Each line is ``{"timestamp", "type", "payload"}`` (builds up to about September 2025 wrote a bare first line
``{"id", "timestamp", "instructions"}``, then the Responses items themselves and ``{"record_type": "state"}``
markers, and no token counts: those lines are read as the envelope's ``session_meta`` / ``response_item``, and
each model turn becomes a call counted locally):

* ``session_meta``: ``payload.id`` (the session), ``cwd``, ``cli_version``, ``originator``;
* ``turn_context``: ``payload.model`` for the turns that follow;
* ``response_item``: the Responses API items of the conversation — ``message`` (role user/assistant/developer,
  ``content`` parts with ``text``), ``reasoning``, ``function_call`` (``name``, ``arguments``, ``call_id``),
  ``function_call_output`` (``call_id``, ``output``), ``custom_tool_call``/``custom_tool_call_output``,
  ``local_shell_call``;
* ``event_msg`` with ``payload.type == "token_count"``: ``payload.info.last_token_usage`` (the latest model
  call) and ``total_token_usage`` (the session so far), each ``{input_tokens, cached_input_tokens,
  output_tokens, reasoning_output_tokens, total_tokens}``; ``info`` may be null. The same event is often
  written twice; an event whose cumulative total has not moved is the same call again and is counted
  once (https://github.com/ryoppippi/ccusage, apps/codex: "total_token_usage holds cumulative totals;
  last_token_usage is the delta for the most recent turn"). Without ``last_token_usage`` the delta of the
  totals is the call's usage.

Token convention: OpenAI's — ``input_tokens`` includes ``cached_input_tokens``. Whether ``output_tokens``
includes ``reasoning_output_tokens`` is read from ``total_tokens`` when it is written (``total = input +
output`` means it does; ``input + output + reasoning`` means reasoning is extra and is added to output).

A run: a root ``agent`` span for the session; one ``llm`` span per counted ``token_count`` whose output is the
items since the previous call and whose messages are the conversation before them; a ``tool`` span per
function/custom/shell call, lasting until its output.
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

FORMAT = "codex"
_KEYS = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens", "total_tokens")
_CALL_ITEMS = ("function_call", "custom_tool_call", "local_shell_call")
_OUTPUT_ITEMS = ("function_call_output", "custom_tool_call_output")
_ZERO = dict.fromkeys(_KEYS, 0)


def looks_like(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("payload"), dict)
            and obj.get("type") in ("session_meta", "turn_context", "response_item", "event_msg")) \
        or _legacy_meta(obj)


_ITEM_TYPES = ("message", "reasoning", *_CALL_ITEMS, *_OUTPUT_ITEMS)


def _legacy_meta(obj: Any) -> bool:
    """The first line of a rollout from before the ``{timestamp, type, payload}`` envelope (Codex CLI builds
    up to about September 2025): ``{"id", "timestamp", "instructions", "git"?}``."""
    return isinstance(obj, dict) and "type" not in obj and "payload" not in obj and "instructions" in obj \
        and isinstance(obj.get("id"), str) and "timestamp" in obj


def _enveloped(obj: Any, first: bool) -> dict[str, Any] | None:
    """A line in the current envelope; a bare-era line wrapped into it (its meta line as ``session_meta``,
    its bare Responses items as ``response_item``, its ``{"record_type": "state"}`` markers dropped)."""
    if not isinstance(obj, dict):
        return None
    if looks_like(obj) and not _legacy_meta(obj):
        return obj
    if first and _legacy_meta(obj):
        return {"timestamp": obj.get("timestamp"), "type": "session_meta", "payload": obj}
    if "payload" not in obj and obj.get("type") in _ITEM_TYPES:
        return {"timestamp": obj.get("timestamp"), "type": "response_item", "payload": obj}
    return None


def _int(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 else 0


def _counts(d: Any) -> dict[str, int] | None:
    return {k: _int(d.get(k)) for k in _KEYS} if isinstance(d, dict) else None


def to_usage(c: dict[str, int]) -> Usage:
    """A Codex usage block as provider usage (input includes cache; reasoning placed by ``total_tokens``)."""
    inp, out, reasoning = c["input_tokens"], c["output_tokens"], c["reasoning_output_tokens"]
    if c["total_tokens"] and reasoning and c["total_tokens"] == inp + out + reasoning:
        out += reasoning  # this build counts reasoning beside output; it is billed as output
    return Usage.from_provider(input_tokens=inp, output_tokens=out, cache_read_tokens=c["cached_input_tokens"],
                               reasoning_tokens=reasoning if reasoning <= out else None)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text") or "") for p in content or [] if isinstance(p, dict))


def _item_messages(item: dict[str, Any]) -> list[Message]:
    t = item.get("type")
    if t == "message":
        role = item.get("role") or "user"
        return [{"role": "system" if role == "developer" else role, "content": _text(item.get("content"))}]
    if t in _CALL_ITEMS:
        args = item.get("arguments", item.get("input", item.get("action")))
        return [{"role": "assistant", "content": None, "tool_calls": [{
            "id": str(item.get("call_id") or item.get("id") or ""), "type": "function",
            "function": {"name": str(item.get("name") or t), "arguments": args if isinstance(args, str)
                         else json.dumps(args)}}]}]
    if t in _OUTPUT_ITEMS:
        out = item.get("output")
        return [{"role": "tool", "tool_call_id": str(item.get("call_id") or ""),
                 "content": out if isinstance(out, str) else json.dumps(out)}]
    return []


item_messages = _item_messages
"""One Responses API item as chat messages (public: mini-swe-agent's Responses-model trajectories use it)."""
OUTPUT_ITEMS = _OUTPUT_ITEMS


def import_text(text: str, path: Path | None = None) -> ImportResult:
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    lines: list[dict[str, Any]] = []
    for lineno, obj in json_lines(text, path, result, "a Codex rollout line {timestamp, type, payload}"):
        line = _enveloped(obj, not lines)
        if line is not None:
            lines.append(line)
    if not lines:
        return result
    result.records += 1
    try:
        run = session_run(lines, Path(path).name if path is not None else "<data>")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.errors.append(InterchangeError(path, "session", f"malformed Codex session ({exc})"))
        return result
    if run is not None:
        fill_counts(run)
        result.runs.append(run)
        if run.metadata.get("not_rebuilt"):
            result.partial.append("session: " + "; ".join(run.metadata["not_rebuilt"]))
    return result


def session_run(lines: list[dict[str, Any]], source: str) -> Run | None:
    meta: dict[str, Any] = next((x["payload"] for x in lines if x["type"] == "session_meta"), {})
    times = [parse_time_ns(x.get("timestamp")) for x in lines]
    t0 = min((t for t in times if t is not None), default=0)
    t1 = max((t for t in times if t is not None), default=t0)
    session = meta.get("id") or source
    run = Run(run_id=stable_id(FORMAT, session), name=f"codex {Path(str(meta.get('cwd') or session)).name}",
              tags={"agent": "codex", "session": str(session)}, started_wall_ns=t0,
              metadata={"source": FORMAT, "source_file": source, "session_id": session, "cwd": meta.get("cwd"),
                        "cli_version": meta.get("cli_version"), "originator": meta.get("originator"),
                        "notes": ["Codex logs no tool definitions: call messages are the conversation only; "
                                  "token counts are the provider's (token_count events)"]})
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, t0, t1)
    model: str | None = None
    seen: list[Message] = []
    since: list[Message] = []
    tools: dict[str, Span] = {}
    prev_total: dict[str, int] | None = None
    last_t = t0
    duplicates = 0
    turns: list[tuple[list[Message], list[Message], int, int]] = []  # (input, answer items, start, end)
    counted_events = False
    turn_t = t0  # when the current model turn's request was sent (for builds without token counts)
    for x, ts in zip(lines, times, strict=True):
        ts = ts if ts is not None else last_t
        p = x["payload"]
        if x["type"] == "turn_context" and p.get("model"):
            model = str(p["model"])
        elif x["type"] == "response_item":
            msgs = _item_messages(p)
            t = p.get("type")
            if t in _CALL_ITEMS:
                cid = str(p.get("call_id") or p.get("id") or "")
                tools[cid] = b.span("tool", str(p.get("name") or t), root, ts, ts,
                                    attributes={"tool_call_id": cid, "arguments": msgs[0]["tool_calls"][0]
                                                ["function"]["arguments"]})
            elif t in _OUTPUT_ITEMS and str(p.get("call_id")) in tools:
                span = tools[str(p.get("call_id"))]
                span.end_ns = max(span.start_ns, ts)
                span.set_attribute("output", msgs[0]["content"])
            if t in _OUTPUT_ITEMS or (t == "message" and p.get("role") != "assistant"):
                if since:
                    turns.append((list(seen), list(since), turn_t, ts))
                turn_t = ts
                seen.extend(since)
                since = []
                seen.extend(msgs)
            else:
                since.extend(msgs)
        elif x["type"] == "event_msg" and p.get("type") == "token_count" and isinstance(p.get("info"), dict):
            info = p["info"]
            total, last = _counts(info.get("total_token_usage")), _counts(info.get("last_token_usage"))
            if (total is not None and prev_total is not None
                    and total["total_tokens"] <= prev_total["total_tokens"] and total != _ZERO):
                # The cumulative total did not grow: the same event written again (next to the first or
                # later), not a new call. Counted once.
                duplicates += 1
                continue
            if last is None and total is not None:
                last = {k: total[k] - (prev_total or {}).get(k, 0) for k in _KEYS}
            if total is not None:
                prev_total = total
            if last is None:
                continue
            counted_events = True
            provider, name = split_model(model)
            output = since[-1] if since else None
            call = LLMCall(provider=provider or "openai", model=name, messages=list(seen), output=output,
                           usage=to_usage(last))
            b.span("llm", f"agent {name or 'model'}", root, last_t, ts, llm=call,
                   attributes={"output_items": since[:-1] if len(since) > 1 else []})
            seen.extend(since)
            since = []
            last_t = ts
    if duplicates:
        run.metadata["notes"].append(f"{duplicates} repeated token_count events counted once")
    if since:
        turns.append((list(seen), list(since), turn_t, t1))
    if not counted_events and turns:
        # An older build logged no token counts: each model turn (the items it produced, up to the next
        # user message or tool output) is one call, its tokens counted locally.
        provider, name = split_model(model)
        for before, answer, start, end in turns:
            b.span("llm", f"agent {name or 'model'}", root, start, end,
                   llm=LLMCall(provider=provider or "openai", model=name, messages=before, output=answer[-1]),
                   attributes={"output_items": answer[:-1]})
        run.metadata["notes"][0] = ("Codex logs no tool definitions: call messages are the conversation only; "
                                    "this build logged no token_count events: each model turn is a call and "
                                    "its tokens are counted locally")
    if not run.llm_spans():
        run.metadata["not_rebuilt"] = ["model calls (no token_count event with usage: an older Codex build)"]
    run.ended_wall_ns = t1
    return run
