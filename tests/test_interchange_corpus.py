"""Every file of the shared corpus imports cleanly, and the numbers match the files themselves.

Expected numbers are computed here straight from the raw JSON, independently of the importers.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import pytest

from tokprof.profiler.interchange import detect_format, import_file
from tokprof.profiler.interchange.tau2_user import user_prompt_messages
from tests.conftest import CORPUS

FILES = sorted(p for p in CORPUS.rglob("*.gz")) if CORPUS.is_dir() else []
TAU2 = [p for p in FILES if p.parent.name == "tau2"]


@lru_cache(maxsize=None)
def imported(path: Path):
    return import_file(path)


@lru_cache(maxsize=None)
def raw(path: Path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def ids(paths):
    return [p.name[:50] for p in paths]


@pytest.mark.parametrize("path", FILES, ids=ids(FILES))
def test_every_corpus_file_imports_with_zero_errors(corpus, path):
    result = imported(path)
    assert result.errors == []
    assert result.runs
    assert result.format == {"tau2": "tau2", "tau1": "tau1", "swe-agent": "swe_agent"}[path.parent.name]
    assert detect_format(path) == result.format
    for run in result.runs:
        assert run.metadata["source"] == result.format
        assert run.metadata["source_file"] == path.name
        ids_ = {s.span_id for s in run.spans}
        assert len(ids_) == len(run.spans)
        assert all(s.parent_id is None or s.parent_id in ids_ for s in run.spans)
        assert len(run.roots()) == 1
        for s in run.llm_spans():
            # every call has a known input and output count, from the provider or from counting
            assert s.llm.usage.source("input_tokens") in ("provider", "counted", "estimated")
            assert s.llm.usage.source("output_tokens") in ("provider", "counted", "estimated")
            assert s.end_ns is not None and s.end_ns >= s.start_ns


def _usage(m):
    u = m.get("usage")
    return u if isinstance(u, dict) else None


@pytest.mark.parametrize("path", TAU2, ids=ids(TAU2))
def test_tau2_provider_usage_and_call_counts_match_the_file(corpus, path):
    data = raw(path)
    sims = data["simulations"]
    exp_prompt = exp_completion = exp_with_usage = exp_calls = exp_tools = 0
    exp_cost = Decimal(0)
    for sim in sims:
        for i, m in enumerate(sim["messages"]):
            greeting = (i == 0 and m["role"] == "assistant" and _usage(m) is None
                        and m["content"] == "Hi! How can I help you today?")
            if m["role"] in ("assistant", "user") and not greeting:
                exp_calls += 1
            if m["role"] == "tool":
                exp_tools += 1
            u = _usage(m)
            if u is not None:
                exp_with_usage += 1
                exp_prompt += int(u["prompt_tokens"])
                exp_completion += int(u["completion_tokens"])
                exp_cost += Decimal(str(m["cost"]))
    result = imported(path)
    assert len(result.runs) == len(sims)
    llm = [s for r in result.runs for s in r.spans if s.llm is not None]
    provider = [s for s in llm if s.llm.usage.source("input_tokens") == "provider"]
    assert len(llm) == exp_calls
    assert len(provider) == exp_with_usage
    assert sum(s.llm.usage.input_tokens for s in provider) == exp_prompt
    assert sum(s.llm.usage.output_tokens for s in provider
               if s.llm.usage.source("output_tokens") == "provider") == exp_completion
    assert sum((s.llm.cost.amount for s in llm if s.llm.cost is not None), Decimal(0)) == exp_cost
    assert sum(1 for r in result.runs for s in r.spans if s.kind == "tool") == exp_tools
    sides = {s.tags["side"] for s in llm}
    assert sides == {"agent", "user"}


def test_tau2_numbers_for_the_claude_file(corpus):
    path = next(p for p in TAU2 if p.name.startswith("claude-sonnet-4-5"))
    result = imported(path)
    llm = [s for r in result.runs for s in r.spans if s.llm is not None]
    agent = [s for s in llm if s.tags["side"] == "agent"]
    user = [s for s in llm if s.tags["side"] == "user"]
    assert (len(result.runs), len(agent), len(user)) == (50, 467, 300)
    assert {s.llm.model for s in agent} == {"claude-sonnet-4-5"}
    assert {s.llm.provider for s in agent} == {"anthropic"}
    assert {s.llm.model for s in user} == {"gpt-4.1"}
    assert sum(s.llm.usage.input_tokens for s in llm) == 4_164_844


def test_tau2_calls_see_the_rebuilt_prompts(corpus):
    path = next(p for p in TAU2 if p.name.startswith("claude-sonnet-4-5"))
    data = raw(path)
    run = imported(path).runs[0]
    sim = data["simulations"][0]
    task = next(t for t in data["tasks"] if str(t["id"]) == str(sim["task_id"]))
    msgs = sim["messages"]
    llm = run.llm_spans()
    # agent side: system = the policy, then the conversation before the call, in OpenAI format
    first_agent = next(s for s in llm if s.tags["side"] == "agent")
    k = next(i for i, m in enumerate(msgs) if i > 0 and m["role"] == "assistant")
    assert first_agent.llm.messages[0] == {"role": "system", "content": data["info"]["environment_info"]["policy"]}
    assert [m["role"] for m in first_agent.llm.messages[1:]] == [m["role"] for m in msgs[:k]]
    assert first_agent.llm.output["content"] == msgs[k]["content"]
    assert first_agent.llm.tools == []
    assert any("tool definitions are not recorded" in n for n in run.metadata["notes"])
    # user side: exactly what tau2_user rebuilds
    user_idx = [i for i, m in enumerate(msgs) if m["role"] == "user"]
    user_spans = [s for s in llm if s.tags["side"] == "user"]
    for i, s in zip(user_idx, user_spans):
        assert s.llm.messages == user_prompt_messages(data["info"], task, msgs[:i])
        assert s.llm.output == {"role": "assistant", "content": msgs[i]["content"]}
    # tool calls are in OpenAI format and answered by tool spans named after the tool
    with_calls = next(s for s in llm if s.llm.output and s.llm.output.get("tool_calls"))
    call = with_calls.llm.output["tool_calls"][0]
    assert call["type"] == "function" and isinstance(call["function"]["arguments"], str)
    tool = next(s for s in run.spans if s.kind == "tool" and s.attributes["tool_call_id"] == call["id"])
    assert tool.name == call["function"]["name"]


def test_tau2_timestamps_become_span_times(corpus):
    path = next(p for p in TAU2 if p.name.startswith("claude-sonnet-4-5"))
    sim = raw(path)["simulations"][0]
    run = imported(path).runs[0]
    from datetime import datetime, timezone

    def ns(s):
        dt = datetime.fromisoformat(s).replace(tzinfo=timezone.utc)
        return int(dt.timestamp()) * 1_000_000_000 + dt.microsecond * 1000

    first_user = next(s for s in run.llm_spans() if s.tags["side"] == "user")
    # the first model call starts when the greeting was sent and ends when the user's message was written
    assert first_user.wall_start_ns == ns(sim["messages"][0]["timestamp"])
    assert first_user.wall_end_ns == ns(sim["messages"][1]["timestamp"])
    starts = [s.wall_start_ns for s in run.llm_spans()]
    assert starts == sorted(starts)


def test_tau2_without_usage_is_counted_and_without_times_is_ordered(corpus):
    path = next(p for p in TAU2 if p.name.startswith("toolorchestra"))
    run = imported(path).runs[0]
    llm = run.llm_spans()
    assert all(s.llm.usage.source("input_tokens") == "counted" for s in llm)
    assert all(s.llm.cost is None for s in llm)
    assert any("synthetic" in n for n in run.metadata["notes"])
    path = next(p for p in TAU2 if p.name.startswith("gpt-oss"))
    run = imported(path).runs[0]
    assert "api_key" not in json.dumps([s.llm.params for s in run.llm_spans()])


def test_tau1_one_call_per_assistant_message(corpus):
    path = CORPUS / "tau1" / "gpt-4o-airline.json.gz"
    data = raw(path)
    result = imported(path)
    assert len(result.runs) == len(data) == 200
    assert sum(len(r.llm_spans()) for r in result.runs) == sum(
        1 for rec in data for m in rec["traj"] if m["role"] == "assistant") == 2454
    run, rec = result.runs[0], data[0]
    k = next(i for i, m in enumerate(rec["traj"]) if m["role"] == "assistant")
    call = run.llm_spans()[0].llm
    assert call.messages == rec["traj"][:k]
    assert (call.model, call.provider) == ("gpt-4o", "openai")
    assert call.usage.source("input_tokens") == "counted"
    assert sum(1 for s in run.spans if s.kind == "tool") == sum(1 for m in rec["traj"] if m["role"] == "tool")


def test_swe_agent_calls_and_tool_steps(corpus):
    path = CORPUS / "swe-agent" / "marshmallow-1867_function_calling.traj.gz"
    data = raw(path)
    run = imported(path).runs[0]
    calls = run.llm_spans()
    assert len(calls) == sum(1 for m in data["history"] if m["role"] == "assistant") == 13
    assert sum(1 for s in run.spans if s.kind == "tool") == len(data["trajectory"])
    second = calls[1].llm.messages
    assert second[-1]["role"] == "tool" and second[-1]["tool_call_id"].startswith("call_")
    assert all(set(m) <= {"role", "content", "tool_calls", "tool_call_id", "name"} for m in second)
