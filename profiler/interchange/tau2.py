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

Timing: a message's ``timestamp`` is when it was produced; the call that produced it is taken to start
when the previous message was produced (the simulation's ``start_time`` for the first). Files without
timestamps get a synthetic 1 ms-per-message timeline (noted in the metadata).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    as_int,
    collect,
    nullish,
    parse_json,
    parse_time_ns,
    public_params,
    split_model,
    stable_id,
    tool_calls_to_openai,
)
from tokprof.profiler.interchange.tau2_user import user_prompt_messages
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


def is_greeting(index: int, m: dict[str, Any]) -> bool:
    """The orchestrator's canned first agent message (not a model call)."""
    return (index == 0 and m.get("role") == "assistant" and nullish(m.get("usage")) is None
            and not nullish(m.get("tool_calls")) and m.get("content") == GREETING)


def is_model_call(index: int, m: dict[str, Any]) -> bool:
    """Every agent and simulated-user message is a model call, except the greeting."""
    return m.get("role") in ("assistant", "user") and not is_greeting(index, m)


def import_data(data: Any, path: Path | None = None) -> ImportResult:
    """Runs from an already-parsed τ²-bench results object."""
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    if not isinstance(data, dict) or not isinstance(data.get("simulations"), list):
        raise InterchangeError(path, None, f"no 'simulations' list; expected {EXPECTED}")
    info = data.get("info") or {}
    tasks = {str(t.get("id")): t for t in data.get("tasks") or [] if isinstance(t, dict)}
    source = Path(path).name if path is not None else "<data>"
    items = ((f"simulation {i}", (i, sim)) for i, sim in enumerate(data["simulations"]))
    return collect(result, items, lambda item: _simulation_run(info, tasks, item[0], item[1], source))


def import_text(text: str, path: Path | None = None) -> ImportResult:
    return import_data(parse_json(path, text, EXPECTED), path)


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
    raise InterchangeError(None, None, f"message role {role!r}; expected 'assistant', 'user' or 'tool'")


def _user_output(m: dict[str, Any]) -> Message:
    """The simulated user's reply as its own model returned it (an assistant message)."""
    msg: Message = {"role": "assistant", "content": nullish(m.get("content"))}
    calls = nullish(m.get("tool_calls"))
    if calls:
        msg["tool_calls"] = tool_calls_to_openai(calls)
    return msg


def _usage(m: dict[str, Any]) -> Usage:
    usage = nullish(m.get("usage"))
    if not isinstance(usage, dict):
        return Usage()
    prompt = as_int(usage.get("prompt_tokens"))
    u = Usage.from_provider(input_tokens=prompt, output_tokens=as_int(usage.get("completion_tokens")))
    # Cache/reasoning details, when the raw provider response kept them, and only when they fit inside the
    # recorded prompt/completion counts (so the totals stay exactly what the file's usage says).
    raw = nullish(m.get("raw_data"))
    raw_usage = raw.get("usage") if isinstance(raw, dict) else None
    if isinstance(raw_usage, dict) and prompt is not None:
        cache_read = as_int(raw_usage.get("cache_read_input_tokens"))
        cache_write = as_int(raw_usage.get("cache_creation_input_tokens"))
        details = raw_usage.get("prompt_tokens_details")
        if cache_read is None and isinstance(details, dict):
            cache_read = as_int(details.get("cached_tokens"))
        if (cache_read or 0) + (cache_write or 0) <= prompt:
            if cache_read is not None:
                u.set("cache_read_tokens", cache_read, "provider")
            if cache_write is not None:
                u.set("cache_write_tokens", cache_write, "provider")
        out_details = raw_usage.get("completion_tokens_details")
        if isinstance(out_details, dict):
            reasoning = as_int(out_details.get("reasoning_tokens"))
            if reasoning is not None and reasoning <= u.output_tokens:
                u.set("reasoning_tokens", reasoning, "provider")
    return u


def _cost(m: dict[str, Any], usage: Usage) -> Cost | None:
    cost = nullish(m.get("cost"))
    if cost is None:
        return None
    try:
        amount = Decimal(str(cost))
    except InvalidOperation:
        raise InterchangeError(None, None, f"cost {cost!r} is not a number") from None
    # Agents whose harness did not track usage write cost 0.0: that is "unknown", not "free".
    if amount == 0 and not usage.sources:
        return None
    return Cost(amount, "USD", "recorded")


