"""Recorded-run formats tokprof had not seen: other versions of SWE-agent and mini-swe-agent trajectories.

Each file here is synthetic, written to the format's own documentation (cited per test), never copied from
the corpus. The oracles are hand counts: the usage numbers written into the file, the messages a call was
shown, the costs the harness recorded.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.cli import main
from tokprof.profiler.interchange import InterchangeError, detect_format, import_file


def _litellm_response(prompt: int, completion: int, cached: int, written: int, content: str,
                      tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    """LiteLLM's ``ModelResponse.model_dump()`` for an Anthropic model (OpenAI-style usage, cache fields beside)."""
    return {"id": "chatcmpl-x", "created": 1, "model": "claude-sonnet-4-5-20250929", "object": "chat.completion",
            "choices": [{"finish_reason": "tool_calls" if tool_calls else "stop", "index": 0,
                         "message": {"role": "assistant", "content": content, "tool_calls": tool_calls}}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": None},
                      "completion_tokens_details": None,
                      "cache_creation_input_tokens": written, "cache_read_input_tokens": cached}}


def _tc(i: int, cmd: str) -> list[dict[str, Any]]:
    return [{"id": f"toolu_{i}", "type": "function", "function": {"name": "bash",
                                                                   "arguments": json.dumps({"command": cmd})}}]


def mini_v2(cost2: float = 0.0017) -> dict[str, Any]:
    """mini-swe-agent 2.x, tool calling through LiteLLM: docs/usage/output_files.md (``trajectory_format``
    ``mini-swe-agent-1.1``, messages + ``extra``), src/minisweagent/models/litellm_model.py (``extra.response``
    = ``response.model_dump()``, ``extra.cost``, ``extra.timestamp``), the ``{"role": "exit"}`` last message."""
    return {
        "info": {"model_stats": {"instance_cost": 0.0051 + cost2, "api_calls": 2},
                 "config": {"model": {"model_name": "anthropic/claude-sonnet-4-5-20250929"},
                            "model_type": "minisweagent.models.litellm_model.LitellmModel"},
                 "mini_version": "2.0.0", "exit_status": "Submitted", "submission": "diff --git a/foo.py"},
        "messages": [
            {"role": "system", "content": "You are a helpful assistant that can interact with a computer.",
             "extra": {}},
            {"role": "user", "content": "Please solve this issue: fix the bug in foo.py", "extra": {}},
            {"role": "assistant", "content": "Let me look.", "tool_calls": _tc(1, "ls -la"), "function_call": None,
             "extra": {"actions": [{"command": "ls -la", "tool_call_id": "toolu_1"}],
                       "response": _litellm_response(1200, 40, 0, 1100, "Let me look.", _tc(1, "ls -la")),
                       "cost": 0.0051, "timestamp": 1760000000.5}},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "<returncode>0</returncode>\n<output>\nfoo.py\n"
             "</output>", "extra": {"raw_output": "foo.py\n", "returncode": 0, "timestamp": 1760000001.0}},
            {"role": "assistant", "content": "Done.", "tool_calls": _tc(2, "echo COMPLETE"), "function_call": None,
             "extra": {"actions": [{"command": "echo COMPLETE", "tool_call_id": "toolu_2"}],
                       "response": _litellm_response(1290, 25, 1100, 150, "Done.", _tc(2, "echo COMPLETE")),
                       "cost": cost2, "timestamp": 1760000003.0}},
            {"role": "exit", "content": "diff --git a/foo.py",
             "extra": {"exit_status": "Submitted", "submission": "diff --git a/foo.py"}},
        ],
        "trajectory_format": "mini-swe-agent-1.1",
    }


def mini_v1() -> dict[str, Any]:
    """mini-swe-agent 1.x, text-based (```` ```bash ```` action blocks): observations are plain ``user``
    messages; each answer keeps ``extra.response`` (OpenAI usage) but no per-call cost."""
    a1, a2 = "THOUGHT: look\n\n```bash\nls\n```", "THOUGHT: done\n\n```bash\necho MINI_SWE_AGENT_FINAL_OUTPUT\n```"

    def resp(pt: int, ct: int, content: str) -> dict[str, Any]:
        return {"id": "c", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                                                           "message": {"role": "assistant", "content": content}}],
                "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct,
                          "prompt_tokens_details": {"cached_tokens": 512}}}
    return {"info": {"exit_status": "Submitted", "submission": "", "mini_version": "1.9.0",
                     "model_stats": {"instance_cost": 0.0123, "api_calls": 2}, "config": {"model": {"model_name": "gpt-4o"}}},
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": "<pr_description>fix it</pr_description>"},
                         {"role": "assistant", "content": a1, "extra": {"response": resp(900, 30, a1)}},
                         {"role": "user", "content": "<returncode>0</returncode>\n<output>\nfoo.py\n</output>"},
                         {"role": "assistant", "content": a2, "extra": {"response": resp(950, 20, a2)}}],
            "trajectory_format": "mini-swe-agent-1"}


