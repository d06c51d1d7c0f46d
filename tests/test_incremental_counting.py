"""Incremental counting: ``count_prompts`` (a run's prompts in one batch) and ``count_messages`` with a shared
memo give exactly the from-scratch counts, whatever the history does between calls — grows, branches,
repeats, shrinks, or has a message edited in place — for every chat template, and on the real τ-bench runs."""

from __future__ import annotations

import copy
import gzip
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from tokprof.profiler.accounting import fill_run_usage
from tokprof.profiler.providers.message_cache import MessageTokenCache
from tokprof.profiler.providers.chat_format import count_messages, count_prompt, count_prompts
from tokprof.profiler.model import LLMCall, Run, Span

TOOLS = [{"type": "function", "function": {"name": "lookup", "description": "Find a booking.",
                                            "parameters": {"type": "object", "properties": {
                                                "id": {"type": "string", "description": "Booking id"}}}}}]


def scratch(prompts: list, model: str, tools: list | None = None) -> list[int]:
    return [count_messages(p, model, tools, cache=None) for p in prompts]


def agent_run() -> list[list[dict]]:
    """The prompts of a small tool-using agent: each call re-sends the history, plus a second conversation
    sharing the system prompt, a repeated call, an empty prompt and an earlier call counted again."""
    system = {"role": "system", "content": "You are a booking agent. " * 20}
    history: list[dict] = [system, {"role": "user", "content": "Where is booking 7?"}]
    prompts = [list(history)]
    for i in range(6):
        history.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{i}", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"id": i})}}]})
        history.append({"role": "tool", "tool_call_id": f"c{i}", "name": "lookup",
                        "content": json.dumps({"booking": i, "seats": list(range(i))})})
        prompts.append(list(history))
        if i == 2:
            prompts.append(list(history))  # the same prompt twice (a retry)
    history.append({"role": "assistant", "content": "Found it."})
    history.append({"role": "user", "content": [{"type": "text", "text": "and this?"},
                                                 {"type": "image_url", "image_url": {"url": "data:,"}}]})
    prompts.append(list(history))
    other = [system, {"role": "user", "content": "Cancel booking 9", "name": "bob"}]
    prompts += [list(other), [], other + [{"role": "assistant", "content": "Done."}], prompts[3]]
    return prompts


@pytest.mark.parametrize("model,tools", [("gpt-4o", None), ("gpt-4o", TOOLS), ("gpt-4", None),
                                         ("qwen-plus", TOOLS), ("qwen-plus", None), ("deepseek-chat", None),
                                         ("claude-sonnet-4-5", None)])
def test_count_prompts_equals_counting_each_prompt_from_scratch(model: str, tools: list | None) -> None:
    prompts = agent_run()
    expected = scratch(prompts, model, tools)
    cache = MessageTokenCache()
    assert count_prompts(prompts, model, tools, cache=cache) == expected
    assert count_prompts(prompts, model, tools, cache=cache) == expected  # warm memo
    assert [count_messages(p, model, tools, cache=cache) for p in prompts] == expected  # one by one, same memo
    assert count_prompts(prompts, model, tools, cache=None) == expected


def test_count_prompts_counts_each_distinct_message_once_and_reuses_prefixes() -> None:
    history = [{"role": "system", "content": "policy " * 300}, {"role": "user", "content": "hi"}]
    prompts = []
    for i in range(40):
        history.append({"role": "assistant" if i % 2 else "user", "content": f"turn {i} " + "w " * i})
        prompts.append(list(history))
    cache = MessageTokenCache()
    assert count_prompts(prompts, "gpt-4o", cache=cache) == scratch(prompts, "gpt-4o")
    assert cache.misses == 42  # each distinct message tokenized once
    assert cache.prefix_hits == sum(range(3, 42))  # every prompt after the first re-sends the one before
    # every text is in the memo: a later call that goes on from the run only tokenizes its new message
    before = cache.misses
    nxt = history + [{"role": "user", "content": "one more"}]
    assert count_messages(nxt, "gpt-4o", cache=cache) == count_messages(nxt, "gpt-4o", cache=None)
    assert cache.misses == before + 1


