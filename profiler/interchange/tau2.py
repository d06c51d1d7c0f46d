"""τ²-bench results (``sierra-research/tau2-bench``): one run per simulation, both sides as model calls.

File: ``{"timestamp", "info", "tasks", "simulations"}``; each simulation has ``messages`` with ``role``
(``assistant`` = the agent, ``user`` = the LLM-simulated user, ``tool``), ``content``, ``tool_calls``
(``[{id, name, arguments}]``), ``timestamp`` and, for messages a model produced, ``usage``
(``prompt_tokens``/``completion_tokens``) and ``cost`` (USD). Values may be the string ``"None"``.

What a run looks like:

* a root ``agent`` span for the simulation (its reward, termination reason and recorded costs in
  ``run.metadata``);
* one ``llm`` span per agent message (``tags={"side": "agent"}``) whose input is the agent's system prompt
  (``info.environment_info.policy``) followed by the conversation the agent had seen, rebuilt from the
  messages before it. The agent's tool definitions are not in the file: the calls carry no ``tools`` and
  ``run.metadata["notes"]`` says so, since counted prompt tokens then miss the tool schema;
* one ``llm`` span per simulated-user message (``tags={"side": "user"}``) whose input is the prompt the
  user simulator was sent, rebuilt by :func:`tokprof.profiler.interchange.tau2_user.user_prompt_messages`;
* one ``tool`` span per tool result, named after the tool.

The first message is τ²-bench's fixed greeting (``"Hi! How can I help you today?"``), written by the
orchestrator, not by a model: it is part of the conversation but not a call.

Versions (tau2-bench ``src/tau2/data_model/simulation.py`` and ``message.py`` across releases) are read
generically: a ``Results`` object, a bare list of ``SimulationRun`` objects (or one alone, as the "dir"
format's ``simulations/<id>.json`` files), either inside wrapper objects; leaderboard files without
``tasks`` or ``info``; unknown extra fields anywhere; values written as Python literals or JSON inside
strings (:mod:`tokprof.profiler.interchange.lenient`); full-duplex runs whose ``messages`` is null and whose
messages live in ``ticks``; a ``MultiToolMessage`` read as the tool results it holds; a task's
``initial_state.message_history`` at the start of the messages is conversation, not calls
(:mod:`tokprof.profiler.interchange.tau2_messages`). In domains where the simulated user has tools
(telecom), its tool calls (``requestor: "user"``) and their results are in the user's prompt, never the
agent's. Usage: the message's ``usage`` and the provider response kept in ``raw_data``
are both read in their own dialects and the richest consistent one wins
(:mod:`tokprof.profiler.interchange.usage_dialects`), so cache reads hidden by an input count that excludes
them are recovered, never added twice. A simulation whose task is absent still imports: the agent's calls
in full, the simulated user's calls with their recorded usage but a prompt of the conversation only; what
could not be rebuilt is listed in ``run.metadata["not_rebuilt"]`` (and the import result's ``partial``).

Timing: a message's ``timestamp`` is when it was produced; the call that produced it is taken to start
when the previous message was produced (the simulation's ``start_time`` for the first), or, when the
message records ``generation_time_seconds``, that long before it (never before the previous message). A
message with ``context_truncation`` had its input cut before the call: its rebuilt prompt is marked
incomplete. Files without timestamps get a synthetic 1 ms-per-message timeline (noted in the metadata).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    collect,
    duration_ns,
    nullish,
    parse_time_ns,
    public_params,
    split_model,
    stable_id,
    tool_calls_to_openai,
)
from tokprof.profiler.interchange.lenient import decode, decode_dict, decode_list, find_container, parse_document
from tokprof.profiler.interchange.tau2_messages import flatten, read_message, tick_messages
from tokprof.profiler.interchange.tau2_messages import prefilled as count_prefilled
from tokprof.profiler.interchange.tau2_user import flip_roles, user_prompt_messages
from tokprof.profiler.interchange.usage_dialects import choose, read_usage
from tokprof.profiler.model import Cost, LLMCall, Message, Run, Usage

FORMAT = "tau2"
GREETING = "Hi! How can I help you today?"
SYNTHETIC_STEP_NS = 1_000_000
EXPECTED = 'a τ²-bench results object {"info", "tasks", "simulations"}'

NOTE_NO_TOOL_DEFS = ("agent tool definitions are not recorded by tau2-bench (info.environment_info.tool_defs "
                     "is empty): agent calls carry no tools, so counted prompt tokens miss the tool schema")
NOTE_SYSTEM = ("agent system prompt = info.environment_info.policy; the agent implementation may have "
               "wrapped it in its own instructions")
NOTE_NO_TIMES = "messages carry no timestamps: span times are a synthetic 1 ms-per-message timeline"
# Domains where the simulated user has tools (telecom): tau2 sends the user model its tool schemas and the
# tools variant of the guidelines (user_simulator.py: get_global_user_sim_guidelines(use_tools=True)), but
# older run.py get_info recorded the plain variant and no schema. Recorded usage is unaffected.
NOTE_USER_TOOLS = ("the simulated user calls tools: its tool definitions are not recorded (and older tau2 "
                   "releases record the no-tools guidelines), so counted user prompt tokens miss the tool schema")


def is_greeting(index: int, m: dict[str, Any]) -> bool:
    """The orchestrator's canned first agent message (not a model call)."""
    return (index == 0 and m.get("role") == "assistant" and nullish(m.get("usage")) is None
            and not nullish(m.get("tool_calls")) and m.get("content") == GREETING)


