"""Live optimization: the same LangChain agent, before and after ``profile(optimize=[...])``.

    python examples/live_optimize.py

The agent searches a product catalogue (a big JSON tool output), searches again with the same query,
and answers. The chat model is tokprof's offline scripted model (a real ``BaseChatModel`` that reports
usage computed from the prompt it receives), so this runs anywhere; swap in ``ChatAnthropic`` or
``ChatOpenAI`` and nothing else changes.

Before::

    with profile("catalogue-agent") as run:
        answer = agent(model)

After — the only change is the ``optimize=`` list::

    with profile("catalogue-agent", optimize=["response-cache", "prompt-cache", "dedupe",
                                              "observation-mask", "minify"]) as run:
        answer = agent(model)
    run.metadata["live_passes"]   # which passes were active
    run.metadata["live_stats"]    # what they did (characters removed, cache hits, breakpoints)
"""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool

from tokprof import profile
from tokprof.scripted_model import ScriptedChatModel, message_text

CATALOGUE = [{"sku": f"SKU-{i:04d}", "name": f"Trail shoe model {i}", "price_usd": 60 + i % 50,
              "sizes": list(range(36, 47)), "colours": ["black", "blue", "olive"], "in_stock": i % 7 != 0}
             for i in range(120)]


@tool
def search_catalogue(query: str) -> str:
    """Search the product catalogue; returns every matching product as JSON."""
    return json.dumps([p for p in CATALOGUE if query.lower() in p["name"].lower()], indent=2)


def policy(messages: list) -> AIMessage:
    """The scripted model: search, search again to double-check, then answer from the results."""
    calls = [tc for m in messages if m.type == "ai" for tc in m.tool_calls]
    if len(calls) < 2:
        return AIMessage(content="Searching the catalogue.", tool_calls=[
            {"name": "search_catalogue", "args": {"query": "trail shoe"}, "id": f"call_{len(calls)}"}])
    results = next(json.loads(message_text(m)) for m in messages
                   if m.type == "tool" and message_text(m).startswith("["))
    in_stock = sum(1 for p in results if p["in_stock"])
    return AIMessage(content=f"We have {len(results)} trail shoe models, {in_stock} of them in stock.")


def agent(model: ScriptedChatModel) -> str:
    bound = model.bind_tools([search_catalogue])
    messages = [SystemMessage("You are a shop assistant. Use the tools."), HumanMessage("Any trail shoes?")]
    while True:
        ai = bound.invoke(messages)
        messages.append(ai)
        if not ai.tool_calls:
            return message_text(ai)
        messages += [search_catalogue.invoke(tc) for tc in ai.tool_calls]


def main() -> None:
    with profile("catalogue-agent") as before:
        answer_before = agent(ScriptedChatModel(policy=policy))
    with profile("catalogue-agent", optimize=["response-cache", "prompt-cache", "dedupe", "observation-mask",
                                              "minify"]) as after:
        answer_after = agent(ScriptedChatModel(policy=policy))
    assert answer_before == answer_after, "the live passes changed the agent's answer"
    b, a = before.summary(), after.summary()
    print(f"answer (both runs): {answer_after}")
    print(f"live passes: {', '.join(after.metadata['live_passes'])}")
    print(f"input tokens {b.tokens['input']:,} -> {a.tokens['input']:,} "
          f"(cache reads {a.tokens['cache_read']:,}); cost {b.cost:.5f} -> {a.cost:.5f} USD  [measured]")
    print(f"what the passes did: {after.metadata['live_stats']}")


if __name__ == "__main__":
    main()
