"""Variations of the benchmark formats that the corpus does not hold, written from the benchmarks' own sources.

Each file is synthetic and built here (never copied from the corpus or from a submission): its fields are the
ones the cited source writes. The oracles are what the file says (usage, recorded costs, durations) and hand
arithmetic over them.

Sources:
* τ²-bench ``src/tau2/data_model/message.py`` (``ToolCall.requestor``, ``ToolMessage.requestor``,
  ``MultiToolMessage.tool_messages``, ``generation_time_seconds``, ``context_truncation``), ``src/tau2/user/
  user_simulator.py`` (the user's tool calls get ``requestor="user"``), ``user_simulator_base.py`` (``flip_roles``),
  and the telecom leaderboard submission ``web/leaderboard/public/submissions/claude-sonnet-4-5_aide-platform_
  2025-10-31/trajectories/claude-sonnet-4-5_telecom_default_gpt4.1_1trials.json`` (user ``raw_data`` is a choice
  object without usage; agent ``raw_data`` is Anthropic's message).
* τ-bench ``tau_bench/run.py`` (results file name; a task that raised is ``{"reward": 0.0, "info": {"error",
  "traceback"}, "traj": []}``) and ``historical_trajectories/{model}-{domain}.json``.
* SWE-agent ``sweagent/types.py`` (``HistoryItem``: ``message_type``, ``is_demo``, ``cache_control``,
  ``thinking_blocks``, ``tool_call_ids``), ``sweagent/agent/history_processors.py`` (a tool message's
  ``cache_control`` at message level), ``sweagent/agent/models.py`` (``tokens_sent`` is litellm's local count).
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.cli import main
from tokprof.profiler.interchange import import_file
from tokprof.profiler.interchange.tau1 import model_from_name

T0 = "2025-10-31T07:44:00"


def _ns(iso: str) -> int:
    from tokprof.profiler.interchange.values import parse_time_ns

    v = parse_time_ns(iso)
    assert v is not None
    return v


def _anthropic_raw(msg_id: str, inp: int, out: int, stop: str) -> dict[str, Any]:
    return {"id": msg_id, "model": "claude-sonnet-4-5-20250929", "role": "assistant", "stop_reason": stop,
            "usage": {"cache_creation": {"ephemeral_1h_input_tokens": 0, "ephemeral_5m_input_tokens": 0},
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "input_tokens": inp,
                      "output_tokens": out, "server_tool_use": None, "service_tier": "standard"}}


def _choice_raw(content: str | None, calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The user simulator's ``raw_data``: LiteLLM's choice object, which carries no usage."""
    return {"finish_reason": "tool_calls" if calls else "stop", "index": 0,
            "message": {"content": content, "role": "assistant", "function_call": None, "annotations": [],
                        "tool_calls": [{"function": {"arguments": json.dumps(c["arguments"]), "name": c["name"]},
                                        "id": c["id"], "type": "function"} for c in calls] if calls else None},
            "provider_specific_fields": {}}