def test_count_prompts_leaves_its_input_alone() -> None:
    prompts = agent_run()
    before = copy.deepcopy(prompts)
    count_prompts(prompts, "gpt-4o", cache=MessageTokenCache())
    assert prompts == before


def test_a_message_edited_in_place_between_batches_is_counted_again() -> None:
    prompts = agent_run()
    cache = MessageTokenCache()
    count_prompts(prompts, "gpt-4o", cache=cache)
    prompts[4][3]["content"] = "[masked]"  # an optimizer masking an old tool output in place
    assert count_prompts(prompts, "gpt-4o", cache=cache) == scratch(prompts, "gpt-4o")
    prompts[5][1]["content"] = "Where is booking 8?"  # the conversation's key message itself
    assert [count_messages(p, "gpt-4o", cache=cache) for p in prompts] == scratch(prompts, "gpt-4o")


def test_count_prompts_takes_langchain_messages_and_iterables() -> None:
    lc = [SystemMessage("Be brief."), HumanMessage("Weather in Paris?"),
          AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Paris"}, "id": "t1"}]),
          ToolMessage("18C, cloudy", tool_call_id="t1"), AIMessage("18C and cloudy.")]
    prompts = [lc[:2], lc[:4], lc]
    mixed = [[{"role": "system", "content": "Be brief."}, *lc[1:3]],
             [{"role": "system", "content": "Be brief."}, lc[1], {"role": "assistant", "content": "ok"}]]
    expected = scratch(prompts + mixed, "gpt-4o")
    assert count_prompts(prompts + mixed, "gpt-4o", cache=MessageTokenCache()) == expected
    assert count_prompts((iter(p) for p in prompts), "gpt-4o", cache=MessageTokenCache()) == expected[:3]
    cache = MessageTokenCache()
    for _ in range(2):  # cold, then warm
        assert [count_messages(p, "gpt-4o", cache=cache) for p in prompts + mixed] == expected
    held = sum(map(len, cache._texts["o200k_base"])) + sum(size for _, size in cache._data.values())
    assert cache.chars == held  # every stored text accounted for


MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "tool", "system"])},
    optional={"content": st.one_of(st.none(), st.text(max_size=40),
                                   st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                                   "text": st.text(max_size=10)}), max_size=2)),
              "name": st.sampled_from(["bob", "lookup"]),
              "tool_calls": st.lists(st.fixed_dictionaries({"type": st.just("function"), "function":
                                     st.fixed_dictionaries({"name": st.sampled_from(["f", "lookup"]),
                                                            "arguments": st.one_of(  # JSON text, or a dict
                                                                st.text(max_size=20),
                                                                st.dictionaries(st.text(max_size=3),
                                                                                st.integers(), max_size=2))})}),
                                     min_size=1, max_size=2),
              "function_call": st.fixed_dictionaries({"name": st.just("f"), "arguments": st.text(max_size=10)})})
