"""Overhead of the live integrations: a LangChain tool-calling agent and OpenAI SDK calls over loopback
HTTP, each run plain and inside ``profile()`` (handler auto-attached / SDK instrumented).

Run: ``python benchmarks/bench_integrations.py``. Prints the per-call time of each way and the ratio
profiled/plain. Nothing touches the network: the model is scripted and the HTTP server is on 127.0.0.1.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import openai  # noqa: E402

from llm_server import LLMServer  # noqa: E402
from tokprof import profile  # noqa: E402
from test_integrations_langchain import make_agent  # noqa: E402

AGENT_RUNS = 200
SDK_CALLS = 200


def per_call(fn, n: int) -> float:
    fn()  # warm up (imports, first-time setup)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    agent = make_agent()
    plain = per_call(lambda: agent.invoke("2+3"), AGENT_RUNS)

    def profiled_agent() -> None:
        with profile("bench"):
            agent.invoke("2+3")

    profiled = per_call(profiled_agent, AGENT_RUNS)
    print(f"langchain agent (2 model calls, 1 tool): plain {plain * 1e3:.2f} ms, "
          f"profiled {profiled * 1e3:.2f} ms, ratio {profiled / plain:.2f}x")

    with LLMServer() as server:
        client = openai.OpenAI(base_url=server.openai_url, api_key="test", max_retries=0)
        messages = [{"role": "user", "content": "hi"}]
        sdk_plain = per_call(lambda: client.chat.completions.create(model="gpt-4o-mini", messages=messages),
                             SDK_CALLS)
        with profile("bench-sdk", instrument=["openai"]):
            sdk_profiled = per_call(
                lambda: client.chat.completions.create(model="gpt-4o-mini", messages=messages), SDK_CALLS)
    print(f"openai chat.completions over loopback HTTP: plain {sdk_plain * 1e3:.2f} ms, "
          f"instrumented {sdk_profiled * 1e3:.2f} ms, ratio {sdk_profiled / sdk_plain:.2f}x")


if __name__ == "__main__":
    main()
