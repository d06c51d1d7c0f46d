"""The compression passes live: on OpenAI-style lists and as a langchain-core message transform."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableLambda

from compression_runs import reservation, transcript
from tokprof.optimizers.compression.mask import PLACEHOLDER_PREFIX
from tokprof.optimizers.live import compress_messages, message_transform
from tokprof.optimizers.base import make_pass


def test_compress_messages_is_the_simulated_pass_on_a_message_list():
    msgs = transcript()[:-1]
    out = compress_messages(msgs, ["minify", "observation-mask", "dedupe"],
                            options={"observation-mask": {"threshold_tokens": 100}})
    expected = msgs
    for name, opts in (("minify", {}), ("observation-mask", {"threshold_tokens": 100}), ("dedupe", {})):
        expected = make_pass(name, **opts).compress(expected, None).messages
    assert out == expected
    assert msgs == transcript()[:-1]  # input untouched
    assert any(str(m.get("content")).startswith(PLACEHOLDER_PREFIX) for m in out)


def test_underscore_keyword_options():
    msgs = transcript()[:-1]
    a = compress_messages(msgs, ["observation-mask"], observation_mask={"threshold_tokens": 100})
    b = compress_messages(msgs, ["observation-mask"], options={"observation-mask": {"threshold_tokens": 100}})
    assert a == b != msgs


def test_unknown_pass_and_option_are_clear_errors():
    with pytest.raises(KeyError, match="unknown pass"):
        compress_messages([], ["no-such-pass"])
    with pytest.raises(TypeError, match="unknown option"):
        compress_messages([], ["minify"], options={"minify": {"nope": 1}})


def _lc_conversation():
    big = reservation("XEWRD9", "mia_li_3668")
    return [SystemMessage("You are an airline agent."), HumanMessage("check XEWRD9"),
            AIMessage("", tool_calls=[{"id": "c1", "name": "get_reservation_details",
                                       "args": {"reservation_id": "XEWRD9"}}]),
            ToolMessage(big, tool_call_id="c1"), AIMessage("It is JFK to SEA."), HumanMessage("and again?"),
            AIMessage("", tool_calls=[{"id": "c2", "name": "get_reservation_details",
                                       "args": {"reservation_id": "XEWRD9"}}]),
            ToolMessage(big, tool_call_id="c2"), AIMessage("Same."), HumanMessage("thanks")]


def test_langchain_transform_returns_real_messages_and_keeps_untouched_objects():
    msgs = _lc_conversation()
    t = message_transform(["minify", "observation-mask", "dedupe"],
                          options={"observation-mask": {"threshold_tokens": 50, "keep_turns": 2}})
    assert isinstance(t, RunnableLambda)
    out = t.invoke(msgs)
    assert [type(m) for m in out] == [type(m) for m in msgs]
    assert out[0] is msgs[0] and out[1] is msgs[1]  # unchanged messages are the same objects
    assert isinstance(out[3], ToolMessage) and out[3].tool_call_id == "c1"
    assert out[3].content.startswith(PLACEHOLDER_PREFIX) and "HAT008" in out[3].content
    assert isinstance(out[7], ToolMessage) and out[7].tool_call_id == "c2"
    assert len(out[7].content) < len(msgs[7].content)  # the recent copy is minified, not masked
    assert "HAT008" in out[7].content


def test_transform_runs_before_a_real_chat_model_in_a_chain():
    model = FakeListChatModel(responses=["ok"])
    seen = []

    def spy(messages):
        seen.append(messages)
        return messages

    chain = message_transform(["minify"]) | RunnableLambda(spy) | model
    assert chain.invoke(_lc_conversation()).content == "ok"
    assert '"reservation_id":"XEWRD9"' in seen[0][3].content


def test_history_budget_live_uses_a_langchain_chat_model_summarizer_once_per_block():
    model = FakeListChatModel(responses=["User checked XEWRD9 twice."] * 10)
    msgs = transcript()[:-1]
    opts = {"history-budget": {"budget_tokens": 900, "keep_turns": 1, "cache_aware": False}}
    out = compress_messages(msgs, ["history-budget"], options=opts, summarizer=model)
    assert out[1]["content"].startswith("[Summary") and "User checked XEWRD9 twice." in out[1]["content"]


def test_a_failing_pass_never_breaks_the_agent():
    def boom(_):
        raise RuntimeError("summarizer down")

    msgs = transcript()[:-1]
    opts = {"history-budget": {"budget_tokens": 900, "keep_turns": 1, "cache_aware": False, "summarizer": boom}}
    assert compress_messages(msgs, ["history-budget"], options=opts) == msgs


def test_dedupe_before_mask_never_leaves_a_reference_to_a_masked_output():
    """Either order of dedupe and observation-mask keeps the content of a recent copy somewhere."""
    msgs = transcript()[:-1]
    opts = {"observation-mask": {"threshold_tokens": 300, "keep_turns": 2}}
    for order in (["minify", "dedupe", "observation-mask"], ["minify", "observation-mask", "dedupe"]):
        out = compress_messages(msgs, order, options=opts)
        assert out[3]["content"].startswith(PLACEHOLDER_PREFIX)  # the first copy is old: masked
        assert "HAT008" in out[11]["content"], order  # the recent copy


def test_tool_cache_reference_to_a_masked_output_gets_its_content_back():
    msgs = transcript()[:-1]
    msgs[11] = {**msgs[11], "content": "[same result as the earlier get_reservation_details call c1]"}
    out = make_pass("observation-mask", threshold_tokens=100, keep_turns=2).compress(msgs, None).messages
    assert out[3]["content"].startswith(PLACEHOLDER_PREFIX)
    assert out[11]["content"] == transcript()[3]["content"]