def _raw_fields(m: dict[str, Any]) -> tuple[str | None, str | None]:
    raw = nullish(m.get("raw_data"))
    if not isinstance(raw, dict):
        return None, None
    finish = raw.get("stop_reason") or raw.get("finish_reason")
    return (str(raw["id"]) if raw.get("id") else None), (str(finish) if finish else None)


def _simulation_run(info: dict[str, Any], tasks: dict[str, dict[str, Any]], index: int, sim: Any,
                    source: str) -> Run:
    if not isinstance(sim, dict) or not isinstance(sim.get("messages"), list):
        raise InterchangeError(None, None, "expected a simulation object with a 'messages' list")
    task_id = str(nullish(sim.get("task_id")))
    task = tasks.get(task_id)
    if task is None:
        raise InterchangeError(None, None, f"task_id {task_id!r} is not in the file's 'tasks'; the simulated "
                                           "user's prompt cannot be rebuilt without its scenario")
    agent_info = info.get("agent_info") or {}
    user_info = info.get("user_info") or {}
    env = info.get("environment_info") or {}
    agent_provider, agent_model = split_model(agent_info.get("llm"))
    user_provider, user_model = split_model(user_info.get("llm"))
    agent_params = public_params(agent_info.get("llm_args"))
    user_params = public_params(user_info.get("llm_args"))
    trial = nullish(sim.get("trial"))
    messages: list[dict[str, Any]] = sim["messages"]

    notes = [NOTE_NO_TOOL_DEFS, NOTE_SYSTEM]
    start = parse_time_ns(sim.get("start_time"))
    have_times = any(parse_time_ns(m.get("timestamp")) is not None for m in messages[:3])
    if not have_times:
        notes.append(NOTE_NO_TIMES)
    base = start if start is not None else (parse_time_ns(sim.get("timestamp")) or 0)

    reward_info = nullish(sim.get("reward_info"))
    run = Run(
        run_id=stable_id(FORMAT, source, index, sim.get("id")),
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
        },
    )
    b = RunBuilder(run)
    end = parse_time_ns(sim.get("end_time"))
    root = b.span("agent", run.name, None, base, end)

    system: Message = {"role": "system", "content": nullish(env.get("policy")) or ""}
    agent_seen: list[Message] = []  # the agent's conversation so far; messages shared between spans
    tool_names: dict[str, tuple[str, Any]] = {}
    prev = base
    last = base
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise InterchangeError(None, f"simulation {index} message {i}", "expected a message object")
        ts = parse_time_ns(m.get("timestamp")) if have_times else None
        t_end = ts if ts is not None else base + (i + 1) * SYNTHETIC_STEP_NS
        t_start = prev if have_times else t_end - SYNTHETIC_STEP_NS
        role = m.get("role")
        view = _agent_view(m)
        for call in nullish(m.get("tool_calls")) or []:
            tool_names[str(call.get("id") or "")] = (call.get("name") or "tool", call.get("arguments"))
        if is_model_call(i, m):
            usage = _usage(m)
            response_id, finish = _raw_fields(m)
            if role == "assistant":
                call = LLMCall(provider=agent_provider, model=agent_model, params=agent_params,
                               messages=[system, *agent_seen], output=view, usage=usage, cost=_cost(m, usage),
                               response_id=response_id, finish_reason=finish)
                name, side = f"agent {agent_model}", "agent"
            else:
                call = LLMCall(provider=user_provider, model=user_model, params=user_params,
                               messages=user_prompt_messages(info, task, messages[:i]), output=_user_output(m),
                               usage=usage, cost=_cost(m, usage), response_id=response_id, finish_reason=finish)
                name, side = f"user {user_model}", "user"
            b.span("llm", name, root, t_start, t_end, tags={"side": side}, llm=call,
                   attributes={"turn_idx": nullish(m.get("turn_idx"))})
        elif role == "tool":
            call_id = str(m.get("id") or "")
            tool, args = tool_names.get(call_id, ("tool", None))
            failed = bool(nullish(m.get("error")))
            content = nullish(m.get("content"))
            b.span("tool", tool, root, t_start, t_end, status="error" if failed else "ok",
                   error=content if failed else None,
                   tags={"side": "user" if m.get("requestor") == "user" else "agent"},
                   attributes={"tool_call_id": call_id, "arguments": args, "output": content})
        if view is not None:
            agent_seen.append(view)
        prev = t_end
        last = max(last, t_end)
    if root.end_ns is None or root.end_ns < last:
        root.end_ns = last
    run.ended_wall_ns = root.end_ns
    return run
