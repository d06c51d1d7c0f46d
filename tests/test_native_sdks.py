"""The native SDKs of Chinese providers, driven for real over HTTP against the loopback server
(tests/llm_server.py): Alibaba's ``dashscope`` (Qwen, DashScope's own API), Z.ai's ``zai-sdk`` (GLM) and the
Volcengine Ark runtime (Doubao). No instrument() call anywhere: ``profile()`` patches them by itself.

Each test checks the tokens exactly as the server sent them (source ``provider``), the cost worked out here by
hand from the price rows of profiler/providers/data/prices.json, the provider label, the model, the messages
captured, and that the profile is not a silent "0 calls"."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import dashscope
import pytest
import volcenginesdkarkruntime
import zai
from dashscope.aigc.generation import AioGeneration, Generation
from dashscope.v2.resources.chat.completions import AsyncCompletions as DsClientAsyncCompletions
from dashscope.v2.resources.chat.completions import Completions as DsClientCompletions
from volcenginesdkarkruntime.resources.chat.completions import AsyncCompletions as ArkAsyncCompletions
from volcenginesdkarkruntime.resources.chat.completions import Completions as ArkCompletions
from zai.api_resource.chat.completions import Completions as ZaiCompletions

from llm_server import Reply
from tokprof.profiler import profile, uninstrument
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.integrations import instrumented
from tokprof.profiler.integrations.dashscope import _combine, dashscope_usage
from tokprof.profiler.model import Run
from tokprof.profiler.providers.prices import get_price

MESSAGES = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+3?"}]
M = Decimal(1_000_000)


@pytest.fixture(autouse=True)
def _restore():
    yield
    uninstrument()


@pytest.fixture
def ds(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(dashscope, "base_http_api_url", llm_server.dashscope_url)
    monkeypatch.setattr(dashscope, "api_key", "test")
    return llm_server


def zai_client(server: Any) -> zai.ZaiClient:
    return zai.ZaiClient(api_key="test", base_url=server.url + "/api/paas/v4")


def ark_client(server: Any) -> volcenginesdkarkruntime.Ark:
    return volcenginesdkarkruntime.Ark(base_url=server.url + "/api/v3", api_key="test", max_retries=0)


def only_llm(run: Run) -> Any:
    (s,) = run.llm_spans()
    assert not run.metadata.get("no_llm_calls_warning")
    return s


def tokens(s: Any) -> dict[str, int]:
    u = s.llm.usage
    assert set(u.sources.values()) == {"provider"}, u.sources
    return {k: getattr(u, k) for k in u.sources}


def cny(s: Any) -> Decimal:
    cost = span_cost(s, "CNY")
    assert cost is not None
    return cost.amount


def check_row(model: str, **rates: str) -> None:
    """The hand arithmetic below uses these per-1M-token CNY rates: the data file must still say so."""
    price = get_price(model, warn=False, currency="CNY")
    assert price is not None and price.currency == "CNY"
    for k, v in rates.items():
        assert getattr(price, k) == Decimal(v), (model, k)


# ---------------------------------------------------------------------------------------------------
# DashScope (Qwen)
# ---------------------------------------------------------------------------------------------------
QWEN = dict(input_tokens=1200, cached_tokens=1024, output_tokens=80)
QWEN_TOKENS = {"input_tokens": 1200, "cache_read_tokens": 1024, "output_tokens": 80}
# qwen-plus CNY row: input 0.8, cache_read 0.16, output 2 per 1M: 176 fresh + 1024 cached + 80 out
QWEN_COST = (176 * Decimal("0.8") + 1024 * Decimal("0.16") + 80 * Decimal("2")) / M  # 0.00046464 CNY


def _check_qwen(s: Any, name: str) -> None:
    check_row("qwen-plus", input="0.8", cache_read="0.16", output="2")
    assert s.name == name
    assert (s.llm.provider, s.llm.model) == ("alibaba", "qwen-plus")
    assert s.llm.messages == MESSAGES
    assert s.llm.output["content"] == "Hello from the loopback server."
    assert tokens(s) == QWEN_TOKENS
    assert cny(s) == QWEN_COST == Decimal("0.00046464")


def test_dashscope_sync(ds: Any) -> None:
    ds.script(Reply(**QWEN))
    with profile("qwen") as run:
        r = dashscope.Generation.call(model="qwen-plus", messages=MESSAGES, result_format="message")
    assert r.status_code == 200 and r.usage["input_tokens"] == 1200  # the caller's response is untouched
    s = only_llm(run)
    _check_qwen(s, "dashscope.Generation.call")
    assert s.llm.finish_reason == "stop" and s.llm.params["result_format"] == "message"
    assert ds.requests[-1].body["input"]["messages"] == MESSAGES


@pytest.mark.parametrize("incremental", [True, False])
def test_dashscope_stream(ds: Any, incremental: bool) -> None:
    ds.script(Reply(**QWEN))
    with profile("qwen") as run:
        chunks = list(dashscope.Generation.call(model="qwen-plus", messages=MESSAGES, result_format="message",
                                                stream=True, incremental_output=incremental))
    # the server's usage grows event by event (cumulative): only the last block is the call's
    assert [c.usage["output_tokens"] for c in chunks] == [11, 22, 34, 45, 57, 68, 80]
    _check_qwen(only_llm(run), "dashscope.Generation.call")


def test_dashscope_async_and_async_stream(ds: Any) -> None:
    async def go() -> list[str]:
        ds.script(Reply(**QWEN), Reply(**QWEN))
        await dashscope.AioGeneration.call(model="qwen-plus", messages=MESSAGES, result_format="message")
        gen = await dashscope.AioGeneration.call(model="qwen-plus", messages=MESSAGES, result_format="message",
                                                 stream=True, incremental_output=True)
        return [c.output.choices[0].message.content async for c in gen]

    with profile("qwen") as run:
        pieces = asyncio.run(go())
    assert "".join(pieces) == "Hello from the loopback server."
    a, b = run.llm_spans()
    _check_qwen(a, "dashscope.AioGeneration.call")
    _check_qwen(b, "dashscope.AioGeneration.call")


def test_dashscope_positional_prompt_and_text_format(ds: Any) -> None:
    ds.script(Reply(**QWEN))
    with profile("qwen") as run:
        Generation.call("qwen-plus", "What is 2+3?")  # model and prompt passed positionally
    s = only_llm(run)
    assert s.llm.model == "qwen-plus"
    assert s.llm.messages == [{"role": "user", "content": "What is 2+3?"}]
    assert tokens(s) == QWEN_TOKENS


def test_dashscope_api_error_is_returned_unchanged_and_recorded_as_failed(ds: Any) -> None:
    ds.script(Reply(status=400, error_message="bad input"))
    with profile("qwen") as run:
        r = Generation.call(model="qwen-plus", messages=MESSAGES)
    assert (r.status_code, r.code, r.message) == (400, "InvalidParameter", "bad input")  # as the SDK gives it
    s = only_llm(run)
    assert s.status == "error" and "400" in s.error and "InvalidParameter" in s.error
    assert "bad input" not in s.error  # DashScope's message may quote user content: not copied
    # no answer and no provider usage (the run counts the prompt locally, labelled, as for any failed call)
    assert s.llm.output is None and "provider" not in s.llm.usage.sources.values()


def test_dashscope_sdk_exception_passes_unchanged(ds: Any) -> None:
    from dashscope.common.error import InputRequired

    with profile("qwen") as run:
        with pytest.raises(InputRequired):
            Generation.call(model="qwen-plus")  # no prompt, no messages: the SDK's own exception
    assert run.llm_spans()[0].status == "error"


def test_dashscope_missing_usage_is_unknown_not_zero() -> None:
    # the SDK builds GenerationUsage(input_tokens=0, output_tokens=0) when the server sent no usage
    assert dashscope_usage({"input_tokens": 0, "output_tokens": 0}) is None
    assert dashscope_usage(None) is None
    u = dashscope_usage({"input_tokens": 30, "output_tokens": 5, "total_tokens": 35,
                         "prompt_tokens_details": {"cached_tokens": 0},
                         "output_tokens_details": {"reasoning_tokens": 3}})
    assert u is not None and (u.input_tokens, u.output_tokens, u.cache_read_tokens, u.reasoning_tokens) == (30, 5, 0, 3)


def test_dashscope_stream_with_several_choices_adds_their_outputs() -> None:
    # n=2: each event is about one choice, its usage cumulative for that choice (the SDK merges the same way)
    combined = _combine([{"input_tokens": 100, "output_tokens": 40, "total_tokens": 140},
                         {"input_tokens": 100, "output_tokens": 25, "total_tokens": 125}])
    assert combined == {"input_tokens": 100, "output_tokens": 65, "total_tokens": 165}


# ---------------------------------------------------------------------------------------------------
# zai-sdk (GLM)
# ---------------------------------------------------------------------------------------------------
GLM = dict(input_tokens=500, cached_tokens=100, output_tokens=30, reasoning_tokens=12)
GLM_TOKENS = {"input_tokens": 500, "cache_read_tokens": 100, "output_tokens": 30, "reasoning_tokens": 12}
# glm-4.6 CNY row, first tier (prompt <= 32K, output <= 200): input 2, cache_read 0.4, output 8 per 1M
GLM_COST = (400 * Decimal("2") + 100 * Decimal("0.4") + 30 * Decimal("8")) / M  # 0.00108 CNY


def _check_glm(s: Any) -> None:
    check_row("glm-4.6", input="2", cache_read="0.4", output="8")
    assert s.name == "zai.chat.completions.create"
    assert (s.llm.provider, s.llm.model) == ("zhipu", "glm-4.6")
    assert s.llm.messages == MESSAGES
    assert s.llm.output["content"] == "Hello from the loopback server."
    assert tokens(s) == GLM_TOKENS
    assert cny(s) == GLM_COST == Decimal("0.00108")


@pytest.mark.parametrize("client_cls", [zai.ZaiClient, zai.ZhipuAiClient])
def test_zai_sync(llm_server: Any, client_cls: Any) -> None:
    llm_server.script(Reply(**GLM))
    with profile("glm") as run:
        client = client_cls(api_key="test", base_url=llm_server.url + "/api/paas/v4")
        r = client.chat.completions.create(model="glm-4.6", messages=MESSAGES)
    assert r.usage.prompt_tokens == 500
    _check_glm(only_llm(run))
    assert llm_server.requests[-1].path == "/api/paas/v4/chat/completions"


def test_zai_stream_usage_on_the_last_chunk(llm_server: Any) -> None:
    llm_server.script(Reply(**GLM, usage_in_last_chunk=True))
    with profile("glm") as run:
        stream = zai_client(llm_server).chat.completions.create(model="glm-4.6", messages=MESSAGES, stream=True)
        chunks = list(stream)
    assert type(stream).__name__ == "StreamResponse"  # the caller keeps the SDK's own object
    assert chunks[-1].usage.prompt_tokens == 500 and chunks[-1].choices[0].finish_reason == "stop"
    assert "stream_options" not in llm_server.requests[-1].body  # nothing added to the request
    _check_glm(only_llm(run))


def test_zai_error_passes_unchanged(llm_server: Any) -> None:
    llm_server.script(Reply(status=400, error_message="bad glm request"))
    with profile("glm") as run:
        with pytest.raises(zai.core.APIStatusError) as info:
            zai_client(llm_server).chat.completions.create(model="glm-4.6", messages=MESSAGES)
    assert info.value.status_code == 400
    assert only_llm(run).status == "error"


# ---------------------------------------------------------------------------------------------------
# Volcengine Ark (Doubao)
# ---------------------------------------------------------------------------------------------------
DOUBAO = dict(input_tokens=700, cached_tokens=200, output_tokens=90, reasoning_tokens=40)
DOUBAO_TOKENS = {"input_tokens": 700, "cache_read_tokens": 200, "output_tokens": 90, "reasoning_tokens": 40}
# doubao-seed-1.6 CNY row, first tier (prompt <= 32K): input 0.8, cache_read 0.16, output 8 per 1M (no separate
# reasoning price: reasoning is output)
DOUBAO_COST = (500 * Decimal("0.8") + 200 * Decimal("0.16") + 90 * Decimal("8")) / M  # 0.001152 CNY


def _check_doubao(s: Any) -> None:
    check_row("doubao-seed-1.6", input="0.8", cache_read="0.16", output="8")
    assert s.name == "ark.chat.completions.create"
    assert (s.llm.provider, s.llm.model) == ("bytedance", "doubao-seed-1.6")
    assert s.llm.messages == MESSAGES
    assert s.llm.output["content"] == "Hello from the loopback server."
    assert tokens(s) == DOUBAO_TOKENS
    assert cny(s) == DOUBAO_COST == Decimal("0.001152")


def test_ark_sync(llm_server: Any) -> None:
    llm_server.script(Reply(**DOUBAO))
    with profile("doubao") as run:
        ark_client(llm_server).chat.completions.create(model="doubao-seed-1.6", messages=MESSAGES)
    _check_doubao(only_llm(run))
    assert llm_server.requests[-1].path == "/api/v3/chat/completions"


def test_ark_stream_asks_for_usage_and_hides_the_extra_chunk(llm_server: Any) -> None:
    llm_server.script(Reply(**DOUBAO))
    with profile("doubao") as run:
        chunks = list(ark_client(llm_server).chat.completions.create(model="doubao-seed-1.6", messages=MESSAGES,
                                                                     stream=True))
    assert llm_server.requests[-1].body["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)  # the usage-only chunk tokprof asked for is not shown to the caller
    _check_doubao(only_llm(run))


def test_ark_async_and_async_stream(llm_server: Any) -> None:
    async def go() -> None:
        client = volcenginesdkarkruntime.AsyncArk(base_url=llm_server.url + "/api/v3", api_key="test", max_retries=0)
        llm_server.script(Reply(**DOUBAO), Reply(**DOUBAO))
        await client.chat.completions.create(model="doubao-seed-1.6", messages=MESSAGES)
        stream = await client.chat.completions.create(model="doubao-seed-1.6", messages=MESSAGES, stream=True,
                                                      stream_options={"include_usage": True})
        got = [c async for c in stream]
        assert not got[-1].choices and got[-1].usage.prompt_tokens == 700  # asked by the caller: shown

    with profile("doubao") as run:
        asyncio.run(go())
    a, b = run.llm_spans()
    _check_doubao(a)
    _check_doubao(b)


def test_ark_error_passes_unchanged(llm_server: Any) -> None:
    llm_server.script(Reply(status=400, error_message="bad doubao request"))
    with profile("doubao") as run:
        with pytest.raises(volcenginesdkarkruntime._exceptions.ArkBadRequestError):
            ark_client(llm_server).chat.completions.create(model="doubao-seed-1.6", messages=MESSAGES)
    assert only_llm(run).status == "error"


# ---------------------------------------------------------------------------------------------------
# patching: automatic, restored, layered, never breaking the call
# ---------------------------------------------------------------------------------------------------
def _methods() -> list[Any]:
    return [Generation.__dict__["call"], AioGeneration.__dict__["call"], ZaiCompletions.__dict__["create"],
            ArkCompletions.__dict__["create"], ArkAsyncCompletions.__dict__["create"],
            DsClientCompletions.__dict__["create"], DsClientAsyncCompletions.__dict__["create"]]


def test_profile_patches_all_three_and_restores_the_very_same_objects() -> None:
    before = _methods()
    with profile("auto"):
        assert {"dashscope", "zai-sdk", "volcengine-ark"} <= set(instrumented())
        assert all(a is not b for a, b in zip(before, _methods()))
    assert all(a is b for a, b in zip(before, _methods()))
    assert not {"dashscope", "zai-sdk", "volcengine-ark"} & set(instrumented())


def test_instrument_false_leaves_them_alone() -> None:
    before = _methods()
    with profile("off", instrument=False):
        assert all(a is b for a, b in zip(before, _methods()))


def test_layered_over_another_tracers_classmethod_wrapper(ds: Any) -> None:
    """Another tracer wrapped ``Generation.call`` before the profile: tokprof wraps theirs (both see the
    call) and on exit puts theirs back, not the SDK's."""
    original = Generation.__dict__["call"]
    seen: list[str] = []

    def theirs(cls: type, *args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("model") or args[0])
        return original.__get__(None, cls)(*args, **kwargs)

    Generation.call = classmethod(theirs)  # type: ignore[method-assign,assignment]
    try:
        their_wrapper = Generation.__dict__["call"]
        ds.script(Reply(**QWEN))
        with profile("layers") as run:
            Generation.call(model="qwen-plus", messages=MESSAGES)
        assert seen == ["qwen-plus"] and tokens(only_llm(run)) == QWEN_TOKENS
        assert Generation.__dict__["call"] is their_wrapper
    finally:
        Generation.call = original  # type: ignore[method-assign]


