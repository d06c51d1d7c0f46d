"""LangChain/LangGraph: real langchain-core objects (a scripted chat model bound to real ``@tool`` tools),
recorded inside ``profile()`` with no ``callbacks=`` argument: tree, payloads and exact token totals."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Iterator

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from tokprof.profiler import hooks, profile, trace
from tokprof.profiler.integrations.langchain import TokprofCallbackHandler
from tokprof.profiler.model import Run, Span

# ---------------------------------------------------------------------------------------------------
# a scripted chat model: answers by looking at the conversation, so concurrent calls stay deterministic
# ---------------------------------------------------------------------------------------------------
FIRST_USAGE = {
    "input_tokens": 120,
    "output_tokens": 30,
    "total_tokens": 150,
    "input_token_details": {"cache_read": 64, "cache_creation": 16},
    "output_token_details": {"reasoning": 12},
}
SECOND_USAGE = {
    "input_tokens": 180,
    "output_tokens": 9,
    "total_tokens": 189,
    "input_token_details": {"cache_read": 112},
}


def scripted_reply(messages: list[BaseMessage]) -> AIMessage:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"The answer is {last.content}.", usage_metadata=dict(SECOND_USAGE),
                         response_metadata={"finish_reason": "stop", "model_name": "scripted-1"}, id="resp-2")
    a, b = (int(x) for x in str(last.content).split("+"))
    return AIMessage(
        content="",
        tool_calls=[{"name": "add", "args": {"a": a, "b": b}, "id": f"call_{a}_{b}", "type": "tool_call"}],
        usage_metadata=dict(FIRST_USAGE),
        response_metadata={"finish_reason": "tool_calls", "model_name": "scripted-1"},
        id="resp-1",
    )


class ScriptedChatModel(BaseChatModel):
    """A real ``BaseChatModel`` whose answers are scripted (with ``usage_metadata`` and tool calls)."""

    model_name: str = "scripted-1"
    temperature: float = 0.2

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(self, tools: list[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=scripted_reply(messages))])

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        reply = scripted_reply(messages)
        text = str(reply.content)
        pieces = [text[i:i + 4] for i in range(0, len(text), 4)] or [""]
        for piece in pieces:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece, id=reply.id))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        # The last chunk carries the tool calls and the usage, as provider integrations do.
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", id=reply.id,
            tool_call_chunks=[{"name": tc["name"], "args": __import__("json").dumps(tc["args"]), "id": tc["id"],
                               "index": i} for i, tc in enumerate(reply.tool_calls)],
            usage_metadata=reply.usage_metadata, response_metadata=reply.response_metadata,
        ))


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


TOOLS = {"add": add}
SYSTEM = "You are a careful calculator. Use the add tool."


def _final(chunks: Iterator[AIMessageChunk]) -> AIMessageChunk:
    out = None
    for c in chunks:
        out = c if out is None else out + c
    assert out is not None
    return out


def make_agent(stream: bool = False) -> RunnableLambda:
    """A small tool-calling loop around the real model and tool, as a named runnable."""
    model = ScriptedChatModel().bind_tools([add])

    def run(question: str) -> str:
        messages: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage(question)]
        while True:
            ai = _final(model.stream(messages)) if stream else model.invoke(messages)
            messages.append(ai)
            if not ai.tool_calls:
                return str(ai.content)
            for call in ai.tool_calls:
                messages.append(TOOLS[call["name"]].invoke(call))

    async def arun(question: str) -> str:
        messages: list[BaseMessage] = [SystemMessage(SYSTEM), HumanMessage(question)]
        while True:
            if stream:
                ai = None
                async for c in model.astream(messages):
                    ai = c if ai is None else ai + c
            else:
                ai = await model.ainvoke(messages)
            messages.append(ai)
            if not ai.tool_calls:
                return str(ai.content)
            for call in ai.tool_calls:
                messages.append(await TOOLS[call["name"]].ainvoke(call))

    return RunnableLambda(run, afunc=arun, name="agent")


# ---------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------
def named(run: Run, name: str) -> list[Span]:
    return [s for s in run.spans if s.name == name]


def parent_of(run: Run, s: Span) -> Span | None:
    return run.by_id().get(s.parent_id)


def totals(run: Run) -> dict[str, int]:
    out = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0, "reasoning": 0}
    for s in run.llm_spans():
        u = s.llm.usage
        out["input"] += u.input_tokens
        out["output"] += u.output_tokens
        out["cache_read"] += u.cache_read_tokens
        out["cache_write"] += u.cache_write_tokens
        out["reasoning"] += u.reasoning_tokens
    return out


EXPECTED_ONE_RUN = {"input": 300, "output": 39, "cache_read": 176, "cache_write": 16, "reasoning": 12}


def assert_agent_tree(run: Run, root_parent: str) -> None:
    """agent -> [llm, tool add, llm], usage exact, payloads converted to OpenAI format."""
    (agent,) = named(run, "agent")
    assert parent_of(run, agent).name == root_parent
    llms = run.llm_spans()
    assert len(llms) == 2
    assert all(parent_of(run, s) is agent for s in llms)
    (tool_span,) = [s for s in run.spans if s.kind == "tool" and s.name == "add"]
    assert tool_span.name == "add" and parent_of(run, tool_span) is agent
    assert tool_span.attributes["input"] == '{"a": 2, "b": 3}'
    assert tool_span.attributes["output"] == "5"
    assert tool_span.attributes["tool_call_id"] == "call_2_3"
    assert llms[0].start_ns < tool_span.start_ns < llms[1].start_ns
    assert all(s.end_ns is not None and s.status == "ok" for s in run.spans)

    first, second = llms[0].llm, llms[1].llm
    assert first.provider == "openai" and first.model == "scripted-1"
    assert first.params.get("temperature") == 0.2
    assert first.messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "2+3"}]
    assert first.tools == [convert_to_openai_tool(add)]
    assert first.output["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert second.messages[-2]["tool_calls"][0]["id"] == "call_2_3"
    assert second.messages[-1] == {"role": "tool", "tool_call_id": "call_2_3", "content": "5", "name": "add"}
    assert second.output["content"] == "The answer is 5."
    assert second.finish_reason == "stop"

    u = first.usage
    assert (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens, u.reasoning_tokens) == (
        120, 30, 64, 16, 12)
    assert all(u.source(f) == "provider" for f in ("input_tokens", "output_tokens", "cache_read_tokens",
                                                   "cache_write_tokens", "reasoning_tokens"))
    assert not second.usage.known("cache_write_tokens")  # not reported -> unknown, not zero
    assert totals(run) == EXPECTED_ONE_RUN


# ---------------------------------------------------------------------------------------------------
# the done-when cases
# ---------------------------------------------------------------------------------------------------
def test_invoke_records_tree_and_totals_without_callbacks() -> None:
    agent = make_agent()
    with profile("calc") as run:
        assert agent.invoke("2+3") == "The answer is 5."
    assert_agent_tree(run, "calc")
    assert run.roots()[0].name == "calc"


def test_ainvoke() -> None:
    agent = make_agent()

    async def main() -> Run:
        async with profile("calc-async") as run:
            assert await agent.ainvoke("2+3") == "The answer is 5."
        return run

    assert_agent_tree(asyncio.run(main()), "calc-async")


def test_stream_inside_the_agent() -> None:
    agent = make_agent(stream=True)
    with profile("calc-stream") as run:
        assert agent.invoke("2+3") == "The answer is 5."
    assert_agent_tree(run, "calc-stream")
    assert "time_to_first_token_ns" in run.llm_spans()[1].attributes


def test_astream_inside_the_agent() -> None:
    agent = make_agent(stream=True)

    async def main() -> Run:
        async with profile("calc-astream") as run:
            assert await agent.ainvoke("2+3") == "The answer is 5."
        return run

    assert_agent_tree(asyncio.run(main()), "calc-astream")


def test_agent_stream_and_astream_methods() -> None:
    agent = make_agent()
    with profile("s") as run:
        assert "".join(agent.stream("2+3")) == "The answer is 5."
    assert_agent_tree(run, "s")

    async def main() -> Run:
        async with profile("as") as arun:
            assert "".join([c async for c in agent.astream("2+3")]) == "The answer is 5."
        return arun

    assert_agent_tree(asyncio.run(main()), "as")


def test_batch_runs_each_agent_in_its_own_subtree() -> None:
    agent = make_agent()
    with profile("batch") as run:
        assert agent.batch(["2+3", "4+5", "1+1"]) == ["The answer is 5.", "The answer is 9.", "The answer is 2."]
    agents = named(run, "agent")
    assert len(agents) == 3 and all(parent_of(run, a).name == "batch" for a in agents)
    for a in agents:
        kids = [s for s in run.spans if s.parent_id == a.span_id]
        assert sorted(s.kind for s in kids) == ["llm", "llm", "tool"]
    assert totals(run) == {k: 3 * v for k, v in EXPECTED_ONE_RUN.items()}


def test_chat_model_batch_directly() -> None:
    model = ScriptedChatModel()
    with profile("b") as run:
        model.batch([[HumanMessage("1+2")], [HumanMessage("3+4")]])
    llms = run.llm_spans()
    assert len(llms) == 2 and all(parent_of(run, s).name == "b" for s in llms)
    assert sorted(s.llm.messages[0]["content"] for s in llms) == ["1+2", "3+4"]


def test_nests_under_enclosing_trace_and_trace_inside_tool_nests_under_tool() -> None:
    @trace(name="lookup-helper")
    def helper(x: int) -> int:
        return x * 2

    @tool
    def double(x: int) -> int:
        """Double a number."""
        return helper(x)

    agent = make_agent()

    @trace(name="outer", kind="agent")
    def outer() -> str:
        double.invoke({"x": 4})
        return agent.invoke("2+3")

    with profile("nest") as run:
        outer()
    assert_agent_tree(run, "outer")
    (helper_span,) = named(run, "lookup-helper")
    assert parent_of(run, helper_span).name == "double"
    assert parent_of(run, parent_of(run, helper_span)).name == "outer"
    # Nothing leaks: after the LangChain runs the active span is back where it was.
    assert hooks.current_span() is None


def test_errors_are_recorded_and_propagate() -> None:
    @tool
    def broken(x: int) -> int:
        """Always fails."""
        raise RuntimeError("tool exploded")

    with profile("err") as run:
        with pytest.raises(RuntimeError, match="tool exploded"):
            broken.invoke({"x": 1})
    (s,) = named(run, "broken")
    assert s.status == "error" and "tool exploded" in s.error


def test_nothing_recorded_outside_profile_and_handler_detached_after() -> None:
    agent = make_agent()
    assert agent.invoke("2+3") == "The answer is 5."
    with profile("one") as run:
        agent.invoke("2+3")
    assert agent.invoke("2+3") == "The answer is 5."
    assert len(run.llm_spans()) == 2


def test_langchain_false_disables_auto_attach() -> None:
    with profile("off", langchain=False) as run:
        make_agent().invoke("2+3")
    assert run.llm_spans() == []


def test_explicit_handler_is_not_duplicated() -> None:
    with profile("explicit") as run:
        make_agent().invoke("2+3", config={"callbacks": [TokprofCallbackHandler()]})
    assert len(run.llm_spans()) == 2


def test_threads_started_by_user_code_still_attach() -> None:
    agent = make_agent()
    results: list[str] = []
    with profile("threads") as run:
        t = threading.Thread(target=hooks.run_in_context(lambda: results.append(agent.invoke("2+3"))))
        t.start()
        t.join()
    assert results == ["The answer is 5."]
    assert_agent_tree(run, "threads")


# ---------------------------------------------------------------------------------------------------
# LangGraph's prebuilt ReAct agent (offline: the model is the scripted one)
# ---------------------------------------------------------------------------------------------------
def _react_agent() -> Any:
    prebuilt = pytest.importorskip("langgraph.prebuilt")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return prebuilt.create_react_agent(ScriptedChatModel(), [add], prompt=SYSTEM)


def _assert_graph(run: Run) -> None:
    llms = run.llm_spans()
    tools = [s for s in run.spans if s.kind == "tool"]
    assert len(llms) == 2 and len(tools) == 1
    (graph,) = [s for s in run.spans if s.kind == "agent" and s.parent_id is not None]
    idx = run.by_id()

    def ancestors(s: Span) -> list[str]:
        out = []
        while s.parent_id in idx:
            s = idx[s.parent_id]
            out.append(s.span_id)
        return out

    assert all(graph.span_id in ancestors(s) for s in [*llms, *tools])
    assert totals(run) == EXPECTED_ONE_RUN
    assert llms[1].llm.messages[-1]["role"] == "tool"


def test_langgraph_react_agent_invoke_and_stream() -> None:
    agent = _react_agent()
    with profile("graph") as run:
        out = agent.invoke({"messages": [HumanMessage("2+3")]})
    assert out["messages"][-1].content == "The answer is 5."
    _assert_graph(run)

    with profile("graph-stream") as run2:
        list(agent.stream({"messages": [HumanMessage("2+3")]}, stream_mode="values"))
    _assert_graph(run2)


def test_langgraph_react_agent_ainvoke() -> None:
    agent = _react_agent()

    async def main() -> Run:
        async with profile("graph-async") as run:
            await agent.ainvoke({"messages": [HumanMessage("2+3")]})
        return run

    _assert_graph(asyncio.run(main()))


# ---------------------------------------------------------------------------------------------------
# LangChain model that calls the real OpenAI SDK, with both integrations on: one span, not two
# ---------------------------------------------------------------------------------------------------
class SDKBackedChatModel(BaseChatModel):
    """A LangChain chat model that calls the OpenAI SDK (like ``ChatOpenAI``) against the loopback server."""

    base_url: str

    @property
    def _llm_type(self) -> str:
        return "sdk-backed"

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        import openai
        from langchain_core.messages import convert_to_openai_messages

        client = openai.OpenAI(base_url=self.base_url, api_key="test", max_retries=0)
        resp = client.chat.completions.create(model="gpt-4o-mini", messages=convert_to_openai_messages(messages))
        u = resp.usage
        msg = AIMessage(content=resp.choices[0].message.content or "", usage_metadata={
            "input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens, "total_tokens": u.total_tokens,
            "input_token_details": {"cache_read": u.prompt_tokens_details.cached_tokens}})
        return ChatResult(generations=[ChatGeneration(message=msg)])


def test_sdk_call_inside_a_langchain_model_is_not_counted_twice(llm_server: Any) -> None:
    from llm_server import Reply
    from tokprof.profiler import uninstrument

    llm_server.script(Reply(input_tokens=500, cached_tokens=256, output_tokens=20))
    model = SDKBackedChatModel(base_url=llm_server.openai_url)
    try:
        with profile("both", instrument=["openai"]) as run:
            model.invoke("hello")
    finally:
        uninstrument("openai")
    (span,) = run.llm_spans()
    assert span.name == "SDKBackedChatModel"
    u = span.llm.usage
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens) == (500, 256, 20)
    assert len(llm_server.requests) == 1


def test_langchain_cache_hits_bill_nothing() -> None:
    from langchain_core.caches import InMemoryCache
    from langchain_core.globals import get_llm_cache, set_llm_cache

    previous = get_llm_cache()
    set_llm_cache(InMemoryCache())
    try:
        model = ScriptedChatModel()
        with profile("cache") as run:
            model.invoke([HumanMessage("2+3")])
            model.invoke([HumanMessage("2+3")])
    finally:
        set_llm_cache(previous)
    miss, hit = run.llm_spans()
    assert miss.llm.usage.input_tokens == 120 and "served_by" not in (miss.attributes or {})
    assert hit.attributes["served_by"] == "langchain-cache"
    assert (hit.llm.usage.input_tokens, hit.llm.usage.output_tokens) == (0, 0)
    assert hit.attributes["cached_usage"]["input_tokens"] == 120


def test_plain_llms_and_retrievers_become_spans() -> None:
    from langchain_core.documents import Document
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.retrievers import BaseRetriever

    class Shelf(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any = None) -> list[Document]:
            return [Document(page_content=f"doc about {query}"), Document(page_content="another")]

    chain = Shelf() | RunnableLambda(lambda docs: docs[0].page_content) | FakeListLLM(responses=["summary"])
    with profile("rag") as run:
        assert chain.invoke("cats") == "summary"
    (retriever,) = [s for s in run.spans if s.kind == "retriever"]
    assert retriever.name == "Shelf" and retriever.attributes["input"] == "cats"
    assert retriever.attributes["documents"] == 2
    (llm,) = run.llm_spans()
    assert llm.llm.messages == [{"role": "user", "content": "doc about cats"}]
    assert llm.llm.output == {"role": "assistant", "content": "summary"}
    seq = run.by_id()[llm.parent_id]
    assert seq.name == "RunnableSequence" and run.by_id()[retriever.parent_id] is seq


def test_concurrent_async_agents_keep_separate_subtrees() -> None:
    agent = make_agent(stream=True)

    async def main() -> Run:
        async with profile("gather") as run:
            answers = await asyncio.gather(agent.ainvoke("2+3"), agent.ainvoke("4+5"), agent.abatch(["1+1", "2+2"]))
        assert answers[:2] == ["The answer is 5.", "The answer is 9."]
        return run

    run = asyncio.run(main())
    agents = named(run, "agent")
    assert len(agents) == 4
    for a in agents:
        kids = [s for s in run.spans if s.parent_id == a.span_id]
        assert sorted(s.kind for s in kids) == ["llm", "llm", "tool"]
        tool_input = next(s for s in kids if s.kind == "tool").attributes["input"]
        x, y = (int(v) for v in next(k for k in kids if k.llm).llm.messages[1]["content"].split("+"))
        assert tool_input == f'{{"a": {x}, "b": {y}}}'
    assert totals(run) == {k: 4 * v for k, v in EXPECTED_ONE_RUN.items()}
    assert hooks.current_span() is None
