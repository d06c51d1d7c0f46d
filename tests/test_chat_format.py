"""Chat-format counting: the openai-cookbook's stated counts, ChatML / DeepSeek templates, LangChain
messages, tool calls, and the incremental memo."""

from __future__ import annotations

import json
import threading

import pytest

from tokprof.profiler.providers.message_cache import MessageTokenCache
from tokprof.profiler.providers.chat_format import count_completion, count_messages, count_prompt, count_tools
from tokprof.profiler.providers.messages import to_openai_message
from tokprof.profiler.providers.tokenizers import get_encoder

# openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb, section 6.
COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate "
                                  "jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant",
     "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user",
     "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased "
                "leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]
# Section 7: tool definitions.
COOKBOOK_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "description": "The unit of temperature to return",
                         "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}]
COOKBOOK_TOOL_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize("model,expected", [
    ("gpt-3.5-turbo-0125", 129), ("gpt-3.5-turbo", 129), ("gpt-4-0613", 129), ("gpt-4", 129),
    ("gpt-4o", 124), ("gpt-4o-mini", 124), ("gpt-4o-2024-08-06", 124),
])
def test_cookbook_example_conversation(model: str, expected: int) -> None:
    assert count_messages(COOKBOOK_MESSAGES, model, cache=None) == expected
    assert count_messages(COOKBOOK_MESSAGES, model) == expected  # memoized path agrees


@pytest.mark.parametrize("model,expected", [
    ("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101),
])
def test_cookbook_function_example(model: str, expected: int) -> None:
    assert count_messages(COOKBOOK_TOOL_MESSAGES, model, COOKBOOK_TOOLS, cache=None) == expected
    assert count_messages(COOKBOOK_TOOL_MESSAGES, model, COOKBOOK_TOOLS) == expected


def test_gpt41_uses_the_same_constants_as_gpt4o() -> None:
    # Checked against real usage in tests/test_accounting_corpus.py (524 calls, all exact).
    assert count_messages(COOKBOOK_MESSAGES, "gpt-4.1-2025-04-14") == 124


def test_langchain_messages_count_like_their_openai_dicts() -> None:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    lc = [
        SystemMessage(content="You are terse."),
        HumanMessage(content="Book PEK→SFO tomorrow"),
        AIMessage(content="", tool_calls=[{"name": "search", "args": {"from": "PEK", "to": "SFO"}, "id": "c1"}]),
        ToolMessage(content='{"flights": ["CA985"]}', tool_call_id="c1"),
    ]
    dicts = [to_openai_message(m) for m in lc]
    assert [d["role"] for d in dicts] == ["system", "user", "assistant", "tool"]
    assert dicts[2]["tool_calls"][0]["function"] == {"name": "search", "arguments": '{"from": "PEK", "to": "SFO"}'}
    assert dicts[3]["tool_call_id"] == "c1"
    for model in ("gpt-4o", "qwen-plus", "deepseek-chat"):
        assert count_messages(lc, model) == count_messages(dicts, model)


def test_tool_calls_and_results_are_counted() -> None:
    enc = get_encoder("o200k_base")
    args = '{"city": "Paris"}'
    call = {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": args}}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "18C, cloudy"}
    pc = count_prompt([call, result], "gpt-4o", cache=None)
    assert pc.messages[0] == 3 + len(enc.encode("assistant")) + 3 + len(enc.encode("weather")) + len(enc.encode(args))
    assert pc.messages[1] == 3 + len(enc.encode("tool")) + len(enc.encode("18C, cloudy"))
    assert count_completion(call, "gpt-4o") == 3 + len(enc.encode("weather")) + len(enc.encode(args))
    assert count_completion("Hello there", "gpt-4o") == len(enc.encode("Hello there"))


def test_chatml_matches_the_rendered_qwen_template() -> None:
    msgs = [{"role": "system", "content": "你是一个乐于助人的助手。"},
            {"role": "user", "content": "帮我查一下北京明天的天气 (Beijing weather)"},
            {"role": "assistant", "content": "好的。"}]
    rendered = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in msgs) + \
        "<|im_start|>assistant\n"
    expected = len(get_encoder("qwen").encode(rendered, allow_special=True))
    assert count_messages(msgs, "qwen-plus", cache=None) == expected


def test_chatml_tool_calls_and_results_use_qwen_tags() -> None:
    call = {"role": "assistant", "content": "",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]}
    result = {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    enc = get_encoder("qwen")
    rendered = ('<|im_start|>assistant\n\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call><|im_end|>\n'
                "<|im_start|>user\n<tool_response>\nok\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    # tags counted as text here; the count must be within a few tokens of the rendered template
    got = count_messages([call, result], "qwen-plus", cache=None)
    assert abs(got - len(enc.encode(rendered, allow_special=True))) <= 4
    assert count_tools(COOKBOOK_TOOLS, "qwen-plus") > len(enc.encode(json.dumps(COOKBOOK_TOOLS[0])))


def test_deepseek_template() -> None:
    msgs = [{"role": "system", "content": "你是助手"}, {"role": "user", "content": "你好"},
            {"role": "assistant", "content": "你好！"}, {"role": "user", "content": "再见"}]
    rendered = "<｜begin▁of▁sentence｜>你是助手<｜User｜>你好<｜Assistant｜>你好！<｜end▁of▁sentence｜><｜User｜>再见<｜Assistant｜>"
    expected = len(get_encoder("deepseek").encode(rendered, allow_special=True))
    assert count_messages(msgs, "deepseek-chat", cache=None) == expected


def test_content_parts_and_images() -> None:
    parts = {"role": "user", "content": [{"type": "text", "text": "What is in this image?"},
                                         {"type": "image_url", "image_url": {"url": "data:...", "detail": "low"}}]}
    plain = {"role": "user", "content": "What is in this image?"}
    # detail=low: gpt-4o's base price whatever the size (tests/test_media.py pins the other rules)
    assert count_messages([parts], "gpt-4o") == count_messages([plain], "gpt-4o") + 85


def test_memo_counts_unique_content_once_and_agrees_with_scratch() -> None:
    cache = MessageTokenCache(max_entries=1000)
    history: list[dict] = [{"role": "system", "content": "policy " * 200}]
    totals_memo, totals_scratch = [], []
    for i in range(30):
        history.append({"role": "user" if i % 2 else "assistant", "content": f"turn {i}: " + "word " * 20})
        totals_memo.append(count_messages(history, "gpt-4o", cache=cache))
        totals_scratch.append(count_messages(history, "gpt-4o", cache=None))
    assert totals_memo == totals_scratch
    assert cache.misses == 31          # each distinct message tokenized once
    # every message of every call was either reused from the re-sent prefix or looked up one by one
    assert cache.prefix_hits + cache.hits + cache.misses == sum(i + 2 for i in range(30))
    assert cache.prefix_hits == sum(i + 1 for i in range(1, 30))  # each call re-sends the previous prompt


def test_prefix_reuse_detects_messages_changed_in_place() -> None:
    cache = MessageTokenCache()
    history = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "a " * 50},
               {"role": "assistant", "content": "ok"}]
    count_messages(history, "gpt-4o", cache=cache)
    history[1]["content"] = "short"          # an optimizer masking an old message in place
    history.append({"role": "user", "content": "next"})
    assert count_messages(history, "gpt-4o", cache=cache) == count_messages(history, "gpt-4o", cache=None)
    # equal but distinct message objects (e.g. converted LangChain messages) still reuse the prefix
    before = cache.prefix_hits
    copies = [dict(m) for m in history] + [{"role": "assistant", "content": "done"}]
    assert count_messages(copies, "gpt-4o", cache=cache) == count_messages(copies, "gpt-4o", cache=None)
    assert cache.prefix_hits - before == len(history)