def telecom() -> dict[str, Any]:
    """A telecom simulation: the simulated user runs a tool on its phone (``requestor: "user"``)."""
    user_call = [{"id": "call_u1", "name": "check_status_bar", "arguments": {}, "requestor": "user"}]
    agent_call = [{"id": "toolu_1", "name": "get_customer_by_phone", "arguments": {"phone_number": "555-123-2002"},
                   "requestor": "assistant"}]
    messages = [
        {"role": "assistant", "content": "Hi! How can I help you today?", "tool_calls": None, "turn_idx": 0,
         "timestamp": "2025-10-31T07:44:00.500000", "cost": None, "usage": None, "raw_data": None},
        {"role": "user", "content": "My phone has no service.", "tool_calls": None, "turn_idx": 1,
         "timestamp": "2025-10-31T07:44:01", "cost": 0.001, "usage": {"completion_tokens": 7, "prompt_tokens": 900},
         "raw_data": _choice_raw("My phone has no service.", None)},
        {"role": "assistant", "content": None, "tool_calls": agent_call, "turn_idx": 2,
         "timestamp": "2025-10-31T07:44:05", "cost": 0.0312, "usage": {"completion_tokens": 40, "prompt_tokens": 10000},
         "raw_data": _anthropic_raw("msg_1", 10000, 40, "tool_use")},
        {"id": "toolu_1", "role": "tool", "content": '{"customer_id": "C1001"}', "requestor": "assistant",
         "error": False, "turn_idx": 3, "timestamp": "2025-10-31T07:44:05.100000"},
        {"role": "assistant", "content": "Please check your status bar.", "tool_calls": None, "turn_idx": 4,
         "timestamp": "2025-10-31T07:44:09", "cost": 0.0306, "usage": {"completion_tokens": 10, "prompt_tokens": 10100},
         "raw_data": _anthropic_raw("msg_2", 10100, 10, "end_turn")},
        {"role": "user", "content": None, "tool_calls": user_call, "turn_idx": 5, "timestamp": "2025-10-31T07:44:10",
         "cost": 0.0012, "usage": {"completion_tokens": 10, "prompt_tokens": 1000},
         "raw_data": _choice_raw(None, user_call)},
        {"id": "call_u1", "role": "tool", "content": "No Signal", "requestor": "user", "error": False, "turn_idx": 6,
         "timestamp": "2025-10-31T07:44:10.100000"},
        {"role": "user", "content": "It says No Signal.", "tool_calls": None, "turn_idx": 7,
         "timestamp": "2025-10-31T07:44:11", "cost": 0.0011, "usage": {"completion_tokens": 6, "prompt_tokens": 1050},
         "raw_data": None},
    ]
    sim = {"id": "sim-1", "task_id": "[service_issue]airplane_mode_on", "trial": 0, "start_time": T0,
           "end_time": "2025-10-31T07:44:12", "termination_reason": "user_stop", "agent_cost": 0.0618,
           "user_cost": 0.0033, "reward_info": {"reward": 1.0}, "messages": messages}
    return {"timestamp": T0,
            "info": {"user_info": {"implementation": "user_simulator", "llm": "gpt-4.1",
                                   "llm_args": {"temperature": 0.0},
                                   "global_simulation_guidelines": "# User Simulation Guidelines\nBe a customer."},
                     "agent_info": {"implementation": "llm_agent", "llm": "claude-sonnet-4-5",
                                    "llm_args": {"temperature": 0.0}},
                     "environment_info": {"domain_name": "telecom", "policy": "# Telecom Agent Policy"}},
            "tasks": [{"id": "[service_issue]airplane_mode_on",
                       "user_scenario": {"instructions": {"domain": "telecom", "reason_for_call": "no service",
                                                          "known_info": "phone 555-123-2002",
                                                          "task_instructions": "follow the agent"}}}],
            "simulations": [sim]}


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _llm(run: Any) -> list[Any]:
    return [s for s in run.spans if s.kind == "llm"]


def test_tau2_telecom_user_tools(tmp_path):
    result = import_file(_write(tmp_path, "telecom.json", telecom()))
    assert result.format == "tau2" and not result.errors and not result.partial
    run = result.runs[0]
    calls = _llm(run)
    assert [s.tags["side"] for s in calls] == ["user", "agent", "agent", "user", "user"]
    # every call carries the usage the file recorded, labelled provider, and its recorded cost
    assert [(s.llm.usage.input_tokens, s.llm.usage.output_tokens) for s in calls] == [
        (900, 7), (10000, 40), (10100, 10), (1000, 10), (1050, 6)]
    assert all(s.llm.usage.sources["input_tokens"] == "provider" for s in calls)
    assert sum(s.llm.cost.amount for s in calls) == Decimal("0.001") + Decimal("0.0312") + Decimal("0.0306") \
        + Decimal("0.0012") + Decimal("0.0011")
    tools = [s for s in run.spans if s.kind == "tool"]
    assert [(s.name, s.tags["side"], s.attributes["output"]) for s in tools] == [
        ("get_customer_by_phone", "agent", '{"customer_id": "C1001"}'), ("check_status_bar", "user", "No Signal")]
    # the agent never sees the user's tool call or its result; the user sees both (flip_roles)
    agent_last = calls[2].llm.messages
    assert all(m.get("tool_call_id") != "call_u1" for m in agent_last)
    user_last = calls[4].llm.messages
    assert user_last[-2]["role"] == "assistant" and user_last[-2]["tool_calls"][0]["function"]["name"] == \
        "check_status_bar"
    assert user_last[-1] == {"role": "tool", "tool_call_id": "call_u1", "content": "No Signal"}
    assert any("simulated user calls tools" in n for n in run.metadata["notes"])