def test_a_wrapper_added_on_top_inside_the_profile_stays_and_ours_passes_through(ds: Any) -> None:
    original = Generation.__dict__["call"]
    try:
        with profile("layers"):
            ours = Generation.__dict__["call"]

            def theirs(cls: type, *args: Any, **kwargs: Any) -> Any:
                return ours.__get__(None, cls)(*args, **kwargs)

            Generation.call = classmethod(theirs)  # type: ignore[method-assign,assignment]
        their_wrapper = Generation.__dict__["call"]
        ds.script(Reply(**QWEN))
        with profile("after", instrument=False) as run:
            r = Generation.call(model="qwen-plus", messages=MESSAGES)
        assert r.status_code == 200 and Generation.__dict__["call"] is their_wrapper
        assert run.llm_spans() == []  # our layer is a pass-through now
    finally:
        Generation.call = original  # type: ignore[method-assign]


def test_tokprof_failure_is_swallowed_and_the_call_goes_through(ds: Any, llm_server: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from tokprof.profiler.integrations import ark, dashscope as ds_mod, zai as zai_mod

    def boom(self: Any, kwargs: dict[str, Any]) -> Any:
        raise RuntimeError("tokprof bug")

    for adapter in (ds_mod.GenerationAdapter, zai_mod.ZaiChatAdapter, ark.ArkChatAdapter):
        monkeypatch.setattr(adapter, "request", boom)
    ds.script(Reply(**QWEN), Reply(**GLM), Reply(**DOUBAO))
    with profile("bugs"):
        assert Generation.call(model="qwen-plus", messages=MESSAGES).status_code == 200
        assert zai_client(llm_server).chat.completions.create(model="glm-4.6", messages=MESSAGES).usage.prompt_tokens == 500
        assert ark_client(llm_server).chat.completions.create(model="doubao-seed-1.6",
                                                              messages=MESSAGES).usage.prompt_tokens == 700


def test_a_run_of_native_calls_is_not_zero_calls(ds: Any, llm_server: Any) -> None:
    ds.script(Reply(**QWEN), Reply(**GLM), Reply(**DOUBAO))
    with profile("mixed") as run:
        Generation.call(model="qwen-plus", messages=MESSAGES)
        zai_client(llm_server).chat.completions.create(model="glm-4.6", messages=MESSAGES)
        ark_client(llm_server).chat.completions.create(model="doubao-seed-1.6", messages=MESSAGES)
    assert not run.metadata.get("no_llm_calls_warning")
    assert [s.llm.provider for s in run.llm_spans()] == ["alibaba", "zhipu", "bytedance"]
    assert sum((cny(s) for s in run.llm_spans()), Decimal(0)) == QWEN_COST + GLM_COST + DOUBAO_COST


def test_ark_raw_response_is_recorded(llm_server: Any) -> None:
    llm_server.script(Reply(**DOUBAO))
    with profile("doubao") as run:
        raw = ark_client(llm_server).chat.completions.with_raw_response.create(model="doubao-seed-1.6",
                                                                               messages=MESSAGES)
        assert raw.parse().usage.prompt_tokens == 700
    _check_doubao(only_llm(run))


def test_sdks_imported_inside_the_profile_are_patched(llm_server: Any, tmp_path: Any) -> None:
    """``tokprof run script.py``: the script imports its SDK after the profile opened."""
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "agent.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from llm_server import Reply
from tokprof.profiler import profile
URL = {llm_server.url!r}
with profile("late") as run:
    import dashscope, zai, volcenginesdkarkruntime
    dashscope.base_http_api_url, dashscope.api_key = URL + "/api/v1", "k"
    m = [{{"role": "user", "content": "hi"}}]
    dashscope.Generation.call(model="qwen-plus", messages=m)
    zai.ZaiClient(api_key="k", base_url=URL + "/api/paas/v4").chat.completions.create(model="glm-4.6", messages=m)
    volcenginesdkarkruntime.Ark(base_url=URL + "/api/v3", api_key="k").chat.completions.create(
        model="doubao-seed-1.6", messages=m)
print([(s.llm.provider, s.llm.usage.input_tokens) for s in run.llm_spans()])
""")
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[('alibaba', 42), ('zhipu', 42), ('bytedance', 42)]"


# ---------------------------------------------------------------------------------------------------
# dashscope 2.x client API (dashscope.Client / AsyncClient)
# ---------------------------------------------------------------------------------------------------
def test_dashscope_client_sync_and_stream(llm_server: Any) -> None:
    client = dashscope.Client(api_key="test", base_url=llm_server.dashscope_url, max_retries=0)
    llm_server.script(Reply(**QWEN), Reply(**QWEN))
    with profile("qwen") as run:
        r = client.chat.completions.create(model="qwen-plus", messages=MESSAGES)
        stream = client.chat.completions.create(model="qwen-plus", messages=MESSAGES, stream=True)
        text = "".join(stream.text_stream)  # the SDK's own helper still works on the watched stream
    assert r.usage.input_tokens == 1200 and text == "Hello from the loopback server."
    assert type(stream).__name__ == "ChatStream"
    a, b = run.llm_spans()
    _check_qwen(a, "dashscope.chat.completions.create")
    _check_qwen(b, "dashscope.chat.completions.create")


def test_dashscope_async_client(llm_server: Any) -> None:
    async def go() -> str:
        client = dashscope.AsyncClient(api_key="test", base_url=llm_server.dashscope_url, max_retries=0)
        llm_server.script(Reply(**QWEN), Reply(**QWEN))
        await client.chat.completions.create(model="qwen-plus", messages=MESSAGES)
        stream = await client.chat.completions.create(model="qwen-plus", messages=MESSAGES, stream=True)
        return "".join([c.choices[0].delta.content async for c in stream])

    with profile("qwen") as run:
        assert asyncio.run(go()) == "Hello from the loopback server."
    a, b = run.llm_spans()
    _check_qwen(a, "dashscope.chat.completions.create")
    _check_qwen(b, "dashscope.chat.completions.create")
