"""OpenAI-compatible streams whose chunks carry no ``index`` (some compatible servers omit it; the SDK then
gives ``None``): the text and tool call are kept. Before, a choice with ``index: None`` was skipped as "not
the first choice", so the answer was lost and the call looked cut off."""

from __future__ import annotations

from types import SimpleNamespace as NS

from tokprof.profiler.integrations.openai import ChatAccumulator
from tokprof.profiler.model import LLMCall


def _chunk(content=None, finish=None, tool=None, index=None):  # noqa: ANN001, ANN202
    delta = NS(content=content, tool_calls=[tool] if tool else None)
    return NS(id="c1", model="m", usage=None, choices=[NS(index=index, delta=delta, finish_reason=finish)])


def test_text_and_tool_call_without_index_are_kept() -> None:
    acc = ChatAccumulator()
    fn = NS(name="lookup", arguments='{"id": ')
    acc.observe(_chunk(content="Hel"))
    acc.observe(_chunk(content="lo"))
    acc.observe(_chunk(tool=NS(index=None, id="t1", function=fn)))
    acc.observe(_chunk(tool=NS(index=None, id=None, function=NS(name=None, arguments='7}'))))
    acc.observe(_chunk(finish="tool_calls"))
    call = LLMCall(provider="openai", model="m")
    acc.finish(call)
    assert call.output["content"] == "Hello"
    assert call.output["tool_calls"] == [{"id": "t1", "type": "function",
                                          "function": {"name": "lookup", "arguments": '{"id": 7}'}}]
    assert call.finish_reason == "tool_calls"


def test_a_second_choice_is_still_ignored() -> None:
    acc = ChatAccumulator()
    acc.observe(_chunk(content="first", index=0))
    acc.observe(_chunk(content="second", index=1))
    call = LLMCall(provider="openai", model="m")
    acc.finish(call)
    assert call.output["content"] == "first"