def test_tau2_multi_tool_message_is_each_tool_result(tmp_path):
    data = telecom()
    msgs = data["simulations"][0]["messages"]
    msgs[2]["tool_calls"].append({"id": "toolu_2", "name": "get_bills", "arguments": {}, "requestor": "assistant"})
    first = msgs.pop(3)
    msgs.insert(3, {"role": "tool", "tool_messages": [first, {**first, "id": "toolu_2", "content": "[]"}]})
    run = import_file(_write(tmp_path, "multi.json", data)).runs[0]
    tools = [s for s in run.spans if s.kind == "tool" and s.tags["side"] == "agent"]
    assert [(s.name, s.attributes["tool_call_id"], s.attributes["output"]) for s in tools] == [
        ("get_customer_by_phone", "toolu_1", '{"customer_id": "C1001"}'), ("get_bills", "toolu_2", "[]")]
    second_agent_call = [s for s in _llm(run) if s.tags["side"] == "agent"][1]
    assert [m.get("tool_call_id") for m in second_agent_call.llm.messages[-2:]] == ["toolu_1", "toolu_2"]


def test_tau2_generation_time_and_context_truncation(tmp_path):
    data = telecom()
    msgs = data["simulations"][0]["messages"]
    msgs[2]["generation_time_seconds"] = 3.5     # the call took 3.5 s of the 4 s since the user's message
    msgs[4]["generation_time_seconds"] = "n/a"   # unreadable: the gap since the last message, as before
    msgs[4]["context_truncation"] = {"messages_dropped": 2, "messages_kept": 3, "max_input_tokens": 8000}
    result = import_file(_write(tmp_path, "gen.json", data))
    run = result.runs[0]
    agent = [s for s in _llm(run) if s.tags["side"] == "agent"]
    assert agent[0].end_ns == _ns("2025-10-31T07:44:05") and agent[0].end_ns - agent[0].start_ns == 3_500_000_000
    assert agent[1].start_ns == _ns("2025-10-31T07:44:05.100000")
    assert agent[1].attributes["context_truncation"]["messages_dropped"] == 2
    assert agent[1].attributes["prompt_incomplete"] is True
    assert agent[1].llm.usage.input_tokens == 10100   # what was sent, as recorded
    assert len(result.partial) == 1 and "context_truncation" in result.partial[0]


def test_tau2_none_strings_and_absent_fields(tmp_path):
    data = telecom()
    msgs = data["simulations"][0]["messages"]
    msgs[2].pop("content")                        # a tool-call message without content
    msgs[4].update(usage="None", cost="None", raw_data="None")
    for m in msgs:
        m.pop("turn_idx", None)
    run = import_file(_write(tmp_path, "none.json", data)).runs[0]
    agent = [s for s in _llm(run) if s.tags["side"] == "agent"]
    assert agent[0].llm.output["content"] is None and agent[0].llm.output["tool_calls"]
    # no usage recorded: counted locally, never labelled provider; no recorded cost
    assert agent[1].llm.usage.sources["input_tokens"] != "provider" and agent[1].llm.usage.input_tokens > 0
    assert agent[1].llm.cost is None or agent[1].llm.cost.source != "recorded"


@pytest.mark.parametrize("name, model", [
    ("gpt-4o-retail.json", "gpt-4o"),
    ("sonnet-35-new-airline.json.gz", "claude-3-5-sonnet"),
    ("tool-calling-claude-3-5-sonnet-20241022-0.0_range_0-115_user-gpt-4o-llm_0815103000.json",
     "claude-3-5-sonnet-20241022"),
    ("react-gpt-4o-mini-0.0_range_0-5_user-gpt-4o-llm_0101000000.json", "gpt-4o-mini"),
    ("act-retail-gpt-4-turbo-1.0_range_0--1_user-gpt-4o-llm_0101000000.json", "gpt-4-turbo"),
    ("results.json", None),
])
def test_tau1_model_from_the_file_name(name, model):
    assert model_from_name(Path(name)) == model


def _tau1_records() -> list[dict[str, Any]]:
    traj = [{"role": "system", "content": "# Retail agent policy"}, {"role": "user", "content": "Cancel my order."},
            {"content": None, "role": "assistant", "function_call": None,
             "tool_calls": [{"function": {"arguments": '{"order_id": "#W1"}', "name": "get_order_details"},
                             "id": "toolu_01", "type": "function"}]},
            {"role": "tool", "tool_call_id": "toolu_01", "name": "get_order_details",
             "content": '{"status": "pending"}'},
            {"content": "Cancelled.", "role": "assistant", "tool_calls": None, "function_call": None},
            {"role": "user", "content": "###STOP###"}]
    return [{"task_id": 0, "reward": 0.0, "info": {"error": "EOF when reading a line", "traceback": "Traceback ..."},
             "traj": [], "trial": 0},
            {"task_id": 1, "reward": 1.0, "info": {"task": {"user_id": "u1"}, "source": "user", "user_cost": 0.002,
                                                   "reward_info": {"reward": 1.0}}, "traj": traj, "trial": 0}]


