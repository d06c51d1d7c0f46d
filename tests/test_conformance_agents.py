"""openai-agents: Runner.run / run_sync / run_streamed against the loopback server. The run's agent, turn,
tool and handoff spans nest, the LLM calls sit under the turn of the agent that made them, and each call's
usage is the one the server sent (recorded once, by the openai instrumentation)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from llm_server import Reply
from tokprof.profiler import profile, uninstrument

agents = pytest.importorskip("agents")  # in the test extra; CI installs it


@pytest.fixture(autouse=True)
def _setup(llm_server: Any):
    agents.set_trace_processors([])  # the SDK's default exporter would post traces to api.openai.com
    agents.set_default_openai_client(openai.AsyncOpenAI(base_url=llm_server.openai_url, api_key="test",
                                                        max_retries=0), use_for_tracing=False)
    yield
    uninstrument()


def build() -> Any:
    @agents.function_tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    billing = agents.Agent(name="billing", instructions="You bill.", model="gpt-4o")
    return agents.Agent(name="triage", instructions="Compute, then hand off.", tools=[add], handoffs=[billing],
                        model="gpt-4o")


SCRIPT = (
    Reply(tool_calls=[{"id": "call_1", "name": "add", "arguments": {"a": 2, "b": 3}}], input_tokens=100,
          cached_tokens=64, output_tokens=10),
    Reply(tool_calls=[{"id": "call_2", "name": "transfer_to_billing", "arguments": {}}], input_tokens=120,
          output_tokens=5),
    Reply(text="billed", input_tokens=150, cached_tokens=128, output_tokens=3),
)


def path_of(run: Any, span: Any) -> list[str]:
    by = {s.span_id: s for s in run.spans}
    out = []
    while span.parent_id in by:
        span = by[span.parent_id]
        out.append(f"{span.kind}:{span.name}")
    return out[::-1]


@pytest.mark.parametrize("mode", ["run_sync", "run", "run_streamed"])
def test_agent_tool_handoff_tree(mode: str, llm_server: Any) -> None:
    llm_server.script(*SCRIPT)
    triage = build()
    with profile("agents") as run:
        if mode == "run_sync":
            result = agents.Runner.run_sync(triage, "2+3, then bill")
        elif mode == "run":
            result = asyncio.run(agents.Runner.run(triage, "2+3, then bill"))
        else:
            async def streamed() -> Any:
                r = agents.Runner.run_streamed(triage, "2+3, then bill")
                async for _ in r.stream_events():
                    pass
                return r
            result = asyncio.run(streamed())
    assert result.final_output == "billed"
    llm = sorted(run.llm_spans(), key=lambda s: s.start_ns)
    assert [(s.llm.usage.input_tokens, s.llm.usage.cache_read_tokens, s.llm.usage.output_tokens) for s in llm] == [
        (100, 64, 10), (120, 0, 5), (150, 128, 3)]
    assert {s.llm.usage.source("input_tokens") for s in llm} == {"provider"}
    # each call under a turn of the agent that made it
    assert "agent:triage" in path_of(run, llm[0]) and "agent:triage" in path_of(run, llm[1])
    assert "agent:billing" in path_of(run, llm[2]) and "agent:triage" not in path_of(run, llm[2])
    (tool,) = [s for s in run.spans if s.kind == "tool"]
    assert tool.name == "add" and "agent:triage" in path_of(run, tool)
    (handoff,) = [s for s in run.spans if s.name.startswith("handoff")]
    assert handoff.name == "handoff triage -> billing"