STEP = st.one_of(
    st.tuples(st.just("grow"), st.lists(MESSAGE, min_size=1, max_size=3)),  # the agent's next call
    st.tuples(st.just("edit"), st.integers(0, 50), st.text(max_size=30)),  # a message changed in place
    st.tuples(st.just("branch"), st.integers(0, 50)),  # a new call from an earlier point of the history
    st.tuples(st.just("repeat"), st.just(0)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(first=st.lists(MESSAGE, min_size=1, max_size=3), steps=st.lists(STEP, max_size=12),
       model=st.sampled_from(["gpt-4o", "qwen-plus", "deepseek-chat"]))
def test_incremental_counts_equal_from_scratch_counts_whatever_the_history_does(first, steps, model) -> None:
    """Batches and single calls share one memo across the whole story, and must never return a stale count."""
    cache = MessageTokenCache(max_entries=64, max_prefixes=4)
    history = list(first)
    batch = [list(history)]
    for step in steps:
        if step[0] == "grow":
            history = history + step[1]
        elif step[0] == "edit":
            history[step[1] % len(history)]["content"] = step[2]  # (a message may have had none)
            # a batch assumes no edits while it runs: count what was gathered, then go on
            assert count_prompts(batch, model, cache=cache) == scratch(batch, model)
            batch = []
        elif step[0] == "branch":
            history = history[:1 + step[1] % len(history)]
        batch.append(list(history))
        assert count_messages(history, model, cache=cache) == count_messages(history, model, cache=None)
    assert count_prompts(batch, model, cache=cache) == scratch(batch, model)


def test_count_prompts_on_real_tau1_runs_equals_counting_each_call_from_scratch(corpus: Path) -> None:
    with gzip.open(corpus / "tau1" / "gpt-4o-airline.json.gz", "rt", encoding="utf-8") as f:
        runs = json.load(f)[:40]
    prompts = [run["traj"][:i] for run in runs for i, m in enumerate(run["traj"]) if m["role"] == "assistant"]
    expected = scratch(prompts, "gpt-4o")
    cache = MessageTokenCache()
    assert count_prompts(prompts, "gpt-4o", cache=cache) == expected
    distinct = {json.dumps(m, sort_keys=True) for p in prompts for m in p}
    assert cache.misses <= len(distinct)  # nothing tokenized twice
    assert [count_messages(p, "gpt-4o", cache=MessageTokenCache()) for p in prompts] == expected


def test_fill_run_usage_batches_by_model_and_tools_and_keeps_provider_usage() -> None:
    prompts = agent_run()
    run = Run(run_id="r", name="agent")
    root = Span("root", None, "r", "agent", "agent", 0, 0)
    run.spans.append(root)
    plan = [("gpt-4o", None), ("gpt-4o", None), ("qwen-plus", TOOLS), ("gpt-4o", TOOLS), ("gpt-4o", None)]
    calls = []
    for i, p in enumerate(prompts):
        model, tools = plan[i % len(plan)]
        call = LLMCall(model=model, messages=p, tools=list(tools or []))
        if i == 5:
            call.usage.set("input_tokens", 12345, "provider")
        run.spans.append(Span(f"s{i}", "root", "r", "llm", "llm", i, i, llm=call))
        calls.append(call)
    fill_run_usage(run)
    for i, call in enumerate(calls):
        if not (call.messages or call.tools):
            assert not call.usage.known("input_tokens")  # nothing to count is not a count of 3
            continue
        expected = 12345 if i == 5 else count_prompt(call.messages, call.model, call.tools, cache=None).tokens
        assert call.usage.input_tokens == expected, i
        # the agent's empty "data:," image cannot be measured: prompts holding it are counted as estimates
        from tokprof.profiler.providers.media import prompt_media

        counted = "counted" if prompt_media(call.messages, call.model).exact else "estimated"
        assert call.usage.sources["input_tokens"] == ("provider" if i == 5 else counted)


def test_batches_and_single_calls_share_a_memo_across_threads() -> None:
    cache = MessageTokenCache(max_entries=40, max_chars=5_000, max_prefixes=3)  # small: constant eviction
    runs = []
    for seed in range(6):
        prompts = agent_run()
        for p in prompts:
            for m in p[1:]:
                if isinstance(m.get("content"), str):
                    m["content"] = f"{m['content']} [{seed}]"
        runs.append((prompts, scratch(prompts, "gpt-4o")))

    def work(i: int) -> None:
        for _ in range(15):
            prompts, expected = runs[i % len(runs)]
            assert count_prompts(prompts, "gpt-4o", cache=cache) == expected
            assert [count_messages(p, "gpt-4o", cache=cache) for p in prompts] == expected

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))  # re-raises a failed assertion
    assert len(cache) <= 40 and cache.chars <= 5_000