def test_tau1_other_model_and_failed_task(tmp_path):
    result = import_file(_write(tmp_path, "sonnet-35-new-retail.json", _tau1_records()))
    assert result.format == "tau1" and not result.errors and len(result.runs) == 2
    failed, ok = result.runs
    assert failed.spans[0].status == "error" and failed.spans[0].error == "EOF when reading a line"
    assert failed.metadata["error"] == "EOF when reading a line" and not _llm(failed)
    calls = _llm(ok)
    assert [(s.llm.provider, s.llm.model) for s in calls] == [("anthropic", "claude-3-5-sonnet")] * 2
    assert all(s.llm.usage.sources["input_tokens"] != "provider" for s in calls)   # nothing recorded: counted
    assert any("claude-3-5-sonnet (the file name)" in n for n in ok.metadata["notes"])
    assert [s.name for s in ok.spans if s.kind == "tool"] == ["get_order_details"]


def test_tau1_unnamed_file_says_the_model_is_assumed(tmp_path):
    run = import_file(_write(tmp_path, "results.json", _tau1_records())).runs[1]
    assert {s.llm.model for s in _llm(run)} == {"gpt-4o"}
    assert any("assumed gpt-4o" in n for n in run.metadata["notes"])


def swe_agent_1x() -> dict[str, Any]:
    """SWE-agent 1.x with function calling on Claude and the cache_control history processor."""
    system = {"role": "system", "content": "You are a helpful assistant.", "agent": "main",
              "message_type": "system_prompt"}
    demo = {"role": "user", "content": "Here is a demonstration of how to solve a task.", "agent": "main",
            "message_type": "demonstration", "is_demo": True}
    task = {"role": "user", "agent": "main", "message_type": "observation",
            "content": [{"type": "text", "text": "Fix the bug in foo.py", "cache_control": {"type": "ephemeral"}}]}
    act1 = {"role": "assistant", "content": "Let me look.", "thought": "Let me look.", "action": "ls", "agent": "main",
            "message_type": "action", "thinking_blocks": [{"type": "thinking", "thinking": "t", "signature": "s"}],
            "tool_calls": [{"index": 1, "function": {"arguments": '{"command":"ls"}', "name": "bash"},
                            "id": "toolu_01", "type": "function"}]}
    obs1 = {"role": "tool", "content": [{"type": "text", "text": "foo.py"}], "agent": "main",
            "message_type": "observation", "tool_call_ids": ["toolu_01"], "cache_control": {"type": "ephemeral"}}
    act2 = {"role": "assistant", "content": "Submitting.", "thought": "Submitting.", "action": "submit",
            "agent": "main", "message_type": "action",
            "tool_calls": [{"function": {"arguments": "{}", "name": "submit"}, "id": "toolu_02", "type": "function"}]}
    obs2 = {"role": "tool", "content": "diff --git a/foo.py", "agent": "main", "message_type": "observation",
            "tool_call_ids": ["toolu_02"]}
    steps = [{"action": "ls", "observation": "foo.py", "response": "Let me look.", "thought": "Let me look.",
              "execution_time": "0.5", "state": {"working_dir": "/testbed"}, "query": [system, demo, task],
              "extra_info": {}},
             {"action": "submit", "observation": "diff --git a/foo.py", "response": "Submitting.",
              "thought": "Submitting.", "execution_time": 0.25, "state": {},
              "query": [system, demo, task, act1, obs1], "extra_info": {}}]
    return {"trajectory": steps, "history": [system, demo, task, act1, obs1, act2, obs2],
            "info": {"swe_agent_version": "1.1.0", "exit_status": "submitted", "submission": "diff --git a/foo.py",
                     "model_stats": {"instance_cost": 0.0421, "tokens_sent": 9000, "tokens_received": 300,
                                     "api_calls": 3}},
            "replay_config": json.dumps({"agent": {"model": {"name": "claude-3-7-sonnet-20250219"}}}),
            "environment": "main"}


