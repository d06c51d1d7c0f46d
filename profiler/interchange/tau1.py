"""τ-bench historical trajectories (``sierra-research/tau-bench``): a JSON list of runs with ``traj``.

Each record is ``{"task_id", "trial", "reward", "info", "traj"}`` where ``traj`` is the full OpenAI chat
message list the agent saw (system, user, assistant with ``tool_calls``, tool). Each assistant message is
one model call whose input is the ``traj`` prefix before it; each tool message is a tool span, and so is
each ``"API output: ..."`` user message of the ReAct/Act agents (their tool calls are ``Action:`` JSON in
the answer text, the tool schemas inside the system prompt).

The model is not inside the records. It is taken from, in order: ``model=``; a ``model`` field of the
record or its ``info`` (some forks write one); the file name, in the two namings tau-bench uses: ``run.py``'s
results files ``{agent_strategy}-{model}-{temperature}_range_{start}-{end}_user-{user_model}-...json``
(``tau_bench/run.py``) and ``historical_trajectories/{model}-{domain}.json`` (``gpt-4o-retail.json``,
``sonnet-35-new-airline.json``; the short Claude names ``sonnet-35`` read as ``claude-3-5-sonnet``); else
``gpt-4o`` (the model of the original published runs), said to be assumed in the run's notes.
They record neither usage nor times: tokens are left for local counting, and span times are a synthetic
1 ms-per-message timeline (noted in the run's metadata).

A task that raised is written by ``run.py`` as ``{"reward": 0.0, "info": {"error", "traceback"},
"traj": []}``: it imports as a run whose root span failed with that error (nothing was lost, nothing billed).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import (
    ImportResult,
    InterchangeError,
    RunBuilder,
    collect,
    json_or_text,
    nullish,
    split_model,
    stable_id,
)
from tokprof.profiler.interchange.lenient import decode, decode_dict, decode_list, find_container, parse_document
from tokprof.profiler.model import LLMCall, Message, Run

FORMAT = "tau1"
DEFAULT_MODEL = "gpt-4o"
STEP_NS = 1_000_000
EXPECTED = 'a JSON list of τ-bench runs [{"task_id", "trial", "traj": [messages]}]'
NOTES = [
    "tau-bench trajectories record no usage: token counts are computed locally",
    "no timestamps: span times are a synthetic 1 ms-per-message timeline",
    "tool definitions are not recorded: counted prompt tokens miss the tool schema",
]


def _is_record(v: Any) -> bool:
    return isinstance(v, dict) and "traj" in v


_RESULTS_NAME = re.compile(r"^(?:tool-calling|act|react|few-shot)-(?:(?:airline|retail)-)?(?P<model>.+?)-"
                           r"\d+(?:\.\d+)?_range_")
_HISTORICAL_NAME = re.compile(r"^(?P<model>.+)-(?:airline|retail)$")
_SHORT_CLAUDE = re.compile(r"^(?P<family>sonnet|haiku|opus)-(?P<major>\d)(?P<minor>\d)(?:-.*)?$")


def model_from_name(path: Path | None) -> str | None:
    """The agent model a tau-bench file name states (see the module doc), or ``None``."""
    if path is None:
        return None
    stem = Path(path).name
    for ext in (".gz", ".json"):
        stem = stem[: -len(ext)] if stem.lower().endswith(ext) else stem
    found = _RESULTS_NAME.match(stem) or _HISTORICAL_NAME.match(stem)
    if found is None:
        return None
    name = found.group("model")
    short = _SHORT_CLAUDE.match(name)
    return f"claude-{short['major']}-{short['minor']}-{short['family']}" if short else name


def _model_and_note(model: str | None, rec: dict[str, Any], info: dict[str, Any],
                    path_model: str | None) -> tuple[str, str]:
    """The record's agent model and where it came from (a note for the run's metadata)."""
    for name, where in ((model, "given"), (nullish(rec.get("model")), "the record's 'model'"),
                        (nullish(info.get("model")), "the record's info.model"), (path_model, "the file name")):
        if isinstance(name, str) and name.strip():
            return name.strip(), f"agent model {name.strip()} ({where})"
    return DEFAULT_MODEL, (f"agent model not recorded: assumed {DEFAULT_MODEL} (the published runs' model); "
                           "counts and prices are for that model")


def import_data(data: Any, path: Path | None = None, model: str | None = None) -> ImportResult:
    """Runs from a parsed τ-bench file: the list of records, or one record, possibly inside wrappers."""
    result = ImportResult(Path(path) if path is not None else None, FORMAT)
    found = find_container(data, lambda v: (isinstance(v, list) and any(_is_record(decode(x)) for x in v[:20]))
                           or _is_record(v))
    if found is None and isinstance(data, list):
        found = data  # records of no known shape: each is reported, none silently dropped
    if found is None:
        raise InterchangeError(path, None, f"top level is a {type(data).__name__}; expected {EXPECTED}")
    data = [found] if isinstance(found, dict) else found
    source = Path(path).name if path is not None else "<data>"
    path_model = model_from_name(path)
    items = ((f"record {i}", (i, rec)) for i, rec in enumerate(data))
    return collect(result, items, lambda item: trajectory_run(item[1], item[0], source, model, path_model))


def import_text(text: str, path: Path | None = None, model: str | None = None) -> ImportResult:
    try:
        data = parse_document(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise InterchangeError(path, f"line {line}" if line else None,
                               f"malformed JSON ({getattr(exc, 'msg', exc)}); expected {EXPECTED}") from None
    return import_data(data, path, model)


def _clean(m: Any, i: int) -> Message:
    m = decode(m)
    if isinstance(m, dict) and isinstance(m.get("tool_calls"), str):
        m = {**m, "tool_calls": decode_list(m["tool_calls"])}
    if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "tool"):
        raise InterchangeError(None, None, f"traj[{i}] is not a chat message with role "
                                           "system/user/assistant/tool")
    return m


REACT_OBSERVATION = "API output: "


def _react_action(content: Any) -> tuple[str | None, Any]:
    """The tool name and arguments of a ReAct answer (``...Action:\n{"name": ..., "arguments": {...}}``)."""
    if not isinstance(content, str) or "Action:" not in content:
        return None, None
    action = decode_dict(content.split("Action:")[-1].strip())
    if action is None or not isinstance(action.get("name"), str):
        return None, None
    return action["name"], action.get("arguments")


def trajectory_run(rec: Any, index: int, source: str, given_model: str | None = None,
                   path_model: str | None = None) -> Run:
    rec = decode(rec)
    raw_traj = decode_list(rec.get("traj")) if isinstance(rec, dict) else None
    if raw_traj is None:
        raise InterchangeError(None, None, "expected an object with a 'traj' message list")
    traj = [_clean(m, i) for i, m in enumerate(raw_traj)]
    task_id, trial = nullish(rec.get("task_id")), nullish(rec.get("trial"))
    info = decode_dict(rec.get("info")) or {}
    model_name, model_note = _model_and_note(given_model, rec, info, path_model)
    provider, model = split_model(model_name)
    error = nullish(info.get("error"))
    run = Run(
        run_id=stable_id(FORMAT, source, index, task_id, trial),
        name=f"tau1 task {task_id} trial {trial}",
        tags={"task": str(task_id), "trial": str(trial)},
        started_wall_ns=0,
        metadata={"source": FORMAT, "source_file": source, "record": index, "reward": nullish(rec.get("reward")),
                  "user_cost": info.get("user_cost"), "notes": [*NOTES, model_note]},
    )
    b = RunBuilder(run)
    root = b.span("agent", run.name, None, 0, len(traj) * STEP_NS)
    if error is not None:  # run.py caught an exception in this task: the run failed, whatever it holds
        root.status, root.error = "error", str(error)[:2000]
        run.metadata["error"] = str(error)[:2000]
    tool_calls: dict[str, dict[str, Any]] = {}
    for i, m in enumerate(traj):
        start = i * STEP_NS
        if m["role"] == "assistant":
            for c in m.get("tool_calls") or []:
                tool_calls[str(c.get("id"))] = c.get("function") or {}
            b.span("llm", f"agent {model}", root, start, start + STEP_NS,
                   llm=LLMCall(provider=provider, model=model, messages=traj[:i], output=m))
        elif m["role"] == "user" and i > 0 and traj[i - 1]["role"] == "assistant" and \
                isinstance(m.get("content"), str) and m["content"].startswith(REACT_OBSERVATION):
            # ReAct/Act agents: the tool ran on the answer's "Action:" JSON; its result comes back as a user
            # message "API output: ..." (tau_bench/agents/chat_react_agent.py)
            name, args = _react_action(traj[i - 1].get("content"))
            b.span("tool", name or "tool", root, start, start + STEP_NS,
                   attributes={"arguments": args, "output": m["content"][len(REACT_OBSERVATION):]})
        elif m["role"] == "tool":
            call_id = str(m.get("tool_call_id") or "")
            fn = tool_calls.get(call_id, {})
            args = fn.get("arguments")
            b.span("tool", m.get("name") or fn.get("name") or "tool", root, start, start + STEP_NS,
                   attributes={"tool_call_id": call_id, "arguments": json_or_text(args), "output": m.get("content")})
    run.ended_wall_ns = root.end_ns
    return run