def test_memo_is_bounded_lru() -> None:
    cache = MessageTokenCache(max_entries=10)
    for i in range(50):
        count_messages([{"role": "user", "content": f"m{i}"}], "gpt-4o", cache=cache)
    assert len(cache) == 10
    count_messages([{"role": "user", "content": "m49"}], "gpt-4o", cache=cache)
    assert cache.hits == 1


def test_memo_distinguishes_models_roles_and_names() -> None:
    cache = MessageTokenCache()
    m = {"role": "user", "content": "hello world"}
    a = count_messages([m], "gpt-4o", cache=cache)
    b = count_messages([m], "gpt-4", cache=cache)
    c = count_messages([{**m, "name": "bob"}], "gpt-4o", cache=cache)
    d = count_messages([m], "qwen-plus", cache=cache)
    # three texts tokenized: "hello world" under o200k (its named variant reuses it: the name is counted
    # on its own), under cl100k and under Qwen's tokenizer
    assert cache.misses == 3 and c > a and (a, b, d) == (
        count_messages([m], "gpt-4o", cache=None), count_messages([m], "gpt-4", cache=None),
        count_messages([m], "qwen-plus", cache=None))


def test_memo_is_thread_safe() -> None:
    cache = MessageTokenCache(max_entries=64)
    msgs = [{"role": "user", "content": f"message number {i} " * 5} for i in range(200)]
    expected = [count_messages([m], "gpt-4o", cache=None) for m in msgs]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for m, e in zip(msgs, expected):
                assert count_messages([m], "gpt-4o", cache=cache) == e
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) <= 64


def test_prefix_memo_is_thread_safe() -> None:
    """Threads growing conversations that share a system prompt through one memo get exact counts."""
    cache = MessageTokenCache(max_entries=10_000, max_prefixes=4)
    system = {"role": "system", "content": "policy " * 100}
    errors: list[BaseException] = []

    def conversation(seed: int) -> None:
        try:
            history = [system, {"role": "user", "content": f"I am user {seed % 3}"}]
            for turn in range(25):
                history.append({"role": "assistant" if turn % 2 else "user",
                                "content": f"turn {turn} of {seed}: " + "x " * (turn % 7)})
                assert count_messages(history, "gpt-4o", cache=cache) == count_messages(history, "gpt-4o",
                                                                                       cache=None)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=conversation, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.prefix_hits > 0


def test_tokprof_count_command(tmp_path, capsys) -> None:
    from tokprof.cli import main

    f = tmp_path / "prompt.json"
    f.write_text(json.dumps({"messages": COOKBOOK_TOOL_MESSAGES, "tools": COOKBOOK_TOOLS}))
    assert main(["count", "--model", "gpt-4o", "--json", str(f)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tokens"] == 101 and out["tokenizer"] == "o200k_base" and out["exact"] is True
    assert out["input_cost"] == "0.0002525" and out["currency"] == "USD"
    t = tmp_path / "text.txt"
    t.write_text("人工智能正在改变世界")
    assert main(["count", "-m", "kimi-k2", str(t)]) == 0
    text = capsys.readouterr().out
    assert "estimated" in text and "CNY" in text
    assert main(["count", "-m", "no-such-model", str(t)]) == 0
    assert "unknown" in capsys.readouterr().out
