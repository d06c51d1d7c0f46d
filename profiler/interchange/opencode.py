"""OpenCode sessions: its JSON storage, its SQLite database or an ``opencode export`` document; one run per
top-level session.

**Storage** (sst/opencode ``packages/opencode/src/session/index.ts``: ``Storage.write(["message", sessionID,
id])``, ``Storage.write(["part", messageID, id])``, one JSON file per key under the root; default root
``~/.local/share/opencode/storage``, ``$XDG_DATA_HOME/opencode/storage``)::

    session/<projectID>/<sessionID>.json      {id, projectID, parentID?, title, directory, version, time}
    message/<sessionID>/<messageID>.json      {id, sessionID, role, time: {created, completed}, ...}
    part/<messageID>/<partID>.json            {id, messageID, sessionID, type, ...}

(older releases: ``session/info/<id>.json``, ``session/message/<sid>/<mid>.json``,
``session/part/<sid>/<mid>/<pid>.json``: read too). ``opencode export <id>`` writes the same objects as
``{"info": <session>, "messages": [{"info": <message>, "parts": [...]}]}``. Current releases keep them in
SQLite, ``<data>/opencode/opencode.db`` (anomalyco/opencode ``packages/opencode/src/session/session.sql.ts``):
tables ``session`` (``id``, ``project_id``, ``parent_id``, ``title``, ``directory``, ``version``,
``time_created``, ``time_updated``...), ``message`` and ``part`` (``id``, ``session_id``/``message_id``,
``data``: the same JSON object without its ids); the database is opened read-only, one run per top-level
session (:func:`import_db`).

An assistant message has ``modelID``, ``providerID``, ``cost`` and ``tokens: {input, output, reasoning,
cache: {read, write}, total?}``. One message can hold several model calls (*steps*: a tool round each): the
processor (``packages/opencode/src/session/processor.ts``, ``case "finish-step"``) writes a ``step-finish``
part with *that step's* ``tokens`` and ``cost``, adds the cost to the message but **overwrites** the
message's ``tokens`` with the last step's. So every ``step-finish`` part is one call; the message's own
``tokens`` are used only for messages written without step parts (older releases), and never summed with
them. Parts are keyed by id, so a part written twice (streamed updates, a copied export) counts once.

**Usage dialect** (``Session.getUsage`` in ``packages/opencode/src/session/index.ts``): current releases store
``input`` *excluding* cache reads and writes (they subtract them for every provider but Anthropic/Bedrock,
whose SDK already excludes them) and write ``total``; older ones stored the AI SDK's ``inputTokens`` as is
(cache included except on Anthropic/Bedrock) and no ``total``. Detected per record: with ``total``, the sum
that matches it says whether cache and reasoning are inside ``input``/``output``; without it, the provider
and ``cache.read > input`` decide. tokprof's input then includes the cache exactly once; reasoning billed
apart from ``output`` is added to output. A positive recorded ``cost`` is kept as ``recorded`` (USD); a
zero cost (unpriced model, subscription) is left for the price table.

**Tree.** A root ``agent`` span for the session; an ``llm`` span per step; a ``tool`` span per ``tool`` part
(``state.time``, ``state.input``/``output``, error status); each child session (``parentID`` = this session;
the ``task`` tool's sub-agents) an ``agent`` child span under the ``task`` tool part whose
``state.metadata.sessionId`` names it, else under the root.
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
    parse_json,
    stable_id,
)
from tokprof.profiler.interchange.opencode_sources import (
    MAX_CHILD_DEPTH,
    Source,
    from_db,
    from_export,
    from_storage,
    is_db,
    looks_like_export,
    looks_like_session,
    ms_to_ns,
)
from tokprof.profiler.model import Cost, LLMCall, Message, Run, Span, Usage
FORMAT = "opencode"
EXPECTED = ('an OpenCode session (storage/session/.../<id>.json beside message/ and part/, or `opencode export` '
            '{"info", "messages": [{"info", "parts"}]})')
EXCLUSIVE_PROVIDERS = ("anthropic", "amazon-bedrock", "bedrock", "google-vertex-anthropic")

__all__ = ["FORMAT", "import_db", "import_text", "is_db", "looks_like_export", "looks_like_session", "to_usage"]


def import_db(path: str | Path) -> ImportResult:
    """Every top-level session of an ``opencode.db`` as a run (its child sessions inside it)."""
    path = Path(path)
    src = from_db(path)
    result = ImportResult(path, FORMAT)
    result.errors.extend(src.errors)
    for info in sorted(src.sessions.values(), key=lambda s: ms_to_ns(s.get("time"), "created") or 0):
        if info.get("parentID") and str(info["parentID"]) in src.sessions:
            continue  # imported inside its parent
        result.records += 1
        where = f"session {info['id']}"
        try:
            run = session_run(src, info, path.name)
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as exc:
            result.errors.append(InterchangeError(path, where, f"malformed OpenCode session ({exc})"))
            continue
        if not run.llm_spans():
            result.errors.append(InterchangeError(path, where, "no assistant step with tokens"))
            continue
        fill_counts(run)
        result.runs.append(run)
    return result


def import_text(text: str, path: Path | None = None) -> ImportResult:
    data = parse_json(path, text, EXPECTED)
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    if looks_like_export(data):
        src, info = from_export(data), data["info"]
    elif looks_like_session(data):
        if path is None:
            raise InterchangeError(path, None, "an OpenCode session file needs its storage folder (pass the path)")
        src, info = from_storage(Path(path), data), data
    else:
        raise InterchangeError(path, None, f"no session 'info'/'messages'; expected {EXPECTED}")
    result.errors.extend(src.errors)
    result.records += 1
    try:
        run = session_run(src, info, Path(path).name if path is not None else "<data>")
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.errors.append(InterchangeError(path, f"session {info.get('id')}", f"malformed OpenCode session ({exc})"))
        return result
    if not run.llm_spans():
        result.errors.append(InterchangeError(path, f"session {info.get('id')}", "no assistant step with tokens"))
        return result
    fill_counts(run)
    result.runs.append(run)
    return result



# ---------------------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------------------
def _n(v: Any) -> int:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1 << 62 else 0


def to_usage(tokens: Any, provider: str | None) -> tuple[Usage, str]:
    """OpenCode ``tokens`` as tokprof usage (input including the cache once), and the convention seen."""
    if not isinstance(tokens, dict):
        return Usage(), "none"
    inp, out, rsn = _n(tokens.get("input")), _n(tokens.get("output")), _n(tokens.get("reasoning"))
    cache = _d(tokens.get("cache"))
    read, write = _n(cache.get("read")), _n(cache.get("write"))
    total = tokens.get("total")
    if isinstance(total, (int, float)) and not isinstance(total, bool) and total > 0:
        # current releases: the stored parts add up to total; which sum matches says what is inside what
        excl_sep = inp + out + rsn + read + write
        if total in (excl_sep, inp + out + read + write):
            excludes, separate = True, total == excl_sep and rsn > 0
        else:
            excludes, separate = False, total == inp + out + rsn and rsn > 0
    else:
        excludes = (provider or "").lower() in EXCLUSIVE_PROVIDERS or read + write > inp
        separate = False
    u = Usage.from_provider(input_tokens=inp + (read + write if excludes else 0),
                            output_tokens=out + (rsn if separate else 0),
                            cache_read_tokens=read, cache_write_tokens=write,
                            reasoning_tokens=rsn or None)
    return u, ("input excludes cache" if excludes else "input includes cache") + (
        ", reasoning apart from output" if separate else "")


def _d(v: Any) -> dict[str, Any]:
    """``v`` when it is an object, else an empty one (foreign files put anything anywhere)."""
    return v if isinstance(v, dict) else {}


def _cost(v: Any) -> Cost | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
        try:
            return Cost(Decimal(str(v)), "USD", "recorded")
        except InvalidOperation:
            return None
    return None


def _uniq(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """By id, the last write winning (a part is rewritten as it streams), in id order (ids ascend)."""
    by_id: dict[str, dict[str, Any]] = {}
    for x in items:
        by_id[str(x.get("id"))] = x
    return sorted(by_id.values(), key=lambda x: str(x.get("id")))



# ---------------------------------------------------------------------------------------------------
# the run
# ---------------------------------------------------------------------------------------------------
def session_run(src: Source, info: dict[str, Any], source: str) -> Run:
    sid = str(info.get("id"))
    t0 = ms_to_ns(info.get("time"), "created") or 0
    run = Run(run_id=stable_id(FORMAT, sid), name=f"opencode {str(info.get('title') or sid)[:40]}",
              tags={"agent": "opencode", "session": sid}, started_wall_ns=t0,
              metadata={"source": FORMAT, "source_file": source, "session_id": sid,
                        "directory": info.get("directory"), "version": info.get("version"),
                        "notes": ["OpenCode stores no system prompt or tool definitions with the messages: call "
                                  "messages are the conversation only; token counts are the provider's"]})
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, t0, ms_to_ns(info.get("time"), "updated"))
    conventions: set[str] = set()
    launchers: dict[str, Span] = {}
    done: set[str] = set()

    def emit(session_id: str, parent: Span, depth: int) -> int:
        """The session's calls and tools under ``parent``; its child sessions under their task tools."""
        done.add(session_id)
        seen: list[Message] = []
        last = ms_to_ns(src.sessions.get(session_id, {}).get("time"), "created") or t0
        side = "sub-agent" if depth else "agent"
        for m in _uniq(src.messages.get(session_id, [])):
            created = ms_to_ns(m.get("time"), "created") or last
            completed = ms_to_ns(m.get("time"), "completed") or created
            parts = _uniq(src.parts.get(str(m["id"]), []))
            if m.get("role") == "user":
                prompt = "\n".join(str(p.get("text") or "") for p in parts if p.get("type") == "text"
                                   and not p.get("synthetic"))
                seen.append({"role": "user", "content": prompt})
                last = created
                continue
            if m.get("role") != "assistant":
                continue
            model, provider = m.get("modelID"), m.get("providerID")
            steps = [p for p in parts if p.get("type") == "step-finish"]
            # old releases: no step parts, the message's own tokens are its one call
            pending = not steps
            step_start = created
            text: list[str] = []
            calls: list[dict[str, Any]] = []
            tools_in_step: list[Span] = []
            for p in (parts if steps else parts + [{"type": "_end"}]):
                kind = p.get("type")
                if kind == "text" and p.get("text"):
                    text.append(str(p["text"]))
                elif kind == "tool":
                    st = _d(p.get("state"))
                    ts, te = ms_to_ns(st.get("time"), "start") or step_start, ms_to_ns(st.get("time"), "end")
                    span = b.span("tool", str(p.get("tool") or "tool"), parent, ts, te or ts,
                                  status="error" if st.get("status") == "error" else "ok",
                                  error=str(st.get("error"))[:2000] if st.get("status") == "error" else None,
                                  attributes={"tool_call_id": p.get("callID"), "arguments": st.get("input"),
                                              "output": st.get("output")})
                    tools_in_step.append(span)
                    meta = _d(st.get("metadata"))
                    if meta.get("sessionId"):
                        launchers[str(meta["sessionId"])] = span
                    calls.append(p)
                elif kind == "step-finish" or kind == "_end" and pending:
                    end = min([s.start_ns for s in tools_in_step] or [completed])
                    tokens = p.get("tokens") if kind == "step-finish" else m.get("tokens")
                    usage, conv = to_usage(tokens, provider)
                    if usage.sources:
                        conventions.add(conv)
                        out: Message = {"role": "assistant", "content": "\n".join(text) or None}
                        if calls:
                            out["tool_calls"] = [{"id": str(c.get("callID") or ""), "type": "function", "function": {
                                "name": str(c.get("tool") or ""), "arguments": json.dumps(
                                    _d(c.get("state")).get("input") or {})}} for c in calls]
                        b.span("llm", f"{side} {model or 'model'}", parent, step_start, max(step_start, end),
                               llm=LLMCall(provider=provider, model=model, messages=list(seen), output=out,
                                           usage=usage, cost=_cost(p.get("cost") if kind == "step-finish"
                                                                   else m.get("cost")),
                                           response_id=str(p.get("id") or m.get("id")),
                                           finish_reason=p.get("reason") or m.get("finish")),
                               attributes={"message_id": m.get("id"), "mode": m.get("mode") or m.get("agent")})
                        seen.append(out)
                        for c in calls:
                            st = _d(c.get("state"))
                            seen.append({"role": "tool", "tool_call_id": str(c.get("callID") or ""),
                                         "content": str(st.get("output") or st.get("error") or "")})
                    step_start = max([s.end_ns or s.start_ns for s in tools_in_step] or [end])
                    text, calls, tools_in_step, pending = [], [], [], False
            last = completed
        for child in src.children(session_id):
            cid = str(child["id"])
            if cid in done or depth >= MAX_CHILD_DEPTH:
                continue
            cparent = launchers.get(cid) or parent
            agent = b.span("agent", f"sub-agent {str(child.get('title') or cid)[:40]}", cparent,
                           ms_to_ns(child.get("time"), "created") or cparent.start_ns, ms_to_ns(child.get("time"), "updated"),
                           tags={"side": "sub-agent"}, attributes={"session_id": cid})
            emit(cid, agent, depth + 1)
            last = max(last, agent.end_ns or agent.start_ns)
        return last

    end = emit(sid, root, 0)
    if root.end_ns is None or root.end_ns < end:
        root.end_ns = end
    run.ended_wall_ns = root.end_ns
    run.metadata["usage_convention"] = sorted(conventions)
    return run