def _write(tmp_path: Path, name: str, data: Any) -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data, indent=1))
    return p


def test_mini_swe_agent_v2_tool_calling_provider_usage_recorded_cost_and_exit(tmp_path):
    path = _write(tmp_path, "foo__bar-1.traj.json", mini_v2())
    assert detect_format(path) == "mini_swe_agent"
    run = import_file(path).runs[0]
    calls = [s.llm for s in run.llm_spans()]
    assert [c.usage.input_tokens for c in calls] == [1200, 1290]
    assert [c.usage.output_tokens for c in calls] == [40, 25]
    assert [c.usage.cache_read_tokens for c in calls] == [0, 1100]
    assert [c.usage.cache_write_tokens for c in calls] == [1100, 150]
    assert all(c.usage.source("input_tokens") == "provider" for c in calls)
    assert [c.cost.amount for c in calls] == [Decimal("0.0051"), Decimal("0.0017")]
    assert {c.cost.source for c in calls} == {"recorded"}
    assert calls[0].model == "claude-sonnet-4-5-20250929" and calls[0].provider == "anthropic"
    # the second call was shown system, task, first answer and the tool result; never mini's `extra`
    assert [m["role"] for m in calls[1].messages] == ["system", "user", "assistant", "tool"]
    assert not any("extra" in m for c in calls for m in c.messages) and "extra" not in calls[1].output
    assert not any(m["role"] == "exit" for c in calls for m in c.messages)
    tools = [s for s in run.spans if s.kind == "tool"]
    assert [t.name for t in tools] == ["ls"] and tools[0].attributes["output"] == "foo.py\n"
    # times from extra.timestamp: call 2 runs from the tool result (t=1.0 s) to its answer (t=3.0 s)
    assert calls and run.llm_spans()[1].end_ns - run.llm_spans()[1].start_ns == 2_000_000_000


def test_mini_swe_agent_zero_cost_is_unknown_not_free(tmp_path):
    run = import_file(_write(tmp_path, "t.traj.json", mini_v2(cost2=0.0))).runs[0]
    assert run.llm_spans()[1].llm.cost is None or run.llm_spans()[1].llm.cost.source != "recorded"


def test_mini_swe_agent_v1_text_based(tmp_path):
    path = _write(tmp_path, "t.traj.json", mini_v1())
    run = import_file(path).runs[0]
    calls = [s.llm for s in run.llm_spans()]
    assert [(c.usage.input_tokens, c.usage.output_tokens, c.usage.cache_read_tokens) for c in calls] == \
        [(900, 30, 512), (950, 20, 512)]
    assert [len(c.messages) for c in calls] == [2, 4]
    assert [s.name for s in run.spans if s.kind == "tool"] == ["ls"]
    assert "no extra.timestamp" in " ".join(run.metadata["notes"])