def is_model_call(index: int, m: dict[str, Any]) -> bool:
    """Every agent and simulated-user message is a model call, except the greeting."""
    return m.get("role") in ("assistant", "user") and not is_greeting(index, m)


def _is_simulation(v: Any) -> bool:
    return isinstance(v, dict) and ("messages" in v or "ticks" in v) and ("task_id" in v or "termination_reason" in v)


def _is_results(v: Any) -> bool:
    return isinstance(v, dict) and "simulations" in v and decode_list(v["simulations"]) is not None


def _is_sim_list(v: Any) -> bool:
    # Any simulation among the first items: the others become per-record errors, not a rejected file.
    return isinstance(v, list) and any(_is_simulation(decode(x)) for x in v[:50])


def unwrap(data: Any) -> tuple[dict[str, Any], list[dict[str, Any]], list[Any]] | None:
    """(info, tasks, simulations) from any known τ²-bench shape, or ``None`` when there is none."""
    found = find_container(data, lambda v: _is_results(v) or _is_sim_list(v) or _is_simulation(v))
    if found is None:
        return None
    if _is_results(found):
        info = decode_dict(found.get("info")) or {}
        tasks = [t for t in (decode_list(found.get("tasks")) or []) if isinstance(decode(t), dict)]
        return info, [decode(t) for t in tasks], decode_list(found["simulations"]) or []
    if _is_simulation(found):
        return {}, [], [found]
    return {}, [], list(found)


def import_data(data: Any, path: Path | None = None) -> ImportResult:
    """Runs from an already-parsed τ²-bench results object (any version's shape, see the module doc)."""
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    shape = unwrap(data)
    if shape is None:
        raise InterchangeError(path, None, f"no 'simulations' list or simulation objects; expected {EXPECTED}")
    info, task_list, sims = shape
    tasks = {str(nullish(t.get("id"))): t for t in task_list}
    source = Path(path).name if path is not None else "<data>"
    items = ((f"simulation {i}", (i, sim)) for i, sim in enumerate(sims))
    return collect(result, items, lambda item: _simulation_run(info, tasks, item[0], item[1], source))


