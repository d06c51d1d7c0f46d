"""Reading a τ²-bench simulation's message list (part of :mod:`tokprof.profiler.interchange.tau2`).

Each function follows tau2-bench's own data model (``src/tau2/data_model/message.py``, ``simulation.py``,
``tasks.py``): full-duplex runs keep their messages inside ``ticks``; a ``MultiToolMessage`` holds the results
of several tool calls of one turn; a task's ``initial_state.message_history`` starts the trajectory.
"""

from __future__ import annotations

from typing import Any

from tokprof.profiler.interchange.base import InterchangeError, nullish
from tokprof.profiler.interchange.lenient import decode, decode_dict, decode_list


def tick_messages(ticks: Any) -> list[dict[str, Any]]:
    """Full-duplex runs store no ``messages``: collect the message objects inside each tick, in time order
    (what ``SimulationRun.get_messages`` does)."""
    out: list[dict[str, Any]] = []

    def walk(v: Any, depth: int) -> None:
        v = decode(v)
        if depth > 3:
            return
        if isinstance(v, dict):
            if v.get("role") in ("assistant", "user", "tool", "system"):
                out.append(v)
                return
            for x in v.values():
                walk(x, depth + 1)
        elif isinstance(v, list):
            for x in v:
                walk(x, depth + 1)

    for tick in decode_list(ticks) or []:
        walk(tick, 0)
    return sorted(out, key=lambda m: str(m.get("timestamp") or ""))


def read_message(raw: Any, index: int, i: int) -> dict[str, Any]:
    """Message ``i`` of simulation ``index`` as a dict, its tool calls as dicts with decoded arguments."""
    m = decode(raw)
    if not isinstance(m, dict):
        raise InterchangeError(None, f"simulation {index} message {i}", "expected a message object")
    m = dict(m)
    calls = decode_list(m.get("tool_calls"))
    m["tool_calls"] = [_tool_call(c) for c in calls if isinstance(decode(c), dict)] if calls else None
    return m


def flatten(raw: list[Any]) -> list[Any]:
    """A ``MultiToolMessage`` (``{"role": "tool", "tool_messages": [...]}``, tau2 ``message.py``: the results of
    several tool calls of one turn) as the tool messages it holds, in order; every other message as it is."""
    out: list[Any] = []
    for x in raw:
        d = decode(x)
        inner = decode_list(d.get("tool_messages")) if isinstance(d, dict) and d.get("role") == "tool" else None
        out.extend(inner if inner is not None and "id" not in d else [x])
    return out


def prefilled(task: dict[str, Any] | None, messages: list[dict[str, Any]]) -> int:
    """How many leading messages are the task's ``initial_state.message_history`` (tau2 ``InitialState``; the
    orchestrator starts the trajectory from it): same role and content, no usage. Written by the task, not by
    a model in this run, so they are conversation but not calls."""
    state = decode_dict((task or {}).get("initial_state")) or {}
    history = [decode(h) for h in decode_list(state.get("message_history")) or []]
    n = 0
    for h, m in zip(history, messages):
        if not isinstance(h, dict) or (h.get("role"), nullish(h.get("content"))) != \
                (m.get("role"), nullish(m.get("content"))) or nullish(m.get("usage")) is not None:
            break
        n += 1
    return n


def _tool_call(c: Any) -> dict[str, Any]:
    c = dict(decode(c))
    if isinstance(c.get("arguments"), str):
        c["arguments"] = decode(c["arguments"])
    return c