def test_mini_swe_agent_through_the_cli(tmp_path, capsys):
    path = _write(tmp_path, "t.traj.json", mini_v2())
    assert main(["import", str(path), "--no-save", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["files"][0]["format"] == "mini_swe_agent" and s["calls"] == 2
    assert s["tokens"]["input"] == 2490 and s["tokens"]["cache_read"] == 1100 and s["tokens"]["cache_write"] == 1250
    assert Decimal(s["cost"]["by_source"]["recorded"]) == Decimal("0.0068")


def test_mini_swe_agent_without_any_call_is_a_clear_error(tmp_path):
    data = mini_v2()
    data["messages"] = data["messages"][:2]
    with pytest.raises(InterchangeError, match="no model call"):
        import_file(_write(tmp_path, "t.traj.json", data))


def _swe_1x(query_elides: bool) -> dict[str, Any]:
    """SWE-agent 1.x ``.traj`` (https://swe-agent.com/latest/usage/trajectories/): history with content block
    lists (cache_control), tool_calls / tool_call_ids, each trajectory step's ``query`` = what the LM was shown."""
    hist = [
        {"role": "system", "content": "SETTING: You are an autonomous programmer.", "agent": "main",
         "message_type": "system_prompt"},
        {"role": "user", "content": [{"type": "text", "text": "fix the bug in foo.py",
                                      "cache_control": {"type": "ephemeral"}}], "agent": "main"},
        {"role": "assistant", "content": "Let me look.", "thought": "Let me look.", "action": "cat foo.py",
         "agent": "main", "tool_calls": [{"function": {"arguments": "{\"command\":\"cat foo.py\"}", "name": "bash"},
                                           "id": "call_1", "type": "function"}], "message_type": "action"},
        {"role": "tool", "content": [{"type": "text", "text": "OBSERVATION:\n" + "line\n" * 400}], "agent": "main",
         "message_type": "observation", "tool_call_ids": ["call_1"]},
        {"role": "assistant", "content": "Submit.", "thought": "Submit.", "action": "submit", "agent": "main",
         "tool_calls": [{"function": {"arguments": "{}", "name": "submit"}, "id": "call_2", "type": "function"}]},
    ]
    second = [*hist[:3], {**hist[3], "content": "Old environment output: (400 lines omitted)"}] \
        if query_elides else hist[:4]
    return {"trajectory": [{"action": "cat foo.py", "observation": "...", "response": "Let me look.",
                            "thought": "Let me look.", "execution_time": 0.25, "state": {}, "query": hist[:2]},
                           {"action": "submit", "observation": "diff", "response": "Submit.", "thought": "Submit.",
                            "execution_time": 0.5, "state": {}, "query": second}],
            "history": hist,
            "info": {"swe_agent_version": "1.1.0", "exit_status": "submitted", "submission": "diff",
                     "model_stats": {"instance_cost": 0.0421, "tokens_sent": 2500, "tokens_received": 60,
                                     "api_calls": 2}},
            "replay_config": json.dumps({"agent": {"model": {"name": "gpt-4o"}}})}


def test_swe_agent_1x_query_is_the_call_input(tmp_path):
    full = import_file(_write(tmp_path, "a.traj", _swe_1x(False))).runs[0]
    elided = import_file(_write(tmp_path, "b.traj", _swe_1x(True))).runs[0]
    f2, e2 = full.llm_spans()[1].llm, elided.llm_spans()[1].llm
    assert e2.messages[3]["content"] == "Old environment output: (400 lines omitted)"
    assert f2.usage.source("input_tokens") == "counted" == e2.usage.source("input_tokens")
    # 400 elided lines ("line\n" is 2 tokens in o200k) are not charged to the call that never saw them
    assert f2.usage.input_tokens - e2.usage.input_tokens > 700
    notes = " ".join(elided.metadata["notes"])
    assert "2 of 2 calls take their input from the step's 'query'" in notes
    assert "instance_cost 0.0421, tokens_sent 2500, tokens_received 60, api_calls 2" in notes


def test_swe_agent_0x_model_name_and_demo_messages(tmp_path):
    """SWE-agent 0.x: ``replay_config.agent.model.model_name``, demonstrations inside ``history``."""
    data = {"environment": "swe_main",
            "history": [{"role": "system", "content": "SETTING", "agent": "primary"},
                        {"role": "user", "content": "Here is a demonstration", "agent": "primary", "is_demo": True},
                        {"role": "user", "content": "fix bug", "agent": "primary"},
                        {"role": "assistant", "content": "ls", "thought": "", "action": "ls\n", "agent": "primary"}],
            "trajectory": [{"action": "ls\n", "observation": "foo.py", "response": "ls", "thought": "",
                            "state": "{}"}],
            "info": {"exit_status": "submitted", "model_stats": {"total_cost": 1.5, "instance_cost": 0.0312,
                                                                 "tokens_sent": 3100, "tokens_received": 45,
                                                                 "api_calls": 1}},
            "replay_config": {"agent": {"model": {"model_name": "gpt-4o-mini"}}}}
    run = import_file(_write(tmp_path, "c.traj", data)).runs[0]
    call = run.llm_spans()[0].llm
    assert call.model == "gpt-4o-mini" and len(call.messages) == 3
    assert call.usage.source("input_tokens") == "counted"


def _cc_line(kind: str, uuid: str, parent: str | None, ts: str, message: dict[str, Any], **extra: Any) -> str:
    return json.dumps({"parentUuid": parent, "isSidechain": False, "userType": "external", "cwd": "/repo",
                       "sessionId": "s-1", "version": extra.pop("version", "1.0.3"), "type": kind,
                       "message": message, "uuid": uuid, "timestamp": ts, **extra})


def test_claude_code_1_0_costusd_is_the_recorded_cost(tmp_path):
    """Claude Code 1.0.x wrote ``costUSD`` beside each assistant entry (ccusage's ``auto`` mode reads it when
    > 0); 2.x lines (``cache_creation`` TTL split, ``server_tool_use``, no ``costUSD``) price from the table."""
    def usage(fresh: int, write: int, read: int, out: int, **more: Any) -> dict[str, Any]:
        return {"input_tokens": fresh, "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
                "output_tokens": out, "service_tier": "standard", **more}

    def answer(mid: str, text: str, u: dict[str, Any]) -> dict[str, Any]:
        return {"id": mid, "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "usage": u}
    lines = [
        _cc_line("user", "u1", None, "2025-06-01T10:00:00.000Z", {"role": "user", "content": "hi"}),
        _cc_line("assistant", "a1", "u1", "2025-06-01T10:00:02.000Z", answer("msg_1", "hello", usage(4, 1000, 0, 12)),
                 costUSD=0.003798, durationMs=1800, requestId="req_1"),
        _cc_line("user", "u2", "a1", "2025-06-01T10:00:10.000Z", {"role": "user", "content": "again"}),
        _cc_line("assistant", "a2", "u2", "2025-06-01T10:00:12.000Z", answer("msg_2", "ok", usage(
            3, 200, 1000, 5, cache_creation={"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 200},
            server_tool_use={"web_search_requests": 0})), version="2.0.14", costUSD=0, requestId="req_2"),
        json.dumps({"type": "system", "subtype": "compact_boundary", "uuid": "x", "sessionId": "s-1",
                    "timestamp": "2025-06-01T10:00:13.000Z", "content": "Conversation compacted"}),
    ]
    path = tmp_path / "s-1.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert detect_format(path) == "claude_code"
    calls = [s.llm for s in import_file(path).runs[0].llm_spans()]
    assert [c.usage.input_tokens for c in calls] == [4 + 1000, 3 + 200 + 1000]
    assert [c.usage.cache_write_1h_tokens for c in calls] == [0, 200]
    assert calls[0].cost is not None and calls[0].cost.amount == Decimal("0.003798")
    assert calls[0].cost.source == "recorded"
    assert calls[1].cost is None  # costUSD 0 is "not recorded": priced from the table later


def test_tau1_react_agent_observations_become_tool_spans(tmp_path):
    """τ-bench's ChatReActAgent (tau_bench/agents/chat_react_agent.py): tools are ``Action:`` JSON inside the
    answer, a tool's result comes back as the user message ``"API output: " + observation``, a ``respond``
    action's as the simulated user's plain reply."""
    act = 'Thought:\nlook up\nAction:\n{"name": "get_user_details", "arguments": {"user_id": "u1"}}'
    say = 'Thought:\nask\nAction:\n{"name": "respond", "arguments": {"content": "Your user id?"}}'
    rec = [{"task_id": 3, "trial": 0, "reward": 1.0, "info": {"user_cost": 0.0021},
            "traj": [{"role": "system", "content": "policy\n#Available tools\n[...]"},
                     {"role": "user", "content": "I want to return an item."},
                     {"role": "assistant", "content": say, "tool_calls": None, "function_call": None},
                     {"role": "user", "content": "It is u1."},
                     {"role": "assistant", "content": act, "tool_calls": None, "function_call": None},
                     {"role": "user", "content": 'API output: {"name": "A"}'}]}]
    path = _write(tmp_path, "react.json", rec)
    assert detect_format(path) == "tau1"
    run = import_file(path).runs[0]
    assert [len(s.llm.messages) for s in run.llm_spans()] == [2, 4]
    tools = [s for s in run.spans if s.kind == "tool"]
    assert [(t.name, t.attributes["arguments"], t.attributes["output"]) for t in tools] == \
        [("get_user_details", {"user_id": "u1"}, '{"name": "A"}')]


LEGACY_CODEX = [
    {"id": "5973b6c0-94b8-487b-a530-2aeb6098ae0e", "timestamp": "2025-05-01T10:00:00.000Z", "instructions": None,
     "git": {"commit_hash": "abc", "branch": "main"}},
    {"record_type": "state"},
    {"type": "message", "id": None, "role": "user", "content": [{"type": "input_text", "text": "list the files"}]},
    {"record_type": "state"},
    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
    {"type": "function_call", "id": "fc_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}",
     "call_id": "call_1"},
    {"type": "function_call_output", "call_id": "call_1", "output": "{\"output\":\"a.py\\n\"}"},
    {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text",
                                                                         "text": "There is a.py"}]},
    {"record_type": "state"},
]


def test_codex_bare_era_rollout_imports_each_model_turn_as_a_counted_call(tmp_path):
    """Codex CLI rollouts from before the {timestamp, type, payload} envelope: a bare meta line, bare
    Responses items, ``{"record_type": "state"}`` markers and no token_count events."""
    path = tmp_path / "rollout-2025-05-01T10-00-00-5973b6c0.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in LEGACY_CODEX) + "\n")
    assert detect_format(path) == "codex"
    run = import_file(path).runs[0]
    calls = [s.llm for s in run.llm_spans()]
    assert len(calls) == 2
    assert calls[0].output["tool_calls"][0]["function"]["name"] == "shell"
    assert [m["role"] for m in calls[1].messages] == ["user", "assistant", "tool"]
    assert calls[1].output == {"role": "assistant", "content": "There is a.py"}
    assert all(c.usage.input_tokens > 0 and c.usage.source("input_tokens") in ("counted", "estimated")
               for c in calls)
    assert [s.name for s in run.spans if s.kind == "tool"] == ["shell"]
    assert run.metadata["session_id"] == "5973b6c0-94b8-487b-a530-2aeb6098ae0e"


def test_chatlog_reads_each_providers_usage_dialect(tmp_path):
    """A team's request/response log with responses from several OpenAI-compatible providers: each usage
    block read in its documented dialect (hand counts from the payloads), OpenRouter's cost kept."""
    def line(model: str, usage: dict[str, Any]) -> str:
        return json.dumps({"request": {"model": model, "messages": [{"role": "user", "content": "hi"}]},
                           "response": {"id": "r", "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                                        "message": {"role": "assistant", "content": "ok"}}], "usage": usage}})
    rows = [
        # DeepSeek: prompt = hit + miss, the hit is the cache read (api-docs.deepseek.com/guides/kv_cache)
        ("deepseek-chat", {"completion_tokens": 50, "prompt_cache_hit_tokens": 1024, "prompt_cache_miss_tokens": 176},
         (1200, 50, 1024, 0)),
        # OpenRouter: nested cache writes, usage.cost charged (openrouter.ai/docs/use-cases/usage-accounting)
        ("anthropic/claude-sonnet-4", {"prompt_tokens": 194, "completion_tokens": 2, "total_tokens": 196, "cost": 0.95,
                                       "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 100}},
         (194, 2, 0, 100)),
        # xAI: reasoning beside completion (docs.x.ai/docs/guides/reasoning)
        ("grok-3-mini", {"prompt_tokens": 2341, "completion_tokens": 31, "total_tokens": 3108,
                         "completion_tokens_details": {"reasoning_tokens": 736}}, (2341, 767, 0, 0)),
        # a gateway copying Anthropic's cache-excluding input under the OpenAI name
        ("claude-sonnet-4-5", {"prompt_tokens": 10, "completion_tokens": 5, "cache_read_input_tokens": 2000},
         (2010, 5, 2000, 0)),
    ]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(line(m, u) for m, u, _ in rows) + "\n")
    calls = [s.llm for s in import_file(path, "chatlog").runs[0].llm_spans()]
    got = [(c.usage.input_tokens, c.usage.output_tokens, c.usage.cache_read_tokens, c.usage.cache_write_tokens)
           for c in calls]
    assert got == [want for _, _, want in rows]
    assert calls[1].cost is not None and calls[1].cost.amount == Decimal("0.95") and calls[1].cost.source == "recorded"
    assert all(c.cost is None for i, c in enumerate(calls) if i != 1)


def test_swe_agent_retry_agent_file_imports_every_attempt_once(tmp_path):
    """SWE-agent 1.x RetryAgent .traj: ``{"attempts": [...]}`` with the chosen attempt copied to the top level
    (``RetryAgent.get_trajectory_data``): all attempts were paid, the copy is not a further attempt."""
    a0, a1 = _swe_1x(False), _swe_1x(True)
    a1["history"] = a1["history"][:3]
    a1["trajectory"] = a1["trajectory"][:1]
    chosen = json.loads(json.dumps(a0))
    chosen["info"]["best_attempt_idx"] = 0
    data = {"attempts": [a0, a1], **chosen}
    run = import_file(_write(tmp_path, "retry.traj", data)).runs[0]
    assert len(run.llm_spans()) == 2 + 1
    attempts = [s for s in run.spans if s.kind == "agent" and s.parent_id is not None]
    assert [a.name for a in attempts] == ["attempt 0", "attempt 1"]
    assert "2 attempts (RetryAgent)" in " ".join(run.metadata["notes"])
    # written before the choice (choose=False): attempts only, no top-level history
    only = import_file(_write(tmp_path, "retry2.traj", {"attempts": [a0, a1]})).runs[0]
    assert len(only.llm_spans()) == 3


def test_mini_swe_agent_v2_responses_model(tmp_path):
    """v2 with a Responses API model (src/minisweagent/models/litellm_response_model.py): the model message is
    ``response.model_dump()`` itself plus ``extra``; tool results are bare ``function_call_output`` items."""
    def response(rid: str, items: list[dict[str, Any]], inp: int, cached: int, out: int, reasoning: int,
                 cost: float, ts: float) -> dict[str, Any]:
        return {"id": rid, "object": "response", "model": "gpt-5-mini", "status": "completed", "output": items,
                "usage": {"input_tokens": inp, "input_tokens_details": {"cached_tokens": cached},
                          "output_tokens": out, "output_tokens_details": {"reasoning_tokens": reasoning},
                          "total_tokens": inp + out},
                "extra": {"actions": [{"command": "ls", "tool_call_id": "call_1"}], "cost": cost, "timestamp": ts}}
    call_item = {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "bash",
                 "arguments": "{\"command\": \"ls\"}", "status": "completed"}
    done = {"type": "message", "id": "msg_2", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Done.", "annotations": []}]}
    data = {"info": {"mini_version": "2.1.0", "exit_status": "Submitted",
                     "config": {"model": {"model_name": "openai/gpt-5-mini"}}},
            "messages": [{"role": "system", "content": "sys", "extra": {}},
                         {"role": "user", "content": "task", "extra": {}},
                         response("resp_1", [{"type": "reasoning", "id": "rs_1", "summary": []}, call_item],
                                  900, 0, 120, 64, 0.0004, 1760000001.0),
                         {"type": "function_call_output", "call_id": "call_1", "output": "foo.py",
                          "extra": {"raw_output": "foo.py", "returncode": 0, "timestamp": 1760000001.5}},
                         response("resp_2", [done], 1000, 896, 20, 0, 0.0001, 1760000003.0),
                         {"role": "exit", "content": "", "extra": {"exit_status": "Submitted"}}],
            "trajectory_format": "mini-swe-agent-1.1"}
    run = import_file(_write(tmp_path, "r.traj.json", data)).runs[0]
    calls = [s.llm for s in run.llm_spans()]
    assert [(c.usage.input_tokens, c.usage.cache_read_tokens, c.usage.output_tokens, c.usage.reasoning_tokens)
            for c in calls] == [(900, 0, 120, 64), (1000, 896, 20, 0)]
    assert [c.cost.amount for c in calls] == [Decimal("0.0004"), Decimal("0.0001")]
    assert [m["role"] for m in calls[1].messages] == ["system", "user", "assistant", "tool"]
    assert calls[0].output["tool_calls"][0]["function"]["name"] == "bash"
    assert calls[1].output == {"role": "assistant", "content": "Done."}
    assert [s.name for s in run.spans if s.kind == "tool"] == ["ls"]


def test_mini_swe_agent_damaged_fields_bend(tmp_path):
    """Damaged values inside a readable trajectory: the call stays (counted locally when its usage is
    unreadable), an out-of-range timestamp is treated as absent; no traceback, no lost call."""
    data = mini_v2()
    data["messages"][2]["extra"] = "garbage"
    data["messages"][4]["extra"]["timestamp"] = 1e30
    run = import_file(_write(tmp_path, "d.traj.json", data)).runs[0]
    calls = [s.llm for s in run.llm_spans()]
    assert len(calls) == 2
    assert calls[0].usage.source("input_tokens") in ("counted", "estimated")
    assert calls[1].usage.input_tokens == 1290 and calls[1].usage.source("input_tokens") == "provider"
