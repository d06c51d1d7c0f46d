"""No silent zero (issue 14 point 2) and streams that always get usage without changing what the caller sees
(point 4): real SDKs against the loopback server (tests/llm_server.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.resources.chat.completions.completions import Completions

from llm_server import Reply
from tokprof.profiler import profile, uninstrument
from tokprof.profiler.integrations import instrumented

TESTS = Path(__file__).resolve().parent
MESSAGES = [{"role": "user", "content": "What is 2+3?"}]
DS_USAGE = {"prompt_tokens": 1200, "completion_tokens": 50, "prompt_cache_hit_tokens": 1024,
            "prompt_cache_miss_tokens": 176}


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("TOKPROF_INSTRUMENT", raising=False)
    yield
    uninstrument()


@pytest.fixture
def client(llm_server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)


# ---------------------------------------------------------------------------------------------------
# point 2: instrumented by default, restored after, opt-out, warning
# ---------------------------------------------------------------------------------------------------
def test_imported_sdk_is_instrumented_by_default_and_restored(client: openai.OpenAI, llm_server: Any) -> None:
    original = Completions.__dict__["create"]
    llm_server.script(Reply(usage=DS_USAGE))
    with profile("default") as run:
        assert "openai" in instrumented()
        client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    (s,) = run.llm_spans()
    assert (s.llm.usage.input_tokens, s.llm.usage.cache_read_tokens) == (1200, 1024)
    assert Completions.__dict__["create"] is original  # the very object restored
    assert "openai" not in instrumented()


def test_nested_profiles_keep_the_patch_until_the_last_exits(client: openai.OpenAI) -> None:
    original = Completions.__dict__["create"]
    with profile("outer"):
        with profile("inner"):
            pass
        assert Completions.__dict__["create"] is not original
    assert Completions.__dict__["create"] is original


@pytest.mark.parametrize("how", ["argument", "env"])
def test_opt_out(how: str, client: openai.OpenAI, llm_server: Any, monkeypatch: pytest.MonkeyPatch,
                 caplog: pytest.LogCaptureFixture) -> None:
    kwargs: dict[str, Any] = {}
    if how == "argument":
        kwargs["instrument"] = False
    else:
        monkeypatch.setenv("TOKPROF_INSTRUMENT", "0")
    caplog.set_level(logging.WARNING, logger="tokprof")
    with profile("opted-out", **kwargs) as run:
        assert "openai" not in instrumented()
        client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    assert run.llm_spans() == []
    # ...and the zero is not silent: one warning saying what to do.
    warnings = [r for r in caplog.records if "0 LLM calls" in r.getMessage()]
    assert len(warnings) == 1 and "instrument=False" in warnings[0].getMessage()


def test_zero_calls_with_an_sdk_imported_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tokprof")
    with profile("idle") as run:
        pass
    msgs = [r.getMessage() for r in caplog.records if "0 LLM calls" in r.getMessage()]
    assert len(msgs) == 1 and "openai" in msgs[0]
    assert run.metadata["no_llm_calls_warning"] is True


def test_sdk_imported_inside_the_profile_is_instrumented(llm_server: Any) -> None:
    """``tokprof run script.py``: the script imports its SDK after the profile opened."""
    script = textwrap.dedent(f"""
        import sys
        from tokprof.profiler import profile
        assert "openai" not in sys.modules
        with profile("late-import") as run:
            import openai
            c = openai.OpenAI(base_url={llm_server.openai_url!r}, api_key="t", max_retries=0)
            c.chat.completions.create(model="gpt-4o", messages=[{{"role": "user", "content": "hi"}}])
        print("llm_calls", len(run.llm_spans()), run.llm_spans()[0].llm.usage.input_tokens)
    """)
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "llm_calls 1 42" in out.stdout  # 42: the server's default prompt_tokens


# ---------------------------------------------------------------------------------------------------
# point 2: the budget marker fails a test that recorded no LLM call
# ---------------------------------------------------------------------------------------------------
pytest_plugins = ["pytester"]
_BLOCK = [a for name in ("hypothesispytest", "langsmith_plugin", "benchmark", "anyio", "cacheprovider")
          for a in ("-p", f"no:{name}")]


@pytest.mark.parametrize("allow", [False, True])
def test_budget_marker_with_no_llm_calls(pytester: pytest.Pytester, allow: bool) -> None:
    flag = ", allow_no_calls=True" if allow else ""
    pytester.makepyfile(test_inner=f"""
        import pytest

        @pytest.mark.token_budget(max_total_tokens=100{flag})
        def test_agent():
            pass  # an agent whose client tokprof did not see
    """)
    result = pytester.runpytest(*_BLOCK)
    if allow:
        result.assert_outcomes(passed=1)
    else:
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["*0 LLM calls were recorded*allow_no_calls=True*"])


# ---------------------------------------------------------------------------------------------------
# point 4: usage asked for, the caller's iterator unchanged; nothing reported -> estimated, said why
# ---------------------------------------------------------------------------------------------------
def _view(chunks: list[Any]) -> list[tuple[Any, ...]]:
    """What a caller reads from chat chunks (ids and timestamps differ per request)."""
    return [(tuple((c.index, c.delta.content, c.finish_reason) for c in ch.choices), ch.usage) for ch in chunks]


@pytest.mark.parametrize("call", ["create", "raw"])
def test_stream_yields_what_it_would_without_tokprof(call: str, client: openai.OpenAI, llm_server: Any) -> None:
    def stream() -> list[Any]:
        llm_server.script(Reply(usage=DS_USAGE))
        if call == "raw":
            return list(client.chat.completions.with_raw_response.create(
                model="deepseek-chat", messages=MESSAGES, stream=True).parse())
        return list(client.chat.completions.create(model="deepseek-chat", messages=MESSAGES, stream=True))

    with profile("plain", instrument=False):
        plain = stream()
    assert "stream_options" not in llm_server.requests[-1].body
    with profile("traced") as run:
        traced = stream()
    assert llm_server.requests[-1].body["stream_options"] == {"include_usage": True}  # tokprof asked
    assert _view(traced) == _view(plain)  # ...and hid the usage-only chunk
    (s,) = run.llm_spans()
    assert (s.llm.usage.input_tokens, s.llm.usage.cache_read_tokens, s.llm.usage.output_tokens) == (1200, 1024, 50)
    assert s.llm.usage.source("input_tokens") == "provider"


def test_caller_usage_choice_is_kept_and_missing_usage_is_estimated(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(usage=DS_USAGE))
    with profile("refused") as run:
        chunks = list(client.chat.completions.create(model="deepseek-reasoner", messages=MESSAGES, stream=True,
                                                     stream_options={"include_usage": False}))
    assert llm_server.requests[-1].body["stream_options"] == {"include_usage": False}
    assert all(c.usage is None for c in chunks)
    (s,) = run.llm_spans()
    u = s.llm.usage
    assert u.input_tokens > 0 and u.output_tokens > 0
    # a local count cannot know cache hits or hidden reasoning: estimated, and the span says why
    assert u.source("input_tokens") == "estimated" and u.source("output_tokens") == "estimated"
    assert "no usage" in s.attributes["usage_note"]


def test_partial_usage_input_zero_is_not_truth(client: openai.OpenAI, llm_server: Any) -> None:
    llm_server.script(Reply(usage={"prompt_tokens": 0, "completion_tokens": 9}))
    with profile("partial") as run:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (s,) = run.llm_spans()
    from tokprof.profiler.accounting import fill_usage

    fill_usage(s.llm)
    assert s.llm.usage.source("input_tokens") == "counted" and s.llm.usage.input_tokens > 0
    assert s.llm.usage.output_tokens == 9 and s.llm.usage.source("output_tokens") == "provider"
    assert "0 input tokens" in s.attributes["usage_note"]


def test_partial_usage_cache_above_input_is_reconciled(client: openai.OpenAI, llm_server: Any) -> None:
    # a gateway reporting Anthropic-style input (cache excluded) on an OpenAI-shaped route
    llm_server.script(Reply(usage={"prompt_tokens": 30, "completion_tokens": 9,
                                   "prompt_tokens_details": {"cached_tokens": 900}}))
    with profile("gateway") as run:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    (s,) = run.llm_spans()
    assert (s.llm.usage.input_tokens, s.llm.usage.cache_read_tokens) == (930, 900)
    assert "excluded" in s.attributes["usage_note"]


def test_langchain_stream_gets_usage_and_yields_the_same_chunks(llm_server: Any) -> None:
    """ChatOpenAI with a base_url does not ask for stream usage; the instrumented SDK underneath asks, hides
    the usage-only chunk from LangChain, and hands the provider's usage (DeepSeek dialect) to the span."""
    from langchain_openai import ChatOpenAI

    model = ChatOpenAI(model="deepseek-chat", base_url=llm_server.openai_url, api_key="test", max_retries=0)

    def view() -> list[tuple[Any, Any]]:
        llm_server.script(Reply(usage=DS_USAGE))
        return [(c.content, c.usage_metadata) for c in model.stream("What is 2+3?")]

    with profile("plain", instrument=False):
        plain = view()
    with profile("traced") as run:
        traced = view()
    assert traced == plain
    (s,) = run.llm_spans()
    u = s.llm.usage
    assert (u.input_tokens, u.cache_read_tokens, u.output_tokens) == (1200, 1024, 50)
    assert u.source("input_tokens") == "provider" and s.attributes["usage_from"] == "sdk"


def test_sdk_call_inside_a_langchain_tool_nests_under_the_tool(client: openai.OpenAI, llm_server: Any) -> None:
    from langchain_core.tools import tool

    @tool
    def lookup(q: str) -> str:
        """Ask the model."""
        return client.chat.completions.create(model="deepseek-chat", messages=MESSAGES).choices[0].message.content

    llm_server.script(Reply(usage=DS_USAGE))
    with profile("tool") as run:
        lookup.invoke({"q": "x"})
    (s,) = run.llm_spans()
    parent = next(x for x in run.spans if x.span_id == s.parent_id)
    assert parent.kind == "tool" and parent.name == "lookup"
    assert s.llm.usage.cache_read_tokens == 1024
