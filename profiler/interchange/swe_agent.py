"""SWE-agent trajectories (``.traj``): one run per file, one model call per assistant message.

File: ``{"trajectory": [{action, observation, thought, execution_time, ...}], "history": [{role, content,
tool_calls?, tool_call_ids?, ...}], "info": {model_stats, exit_status, ...}, "replay_config"?}``.

* Each assistant message in ``history`` is a call whose input is the history before it (SWE-agent's own
  fields ``agent``, ``thought``, ``action``, ``message_type`` are dropped; ``tool_call_ids`` becomes
  ``tool_call_id``; a message-level ``cache_control`` is kept), so the messages are what an OpenAI-style API
  received. A demonstration's turns put in the history (``put_demos_in_history``, ``is_demo``) are prompt,
  not calls.
* A RetryAgent file (``{"attempts": [trajectory, ...]}``, the chosen attempt also copied to the top level)
  imports every attempt, each an ``agent`` span, since each was run and paid; the copy is not counted twice.
* Each ``trajectory`` step (the i-th step follows the i-th assistant message) is a ``tool`` span named
  after the command, lasting its ``execution_time`` when recorded.
* From SWE-agent 1.1.0 each ``trajectory`` step keeps ``query``, "all messages that were shown to the LM"
  (https://swe-agent.com/latest/usage/trajectories/): after the history processors (e.g. old observations
  elided), so when it is a message list it is the step's call input instead of the ``history`` prefix.
  (The older ``messages`` field was only "approximately" the input, so it is not used.)
* ``info.model_stats`` holds usage only as whole-run totals (zero in replayed demonstrations), so calls
  carry no provider usage and are counted locally; non-zero totals are quoted in the run's notes and kept,
  each labelled with what it is, in ``run.metadata["recorded_totals"]`` (``tokens_sent`` is litellm's local
  count, ``instance_cost`` litellm's price of the provider's usage): a run-level check, never per-call truth.
  The model is ``replay_config.agent.model.name`` unless that is a replay placeholder; pass ``model=`` to say
  which model the messages were written for.
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
    duration_ns,
    split_model,
    stable_id,
)
from tokprof.profiler.interchange.lenient import decode, decode_dict, decode_list, find_container, parse_document
from tokprof.profiler.model import LLMCall, Message, Run, Span

FORMAT = "swe_agent"
STEP_NS = 1_000_000
EXPECTED = 'a SWE-agent trajectory {"trajectory": [...], "history": [...], "info": {...}}'
_PLACEHOLDER_MODELS = {"replay", "instant_empty_submit", "human", "human_thought"}


def import_data(data: Any, path: Path | None = None, model: str | None = None) -> ImportResult:
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    # The trajectory object, possibly inside wrappers; values possibly JSON/Python literals in strings.
    data = find_container(data, lambda v: _is_trajectory(v) or _attempts(v) is not None)
    if data is None:
        raise InterchangeError(path, None, f"no 'history' list; expected {EXPECTED}")
    data = {**data, "info": decode_dict(data.get("info"))}
    source = Path(path).name if path is not None else "<data>"
    return collect(result, [("trajectory", data)], lambda d: trajectory_run(d, source, model))


def import_text(text: str, path: Path | None = None, model: str | None = None) -> ImportResult:
    try:
        data = parse_document(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InterchangeError(path, f"line {line}" if line else None,
                               f"malformed JSON ({getattr(exc, 'msg', exc)}); expected {EXPECTED}") from None
    return import_data(data, path, model)


def _recorded_model(data: dict[str, Any]) -> str | None:
    cfg = data.get("replay_config")
    if isinstance(cfg, str):
        try:
            cfg = json.loads(cfg)
        except ValueError:
            return None
    mcfg = (((cfg or {}).get("agent") or {}).get("model") or {}) if isinstance(cfg, dict) else {}
    # 1.x writes agent.model.name; 0.x wrote agent.model.model_name (e.g. "gpt4", "claude-2")
    name = (mcfg.get("name") or mcfg.get("model_name")) if isinstance(mcfg, dict) else None
    return None if not name or name in _PLACEHOLDER_MODELS else str(name)


def to_openai(m: Any, i: int) -> Message:
    """A history entry as an OpenAI chat message."""
    m = decode(m)
    if isinstance(m, dict) and isinstance(m.get("tool_calls"), str):
        m = {**m, "tool_calls": decode_list(m["tool_calls"])}
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
        raise InterchangeError(None, f"history[{i}]", "expected a chat message with role system/user/assistant/tool")
    out: Message = {"role": m["role"], "content": m.get("content")}
    if m.get("tool_calls"):
        out["tool_calls"] = m["tool_calls"]
    if m["role"] == "tool":
        ids = m.get("tool_call_ids") or ([m["tool_call_id"]] if m.get("tool_call_id") else [])
        out["tool_call_id"] = ids[0] if ids else ""
    if m.get("name"):
        out["name"] = m["name"]
    if isinstance(m.get("cache_control"), dict):
        # SWE-agent sends a message-level marker (its cache_control history processor puts a tool message's
        # there: sweagent/agent/history_processors.py, models.py _history_to_messages): a cache breakpoint
        out["cache_control"] = m["cache_control"]
    return out


def _is_trajectory(v: Any) -> bool:
    return isinstance(v, dict) and decode_list(v.get("history")) is not None


def _attempts(data: Any) -> list[dict[str, Any]] | None:
    """A RetryAgent file's attempts (SWE-agent 1.x ``RetryAgent.get_trajectory_data``: ``{"attempts": [...]}``,
    the chosen attempt also copied to the top level with ``info.best_attempt_idx``): each was run and paid."""
    raw = decode_list(data.get("attempts")) if isinstance(data, dict) else None
    found = [decode(a) for a in raw or []]
    return found if found and all(_is_trajectory(a) for a in found) else None


def trajectory_run(data: dict[str, Any], source: str, model: str | None = None) -> Run:
    attempts = _attempts(data)
    raw_info = data.get("info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    provider, model_name = split_model(model or _recorded_model(data))
    notes = ["SWE-agent trajectories record usage only as run totals: token counts are computed locally",
             "no per-call timestamps: model-call times are a synthetic 1 ms each; tool spans last their "
             "recorded execution_time"]
    if model_name is None:
        notes.append("model not recorded (replayed demonstration): counts use a generic tokenizer unless "
                     "imported with a model")
    name = Path(source).name.split(".traj")[0]
    run = Run(run_id=stable_id(FORMAT, source), name=f"swe-agent {name}", started_wall_ns=0,
              metadata={"source": FORMAT, "source_file": source, "exit_status": info.get("exit_status"),
                        "model_stats": info.get("model_stats"), "notes": notes})
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, 0, None)
    t = 0
    if attempts is None:
        t, calls, queried = _add_attempt(b, root, data, t, provider, model_name)
    else:
        calls = queried = 0
        for k, attempt in enumerate(attempts):
            a_provider, a_model = split_model(model or _recorded_model(attempt) or _recorded_model(data))
            span = b.span("agent", f"attempt {k}", root, t, None,
                          attributes={"exit_status": (decode_dict(attempt.get("info")) or {}).get("exit_status")})
            t, n, q = _add_attempt(b, span, attempt, t, a_provider, a_model)
            span.end_ns = t
            calls, queried = calls + n, queried + q
        notes.append(f"{len(attempts)} attempts (RetryAgent), every one imported: each was run and paid; the "
                     f"chosen one (info.best_attempt_idx {info.get('best_attempt_idx')}) is not counted twice")
        if info.get("rloop_model_stats"):
            notes.append("the reviewer/chooser model's calls are not in the file: only its totals "
                         f"(info.rloop_model_stats {info.get('rloop_model_stats')})")
    if queried:
        notes.append(f"{queried} of {calls} calls take their input from the step's 'query' (the messages "
                     "the model was shown, after history processing)")
    totals = _totals_note(info.get("model_stats"), calls)
    if totals:
        notes.append(totals)
        run.metadata["recorded_totals"] = recorded_totals(info.get("model_stats"))
    root.end_ns = t
    run.ended_wall_ns = t
    return run


def _add_attempt(b: RunBuilder, parent: Span, data: dict[str, Any], t: int, provider: str | None,
                 model_name: str | None) -> tuple[int, int, int]:
    """One trajectory's model calls and tool steps under ``parent`` from time ``t``; returns the end time,
    the number of calls and how many of them took their input from ``query``."""
    raw = [decode(m) for m in decode_list(data.get("history")) or []]
    history = [to_openai(m, i) for i, m in enumerate(raw)]
    steps = [decode(x) for x in decode_list(data.get("trajectory")) or []]
    n_assistant = queried = 0
    for i, m in enumerate(history):
        # put_demos_in_history: a demonstration's own turns are history entries with is_demo, shown to the
        # model as examples (sweagent/agent/agents.py _add_demonstration_to_history): prompt, not calls
        if m["role"] != "assistant" or raw[i].get("is_demo") is True:
            continue
        step_query = _query(steps[n_assistant]) if n_assistant < len(steps) else None
        queried += step_query is not None
        b.span("llm", f"agent {model_name or 'model'}", parent, t, t + STEP_NS,
               llm=LLMCall(provider=provider, model=model_name,
                           messages=step_query if step_query is not None else history[:i], output=m))
        t += STEP_NS
        if n_assistant < len(steps) and isinstance(steps[n_assistant], dict):
            step = steps[n_assistant]
            action = str(step.get("action") or "").strip()
            dur = duration_ns(step.get("execution_time"))  # a number, or a numeric string in some files
            dur = STEP_NS if dur is None else dur
            b.span("tool", action.split()[0] if action else "action", parent, t, t + dur,
                   attributes={"action": action, "output": step.get("observation")})
            t += dur
        n_assistant += 1
    return t, n_assistant, queried


def _query(step: Any) -> list[Message] | None:
    """The step's ``query`` as chat messages, or ``None`` when absent or not a clean message list."""
    raw = decode_list(step.get("query")) if isinstance(step, dict) else None
    if not raw:
        return None
    try:
        return [to_openai(m, i) for i, m in enumerate(raw)]
    except InterchangeError:
        return None


