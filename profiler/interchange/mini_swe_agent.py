"""mini-SWE-agent trajectories (``*.traj.json``): one run per file, one model call per model message.

Read from mini-swe-agent's documented output (``docs/usage/output_files.md``, ``docs/advanced/v2_migration.md``
and ``src/minisweagent/models/litellm_model.py`` in https://github.com/SWE-agent/mini-swe-agent):
``{"info": {"model_stats": {"instance_cost", "api_calls"}, "config": {"model": {"model_name"}, ...},
"mini_version", "exit_status", "submission"}, "messages": [...], "trajectory_format": "mini-swe-agent-1[.1]"}``.

* ``messages`` is the OpenAI-style conversation plus an ``extra`` field. A message a model produced carries
  ``extra.response`` (LiteLLM's ``model_dump()`` of the response, with its ``usage``) and, from v2,
  ``extra.cost`` (LiteLLM's ``completion_cost``) and ``extra.timestamp`` (epoch seconds, when the answer
  arrived). Each such message, and any other ``assistant`` message (counted locally), is one call
  whose input is the messages before it with ``extra`` removed, as mini-swe-agent sends them.
* The provider usage in ``extra.response.usage`` is read in its dialect
  (:mod:`tokprof.profiler.interchange.usage_dialects`); a call without it is counted locally. ``extra.cost``
  above zero is kept as the call's recorded cost.
* v2 with a Responses API model (``litellm_response``) stores the response object itself as the model message
  (``object: "response"``, its ``output`` items and ``usage``); tool results are bare ``function_call_output``
  items. Both are turned into chat messages for the later calls' inputs.
* v2 ends with a ``{"role": "exit"}`` message (exit status and submission): not part of any prompt.
* Observation messages (``role: tool``; ``user`` messages with ``extra.returncode``; in v1, the ``user``
  message right after a call whose answer held one action block) become ``tool`` spans named after the
  command of the action they answer.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    collect,
    parse_time_ns,
    split_model,
    stable_id,
)
from tokprof.profiler.interchange.codex import OUTPUT_ITEMS, item_messages
from tokprof.profiler.interchange.lenient import decode, decode_dict, decode_list, find_container, parse_document
from tokprof.profiler.interchange.usage_dialects import read_usage
from tokprof.profiler.model import Cost, LLMCall, Message, Run, Usage

FORMAT = "mini_swe_agent"
STEP_NS = 1_000_000
EXPECTED = 'a mini-swe-agent trajectory {"info": {...}, "messages": [...], "trajectory_format": "mini-swe-agent-1"}'
_CHAT_ROLES = ("system", "user", "assistant", "tool", "developer")


def looks_like(data: Any) -> bool:
    """A parsed document (or wrapper level) that is a mini-swe-agent trajectory."""
    if not isinstance(data, dict) or decode_list(data.get("messages")) is None:
        return False
    fmt = str(data.get("trajectory_format") or "")
    info = decode_dict(data.get("info")) or {}
    return fmt.startswith("mini-swe-agent") or "mini_version" in info


def sniff(head: str) -> bool:
    """The first bytes of a file that is one (``trajectory_format`` is written last, ``mini_version`` early)."""
    return ('"trajectory_format": "mini-swe-agent' in head or '"trajectory_format":"mini-swe-agent' in head
            or ('"mini_version"' in head and '"messages"' in head) or ('"mini_version"' in head
                                                                      and '"model_stats"' in head))


def import_data(data: Any, path: Path | None = None, model: str | None = None) -> ImportResult:
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    found = find_container(data, looks_like)
    if found is None:
        raise InterchangeError(path, None, f"no mini-swe-agent 'messages' list; expected {EXPECTED}")
    source = Path(path).name if path is not None else "<data>"
    return collect(result, [("trajectory", found)], lambda d: trajectory_run(d, source, model))


def import_text(text: str, path: Path | None = None, model: str | None = None) -> ImportResult:
    try:
        data = parse_document(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InterchangeError(path, f"line {line}" if line else None,
                               f"malformed JSON ({getattr(exc, 'msg', exc)}); expected {EXPECTED}") from None
    return import_data(data, path, model)


def _extra(m: dict[str, Any]) -> dict[str, Any]:
    return decode_dict(m.get("extra")) or {}


def _as_sent(m: dict[str, Any]) -> Message:
    """The message as mini-swe-agent sends it: without ``extra`` (its own bookkeeping)."""
    out: Message = {k: v for k, v in m.items() if k != "extra"}
    if isinstance(out.get("tool_calls"), str):
        out["tool_calls"] = decode_list(out["tool_calls"])
    for key in ("tool_calls", "function_call"):  # LiteLLM's model_dump writes them as null
        if out.get(key) is None:
            out.pop(key, None)
    return out


def _stamp(value: Any) -> int | None:
    """``extra.timestamp`` (epoch seconds) in ns; an unreadable or out-of-range one is treated as absent."""
    if isinstance(value, bool):
        return None
    try:
        return parse_time_ns(value)
    except ValueError:
        return None


def _is_response_object(m: dict[str, Any]) -> bool:
    """A Responses API model message (v2 ``litellm_response`` models store ``response.model_dump()`` itself,
    ``{"object": "response", "output": [items], "usage": {...}}``; src/minisweagent/models/
    litellm_response_model.py)."""
    return m.get("object") == "response" and isinstance(m.get("output"), list)


def _answer(m: dict[str, Any]) -> list[Message]:
    """A Responses API answer's output items as the chat messages a later request re-sends (reasoning items,
    which carry no chat content, are left out)."""
    out: list[Message] = []
    for item in m.get("output") or []:
        if isinstance(item, dict):
            out.extend(item_messages({k: v for k, v in item.items() if k != "extra"}))
    return out


def _recorded_cost(extra: dict[str, Any]) -> Cost | None:
    try:
        amount = Decimal(str(extra.get("cost")))
    except (InvalidOperation, ValueError):
        return None
    # mini-swe-agent writes 0.0 when LiteLLM could not price the model (cost_tracking: ignore_errors):
    # unknown, not free.
    return Cost(amount, "USD", "recorded") if amount.is_finite() and amount > 0 else None


_ACTION_BLOCK = re.compile(r"```(?:bash|mswea_bash_command)\s*\n(.*?)\n```", re.DOTALL)
"""The text-based action of v1 (```` ```bash ````) and v2 (```` ```mswea_bash_command ````) default configs."""


def _command(m: dict[str, Any], extra: dict[str, Any]) -> str:
    actions = decode_list(extra.get("actions")) or []
    first = actions[0] if actions and isinstance(actions[0], dict) else {}
    if first.get("command"):
        return str(first["command"]).strip()
    content = m.get("content")
    found = _ACTION_BLOCK.findall(content if isinstance(content, str) else "")
    return found[0].strip() if len(found) == 1 else ""


def trajectory_run(data: dict[str, Any], source: str, model: str | None = None) -> Run:
    raw = decode_list(data.get("messages")) or []
    msgs: list[dict[str, Any]] = []
    for i, m in enumerate(raw):
        m = decode(m)
        if not isinstance(m, dict):
            raise InterchangeError(None, f"messages[{i}]", "expected a message object")
        msgs.append(m)
    info = decode_dict(data.get("info")) or {}
    config = decode_dict(info.get("config")) or {}
    cfg_model = (decode_dict(config.get("model")) or {}).get("model_name")
    notes: list[str] = []
    name = Path(source).name.split(".traj")[0]
    run = Run(run_id=stable_id(FORMAT, source), name=f"mini-swe-agent {name}", started_wall_ns=0,
              metadata={"source": FORMAT, "source_file": source, "exit_status": info.get("exit_status"),
                        "model_stats": info.get("model_stats"), "mini_version": info.get("mini_version"),
                        "trajectory_format": data.get("trajectory_format"), "notes": notes})
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, 0, None)
    seen: list[Message] = []
    t = prev_t = 0
    n_calls = n_usage = 0
    command = ""
    timed = after_call = False
    for m in msgs:
        extra = _extra(m)
        role = m.get("role")
        api_response = _is_response_object(m)
        # an assistant message is a call even without extra.response (then counted locally): nothing dropped
        is_call = api_response or isinstance(extra.get("response"), dict) or role == "assistant"
        stamp = _stamp(extra.get("timestamp"))
        if is_call:
            raw_response = m if api_response else extra.get("response")
            response: dict[str, Any] = raw_response if isinstance(raw_response, dict) else {}
            reading = read_usage(response.get("usage"))
            usage = reading.to_usage() if reading is not None else Usage()
            n_usage += reading is not None
            provider, model_name = split_model(model or response.get("model") or cfg_model)
            end = stamp if stamp is not None else t + STEP_NS
            start = prev_t if stamp is not None and prev_t else end - STEP_NS
            timed = timed or stamp is not None
            choices = response.get("choices") if isinstance(response.get("choices"), list) else []
            finish = choices[0].get("finish_reason") if choices and isinstance(choices[0], dict) else None
            answer = _answer(m) if api_response else [_as_sent(m)]
            b.span("llm", f"agent {model_name or 'model'}", root, start, end,
                   llm=LLMCall(provider=provider, model=model_name, messages=list(seen),
                               output=answer[-1] if answer else None,
                               usage=usage, cost=_recorded_cost(extra),
                               response_id=response.get("id"), finish_reason=finish))
            command = _command(m, extra)
            n_calls += 1
            t = prev_t = end
            after_call = True
            if api_response:
                seen.extend(answer)
            elif role in _CHAT_ROLES or role is None:
                seen.append(_as_sent(m))
            continue
        elif role == "tool" or m.get("type") in OUTPUT_ITEMS or \
                (role == "user" and ("returncode" in extra or (after_call and command))):
            end = stamp if stamp is not None else t + STEP_NS
            b.span("tool", command.split()[0] if command else "action", root, min(t, end), end,
                   attributes={"action": command, "output": extra.get("raw_output", m.get("content")),
                               "returncode": extra.get("returncode")})
            t = prev_t = end
        after_call = False
        if role in _CHAT_ROLES:
            seen.append(_as_sent(m))
        elif role is None and m.get("type"):
            seen.extend(item_messages({k: v for k, v in m.items() if k != "extra"}))  # a bare Responses item
    if n_calls == 0:
        raise InterchangeError(None, None, "no model call in 'messages' (no message with extra.response and no "
                                           "assistant message)")
    if n_usage < n_calls:
        notes.append(f"{n_calls - n_usage} of {n_calls} calls have no extra.response.usage: counted locally")
    if not timed:
        notes.append("no extra.timestamp: model-call times are a synthetic 1 ms each")
    stats = decode_dict(info.get("model_stats")) or {}
    if stats.get("api_calls") not in (None, n_calls):
        notes.append(f"info.model_stats.api_calls is {stats.get('api_calls')} but the messages hold {n_calls} "
                     "model calls (retries or a truncated file)")
    first = min((s.start_ns for s in run.spans if s is not root), default=0)
    root.start_ns = root.wall_start_ns = first if timed else 0
    root.end_ns = t
    run.started_wall_ns = root.start_ns
    run.ended_wall_ns = t
    return run