def test_swe_agent_1x_content_blocks_cache_marks_and_run_totals(tmp_path):
    result = import_file(_write(tmp_path, "foo__bar-1.traj", swe_agent_1x()))
    assert result.format == "swe_agent" and not result.errors
    run = result.runs[0]
    calls = _llm(run)
    assert [(s.llm.provider, s.llm.model) for s in calls] == [("anthropic", "claude-3-7-sonnet-20250219")] * 2
    first, second = (s.llm.messages for s in calls)
    assert first[1]["content"] == "Here is a demonstration of how to solve a task."    # the demo is sent
    assert first[2]["content"][0]["cache_control"] == {"type": "ephemeral"}
    # the tool message's marker sits on the message (history_processors._set_cache_control) and is kept
    assert second[-1] == {"role": "tool", "content": [{"type": "text", "text": "foo.py"}], "tool_call_id": "toolu_01",
                          "cache_control": {"type": "ephemeral"}}
    # model_stats are run totals (tokens_sent is litellm's own count): never per-call provider usage
    assert all(s.llm.usage.sources["input_tokens"] != "provider" for s in calls)
    totals = run.metadata["recorded_totals"]
    assert totals["instance_cost"]["value"] == 0.0421 and "provider usage" in totals["instance_cost"]["basis"]
    assert totals["tokens_sent"] == {"value": 9000, "basis": "litellm local count"}
    assert any("the history holds 2 model calls" in n for n in run.metadata["notes"])
    tools = [s for s in run.spans if s.kind == "tool"]
    assert [(s.name, s.end_ns - s.start_ns) for s in tools] == [("ls", 500_000_000), ("submit", 250_000_000)]


@pytest.mark.parametrize("name, build, fmt, calls", [
    ("telecom.json", telecom, "tau2", 5),
    ("sonnet-35-new-retail.json", _tau1_records, "tau1", 2),
    ("foo__bar-1.traj", swe_agent_1x, "swe_agent", 2),
])
def test_each_variation_through_tokprof_import(tmp_path, capsys, name, build, fmt, calls):
    path = _write(tmp_path, name, build())
    assert main(["import", str(path), "--no-save", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["files"][0]["format"] == fmt and s["calls"] == calls and not s["errors"]
    if fmt == "tau2":
        assert s["tokens"]["input"] == 900 + 10000 + 10100 + 1000 + 1050
        assert Decimal(s["cost"]["by_source"]["recorded"]) == Decimal("0.0651")


def test_tau2_task_message_history_is_conversation_not_calls(tmp_path):
    """tau2 ``InitialState.message_history`` (tasks.py): the orchestrator starts the trajectory from it."""
    data = telecom()
    history = [{"role": "assistant", "content": "Hi! How can I help you today?"},
               {"role": "user", "content": "I was helped before, my phone still has no service."}]
    data["tasks"][0]["initial_state"] = {"initialization_actions": None, "message_history": history}
    msgs = data["simulations"][0]["messages"]
    msgs[1:1] = [{"role": "user", "content": history[1]["content"], "tool_calls": None,
                  "timestamp": "2025-10-31T07:44:00.700000", "cost": None, "usage": None, "raw_data": None}]
    run = import_file(_write(tmp_path, "history.json", data)).runs[0]
    calls = _llm(run)
    assert len(calls) == 5 and calls[0].llm.usage.input_tokens == 900     # the prefilled message is no call
    # but it is conversation: the user simulator sees its own earlier turn as an assistant message
    assert calls[0].llm.messages[-1] == {"role": "assistant", "content": history[1]["content"]}
    assert any("initial message_history" in n for n in run.metadata["notes"])
    agent_first = calls[1].llm.messages
    assert {"role": "user", "content": history[1]["content"]} in agent_first


def test_swe_agent_demonstration_turns_in_history_are_prompt_not_calls(tmp_path):
    """``put_demos_in_history``: each non-system turn of the demonstration is appended with ``is_demo``
    (sweagent/agent/agents.py ``_add_demonstration_to_history``); the model did not write them in this run."""
    data = swe_agent_1x()
    system, demo, task, *rest = data["history"]
    demo_turns = [{"role": "user", "content": "Demo task: fix bar.py", "agent": "main", "is_demo": True,
                   "message_type": "observation"},
                  {"role": "assistant", "content": "Demo: I look.", "thought": "Demo: I look.", "action": "ls",
                   "agent": "main", "is_demo": True, "message_type": "action"},
                  {"role": "user", "content": "bar.py", "agent": "main", "is_demo": True,
                   "message_type": "observation"}]
    data["history"] = [system, *demo_turns, task, *rest]
    for step in data["trajectory"]:
        step.pop("query")          # inputs from the history prefix, so the demo turns are visible there
    run = import_file(_write(tmp_path, "demo.traj", data)).runs[0]
    calls = _llm(run)
    assert [s.llm.output["content"] for s in calls] == ["Let me look.", "Submitting."]   # the demo answer is no call
    assert {"role": "assistant", "content": "Demo: I look."} in calls[0].llm.messages   # but it is in the prompt
    # steps stay aligned with the real calls: ls after the first, submit after the second
    assert [s.name for s in run.spans if s.kind == "tool"] == ["ls", "submit"]