def import_text(text: str, path: Path | None = None) -> ImportResult:
    try:
        data = parse_document(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InterchangeError(path, f"line {line}" if line else None,
                               f"malformed JSON ({getattr(exc, 'msg', exc)}); expected {EXPECTED}") from None
    return import_data(data, path)


# ---------------------------------------------------------------------------------------------------
def _agent_view(m: dict[str, Any]) -> Message | None:
    """The message as the agent's LLM saw it (OpenAI format), or ``None`` when the agent never sees it."""
    role = m.get("role")
    content = nullish(m.get("content"))
    calls = nullish(m.get("tool_calls"))
    if role == "assistant":
        msg: Message = {"role": "assistant", "content": content}
        if calls:
            msg["tool_calls"] = tool_calls_to_openai(calls)
        return msg
    if role == "user":
        # A simulated user's own tool calls go to the environment, not to the agent.
        return None if calls else {"role": "user", "content": content if content is not None else ""}
    if role == "tool":
        if m.get("requestor") == "user":
            return None
        return {"role": "tool", "tool_call_id": str(m.get("id") or ""), "content": content if content is not None else ""}
    if role == "system":
        return {"role": "system", "content": content if content is not None else ""}
    return None


def _user_output(m: dict[str, Any]) -> Message:
    """The simulated user's reply as its own model returned it (an assistant message)."""
    msg: Message = {"role": "assistant", "content": nullish(m.get("content"))}
    calls = nullish(m.get("tool_calls"))
    if calls:
        msg["tool_calls"] = tool_calls_to_openai(calls)
    return msg


def _usage(m: dict[str, Any], notes: list[str]) -> Usage:
    """The call's usage: the richest of ``usage`` and ``raw_data``'s usage that agrees with ``usage``."""
    raw = decode_dict(m.get("raw_data"))
    best, disagreements = choose([read_usage(decode_dict(m.get("usage"))), read_usage(raw)])
    for d in disagreements:
        if d not in notes:
            notes.append(d)
    return best.to_usage() if best is not None else Usage()


def _cost(m: dict[str, Any], usage: Usage) -> Cost | None:
    cost = nullish(m.get("cost"))
    if cost is None:
        return None
    try:
        amount = Decimal(str(cost))
    except (InvalidOperation, ValueError):
        raise InterchangeError(None, None, f"cost {cost!r} is not a number") from None
    # Agents whose harness did not track usage write cost 0.0: that is "unknown", not "free".
    if amount == 0 and not usage.sources:
        return None
    return Cost(amount, "USD", "recorded")


def _raw_fields(m: dict[str, Any]) -> tuple[str | None, str | None]:
    raw = decode_dict(m.get("raw_data"))
    if not isinstance(raw, dict):
        return None, None
    finish = raw.get("stop_reason") or raw.get("finish_reason")
    return (str(raw["id"]) if raw.get("id") else None), (str(finish) if finish else None)


def _simulation_run(info: dict[str, Any], tasks: dict[str, dict[str, Any]], index: int, sim: Any,
                    source: str) -> Run:
    sim = decode(sim)
    if not isinstance(sim, dict):
        raise InterchangeError(None, None, "expected a simulation object with a 'messages' list")
    raw_messages = decode_list(sim.get("messages"))
    if raw_messages is None and sim.get("ticks") is not None:
        raw_messages = tick_messages(sim.get("ticks"))
    if raw_messages is None:
        raise InterchangeError(None, None, "expected a simulation object with a 'messages' list (or 'ticks')")
    messages = [read_message(x, index, i) for i, x in enumerate(flatten(raw_messages))]
    task_id = str(nullish(sim.get("task_id")))
    task = tasks.get(task_id)
    not_rebuilt: list[str] = []
    if task is None:
        not_rebuilt.append(f"simulated user's system prompt (task {task_id!r} and its user_scenario are not in "
                           "the file): user calls keep their recorded usage, their prompt holds the "
                           "conversation only")
    prefilled = count_prefilled(task, messages)
    agent_info = decode_dict(info.get("agent_info")) or {}
    user_info = decode_dict(info.get("user_info")) or {}
    env = decode_dict(info.get("environment_info")) or {}
    policy = nullish(sim.get("policy")) or nullish(env.get("policy"))
    if not policy:
        not_rebuilt.append("agent system prompt (no info.environment_info.policy)")
    if not info:
        not_rebuilt.append("models and parameters (no 'info' block)")
    agent_provider, agent_model = split_model(agent_info.get("llm"))
    user_provider, user_model = split_model(user_info.get("llm"))
    agent_params = public_params(decode_dict(agent_info.get("llm_args")))
    user_params = public_params(decode_dict(user_info.get("llm_args")))
    trial = nullish(sim.get("trial"))

    notes = [NOTE_NO_TOOL_DEFS, NOTE_SYSTEM]
    start = parse_time_ns(sim.get("start_time"))
    have_times = any(parse_time_ns(m.get("timestamp")) is not None for m in messages[:3])
    if not have_times:
        notes.append(NOTE_NO_TIMES)
    if prefilled:
        notes.append(f"the first {prefilled} messages are the task's initial message_history: conversation, "
                     "not calls")
    if any((m.get("role") == "user" and m.get("tool_calls"))
           or (m.get("role") == "tool" and m.get("requestor") == "user") for m in messages):
        notes.append(NOTE_USER_TOOLS)
    base = start if start is not None else (parse_time_ns(sim.get("timestamp")) or 0)

    reward_info = decode_dict(sim.get("reward_info"))
    run = Run(
        run_id=stable_id(FORMAT, source, index, nullish(sim.get("id"))),
        name=f"tau2 {env.get('domain_name') or ''} task {task_id} trial {trial}".replace("  ", " "),
        tags={"task": task_id, "trial": str(trial)},
        started_wall_ns=base,
        metadata={
            "source": FORMAT,
            "source_file": source,
            "record": index,
            "simulation_id": nullish(sim.get("id")),
            "domain": env.get("domain_name"),
            "agent": {"implementation": agent_info.get("implementation"), "llm": agent_info.get("llm")},
            "user": {"implementation": user_info.get("implementation"), "llm": user_info.get("llm")},
            "reward": reward_info.get("reward") if isinstance(reward_info, dict) else None,
            "termination_reason": nullish(sim.get("termination_reason")),
            "agent_cost": nullish(sim.get("agent_cost")),
            "user_cost": nullish(sim.get("user_cost")),
            "notes": notes,
            "not_rebuilt": not_rebuilt,
        },
    )
    b = RunBuilder(run)
    end = parse_time_ns(sim.get("end_time"))
    root = b.span("agent", run.name, None, base, end)

    system: list[Message] = [{"role": "system", "content": policy}] if policy else []
    agent_seen: list[Message] = []  # the agent's conversation so far; messages shared between spans
    tool_names: dict[str, tuple[str, Any]] = {}
    prev = base
    last = base
    for i, m in enumerate(messages):
        ts = parse_time_ns(m.get("timestamp")) if have_times else None
        t_end = ts if ts is not None else base + (i + 1) * SYNTHETIC_STEP_NS
        t_start = prev if have_times else t_end - SYNTHETIC_STEP_NS
        gen = duration_ns(m.get("generation_time_seconds"))
        if have_times and ts is not None and gen is not None:
            t_start = max(prev, ts - gen)  # the recorded generation time, within the gap since the last message
        role = m.get("role")
        view = _agent_view(m)
        for call in m.get("tool_calls") or []:
            tool_names[str(call.get("id") or "")] = (call.get("name") or "tool", call.get("arguments"))
        if is_model_call(i, m) and i >= prefilled:
            usage = _usage(m, notes)
            response_id, finish = _raw_fields(m)
            # Without 'info' the model is unknown, unless the provider's raw response names it.
            raw_provider, raw_model = split_model((decode_dict(m.get("raw_data")) or {}).get("model"))
            if role == "assistant":
                call = LLMCall(provider=agent_provider or raw_provider, model=agent_model or raw_model,
                               params=agent_params,
                               messages=[*system, *agent_seen], output=view, usage=usage, cost=_cost(m, usage),
                               response_id=response_id, finish_reason=finish)
                name, side = f"agent {call.model or 'model'}", "agent"
            else:
                prompt = (user_prompt_messages(info, task, messages[:i]) if task is not None
                          else flip_roles(messages[:i]))
                call = LLMCall(provider=user_provider or raw_provider, model=user_model or raw_model,
                               params=user_params,
                               messages=prompt, output=_user_output(m),
                               usage=usage, cost=_cost(m, usage), response_id=response_id, finish_reason=finish)
                name, side = f"user {call.model or 'model'}", "user"
            attrs: dict[str, Any] = {"turn_idx": nullish(m.get("turn_idx"))}
            if side == "user" and task is None:
                attrs["prompt_incomplete"] = True
            truncation = decode_dict(m.get("context_truncation"))
            if truncation:
                # tau2 cut the input to max_input_tokens before this call: the rebuilt prompt is the whole
                # conversation, more than was sent (recorded usage, when present, is what was sent)
                attrs["prompt_incomplete"] = True
                attrs["context_truncation"] = truncation
                note = (f"message {i}: the input was truncated before the call (context_truncation): the "
                        "rebuilt prompt is the whole conversation, not what was sent")
                not_rebuilt.append(note)
            b.span("llm", name, root, t_start, t_end, tags={"side": side}, llm=call, attributes=attrs)
        elif role == "tool":
            call_id = str(m.get("id") or "")
            tool, args = tool_names.get(call_id, ("tool", None))
            failed = bool(nullish(m.get("error")))
            content = nullish(m.get("content"))
            b.span("tool", tool, root, t_start, t_end, status="error" if failed else "ok",
                   error=content if failed else None,
                   tags={"side": "user" if m.get("requestor") == "user" else "agent"},
                   attributes={"tool_call_id": call_id, "arguments": args, "output": content})
        elif role not in ("system", "assistant", "user"):
            note = f"message {i} has role {role!r} (not assistant/user/tool/system): kept out of the calls"
            if note not in not_rebuilt:
                not_rebuilt.append(note)
        if view is not None:
            agent_seen.append(view)
        prev = t_end
        last = max(last, t_end)
    if root.end_ns is None or root.end_ns < last:
        root.end_ns = last
    run.ended_wall_ns = root.end_ns
    return run
