"""Red team, client side: paths and usage dialects the conformance matrix does not drive, through the real
client libraries over HTTP to the loopback server (tests/llm_server.py).

* litellm bound with ``from litellm import completion`` *before* the profile (was: 0 calls recorded).
* A provider usage block with counts no provider can mean (negative, infinite, fractional) is never taken as
  provider truth (was: ``-5`` recorded as provider input; ``inf`` raised ``OverflowError`` inside tokprof).
* A chat stream whose server ignores ``stream_options.include_usage`` is counted locally and labelled so.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import types
from typing import Any, Iterator

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its price map

import llm_server as server_module  # noqa: E402
from llm_server import Reply  # noqa: E402
from tokprof.profiler import profile, uninstrument  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _restore() -> Iterator[None]:
    yield
    uninstrument()


@pytest.fixture
def user_module() -> Iterator[types.ModuleType]:
    """A user's module that did ``from litellm import completion`` (and an alias) before any profile."""
    import litellm

    mod = types.ModuleType("redteam_user_agent")
    exec("from litellm import completion, acompletion\nfrom litellm import completion as ask\n", mod.__dict__)
    assert mod.completion is litellm.completion
    sys.modules[mod.__name__] = mod
    yield mod
    sys.modules.pop(mod.__name__, None)


def _usage(run: Any) -> list[dict[str, Any]]:
    return [{k: (getattr(s.llm.usage, k), s.llm.usage.source(k)) for k in s.llm.usage.sources}
            for s in run.llm_spans()]


def test_litellm_bound_before_the_profile_is_recorded(user_module: types.ModuleType, llm_server: Any) -> None:
    import litellm

    original = litellm.completion
    kw = dict(model="openai/gpt-4o", messages=MESSAGES, api_base=llm_server.openai_url, api_key="t")
    llm_server.script(Reply(input_tokens=100, output_tokens=10), Reply(input_tokens=200, output_tokens=20),
                      Reply(input_tokens=300, output_tokens=30))

    async def go() -> Any:
        with profile("bound") as run:
            user_module.completion(**kw)
            user_module.ask(**kw)
            await user_module.acompletion(**kw)
        return run

    run = asyncio.run(go())
    got = _usage(run)
    assert [(u["input_tokens"], u["output_tokens"]) for u in got] == [
        ((100, "provider"), (10, "provider")), ((200, "provider"), (20, "provider")),
        ((300, "provider"), (30, "provider"))]
    assert [s.name for s in run.llm_spans()] == ["litellm.completion", "litellm.completion", "litellm.acompletion"]
    # the profile is over: the user's names are the library's functions again
    assert user_module.completion is original and user_module.ask is original
    assert user_module.acompletion is litellm.acompletion


def test_litellm_rebinding_keeps_another_librarys_later_binding(user_module: types.ModuleType, llm_server: Any) -> None:
    def theirs(*a: Any, **k: Any) -> Any:
        return "theirs"

    with profile("bound"):
        user_module.completion = theirs  # another tracer rebinds the name meanwhile
    assert user_module.completion is theirs


BAD_USAGES = [
    ("negative-prompt", {"prompt_tokens": -5, "completion_tokens": 3}, "input_tokens"),
    ("infinite-prompt", {"prompt_tokens": 1e999, "completion_tokens": 3}, "input_tokens"),
    ("fractional-prompt", {"prompt_tokens": 12.7, "completion_tokens": 3}, "input_tokens"),
    ("negative-cached", {"prompt_tokens": 10, "completion_tokens": 3,
                         "prompt_tokens_details": {"cached_tokens": -4}}, "cache_read_tokens"),
    ("deepseek-negative-hit", {"prompt_tokens": 10, "completion_tokens": 3, "prompt_cache_hit_tokens": -8,
                               "prompt_cache_miss_tokens": 18}, "cache_read_tokens"),
]


@pytest.mark.parametrize("usage,field", [(u, f) for _, u, f in BAD_USAGES], ids=[n for n, _, _ in BAD_USAGES])
def test_impossible_provider_counts_are_not_provider_truth(usage: dict[str, Any], field: str, llm_server: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    import openai

    llm_server.script(Reply(usage=usage))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    with caplog.at_level(logging.WARNING), profile("bad") as run:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (span,) = run.llm_spans()
    u = span.llm.usage
    assert "internal error" not in caplog.text
    assert u.source(field) != "provider"
    assert all(getattr(u, k) >= 0 for k in u.sources)
    assert u.output_tokens == 3 and u.source("output_tokens") == "provider"  # the sane field is kept


@pytest.mark.parametrize("asked", [None, True, False], ids=["tokprof-asks", "caller-asks", "caller-declines"])
def test_chat_stream_without_usage_is_counted_never_provider(asked: bool | None, llm_server: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import openai

    real = server_module._Handler._chat_chunks
    monkeypatch.setattr(server_module._Handler, "_chat_chunks",
                        lambda self, body, reply, include: real(self, body, reply, False))  # a server that ignores it
    llm_server.script(Reply(text="Hello there friend", input_tokens=100, output_tokens=10))
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    kw: dict[str, Any] = dict(model="gpt-4o", messages=MESSAGES, stream=True)
    if asked is not None:
        kw["stream_options"] = {"include_usage": asked}
    with profile("stream") as run:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(**kw) if c.choices)
    assert text == "Hello there friend"
    (span,) = run.llm_spans()
    u = span.llm.usage
    assert u.input_tokens > 0 and u.output_tokens > 0
    assert set(u.sources.values()) <= {"counted", "estimated"}, u.sources
    assert u.input_tokens != 100  # the server's own figure was never sent, so it cannot have been read