def _totals_note(stats: Any, n_calls: int) -> str | None:
    """SWE-agent's own run totals, quoted with what each is: they cannot be split per call, so they never
    replace the calls' counts. ``tokens_sent``/``tokens_received`` are litellm's *local* count of each request
    and answer text (``litellm.utils.token_counter`` in ``LiteLLMModel._single_query``), not provider usage;
    ``instance_cost`` is litellm's ``completion_cost`` of each response, i.e. priced from the provider's usage
    (sweagent/agent/models.py, ``_update_stats``)."""
    stats = decode_dict(stats) or {}
    keys = ("instance_cost", "tokens_sent", "tokens_received", "api_calls")
    if not any(isinstance(stats.get(k), (int, float)) and stats.get(k) for k in keys):
        return None
    said = ", ".join(f"{k} {stats[k]}" for k in keys if stats.get(k) is not None)
    note = (f"info.model_stats (SWE-agent's run totals, not split per call): {said}; tokens_sent/received are "
            "litellm's local count, not provider usage; instance_cost is litellm's price of the provider's usage")
    if isinstance(stats.get("api_calls"), int) and stats["api_calls"] != n_calls:
        note += f"; the history holds {n_calls} model calls"
    return note


def recorded_totals(stats: Any) -> dict[str, Any] | None:
    """``info.model_stats`` as labelled run-level figures (``run.metadata["recorded_totals"]``): a check on the
    imported run, never per-call usage."""
    stats = decode_dict(stats) or {}
    basis = {"instance_cost": "provider usage priced by litellm (USD)",
             "tokens_sent": "litellm local count", "tokens_received": "litellm local count",
             "api_calls": "SWE-agent count"}
    out = {k: {"value": stats[k], "basis": b} for k, b in basis.items()
           if isinstance(stats.get(k), (int, float)) and not isinstance(stats.get(k), bool) and stats[k] > 0}
    return out or None
