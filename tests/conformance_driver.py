"""Drives one conformance combination: a real client library, over real HTTP, against the loopback server
(tests/llm_server.py) answering in one provider's dialect. Used by tests/test_conformance_clients.py and
benchmarks/conformance_matrix.py."""

from __future__ import annotations

import asyncio
import os
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # litellm must not fetch its price map

from conformance_cases import Dialect, Path  # noqa: E402
from llm_server import LLMServer, Reply  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is 2+3? Answer in JSON."}]
JSON_TEXT = '{"a": 5}'
"""The reply text: valid JSON so that parse() paths succeed."""


def reply_for(dialect: Dialect) -> Reply:
    return Reply(text=JSON_TEXT, usage=dict(dialect.usage), output_tokens=77, **dialect.reply)


def _out_model() -> Any:
    import pydantic

    class Out(pydantic.BaseModel):
        a: int

    return Out


def call(path: Path, dialect: Dialect, server: LLMServer) -> Any:
    """Make the call ``path`` describes; returns what the caller got (stream chunks as a list)."""
    fn = _DRIVERS[path.client]
    if path.is_async:
        # one loop for every async combination: client libraries (langchain-openai) cache async HTTP
        # clients bound to the loop that created them
        return _loop().run_until_complete(fn(path, dialect, server, True))
    return _run_sync(fn(path, dialect, server, False))


_LOOP: asyncio.AbstractEventLoop | None = None


def _loop() -> asyncio.AbstractEventLoop:
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = asyncio.new_event_loop()
    return _LOOP


def _run_sync(coro: Any) -> Any:
    """The sync drivers are written as coroutines that never await: run them without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("a sync driver awaited")


async def _maybe(value: Any, is_async: bool) -> Any:
    return await value if is_async else value


async def _collect(stream: Any, is_async: bool) -> list[Any]:
    if is_async:
        return [x async for x in stream]
    return list(stream)


async def _openai(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    import openai

    cls = openai.AsyncOpenAI if is_async else openai.OpenAI
    client = cls(base_url=server.openai_url, api_key="test", max_retries=0)
    m, s = d.model, path.stream
    if path.route == "chat":
        res = client.chat.completions
        kw: dict[str, Any] = dict(model=m, messages=MESSAGES)
        if path.call == "create":
            out = await _maybe(res.create(**kw, stream=s) if s else res.create(**kw), is_async)
            return await _collect(out, is_async) if s else out
        if path.call == "parse":
            return await _maybe(res.parse(**kw, response_format=_out_model()), is_async)
        if path.call == "raw":
            raw = await _maybe(res.with_raw_response.create(**kw, stream=True) if s
                               else res.with_raw_response.create(**kw), is_async)
            out = raw.parse()
            return await _collect(out, is_async) if s else out
        if path.call == "streaming-response":
            cm = res.with_streaming_response.create(**kw, stream=True) if s else res.with_streaming_response.create(**kw)
            if is_async:
                async with cm as r:
                    out = await r.parse()
                    return await _collect(out, True) if s else out
            with cm as r:
                out = r.parse()
                return list(out) if s else out
        if path.call == "stream-helper":
            if is_async:
                async with res.stream(**kw) as st:
                    return [e async for e in st]
            with res.stream(**kw) as st:
                return list(st)
    if path.route == "responses":
        res = client.responses
        kw = dict(model=m, input="What is 2+3? Answer in JSON.")
        if path.call == "create":
            out = await _maybe(res.create(**kw, stream=s) if s else res.create(**kw), is_async)
            return await _collect(out, is_async) if s else out
        if path.call == "parse":
            return await _maybe(res.parse(**kw, text_format=_out_model()), is_async)
        if path.call == "raw":
            return (await _maybe(res.with_raw_response.create(**kw), is_async)).parse()
        if path.call == "stream-helper":
            if is_async:
                async with res.stream(**kw) as st:
                    return [e async for e in st]
            with res.stream(**kw) as st:
                return list(st)
    raise ValueError(path)


async def _litellm(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    import litellm

    kw: dict[str, Any] = dict(model=f"openai/{d.model}", messages=MESSAGES, api_base=server.openai_url,
                              api_key="test")
    if path.stream:
        kw["stream"] = True
    out = await litellm.acompletion(**kw) if is_async else litellm.completion(**kw)
    return await _collect(out, is_async) if path.stream else out


async def _anthropic(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    import anthropic

    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    client = cls(base_url=server.anthropic_url, api_key="test", max_retries=0)
    kw: dict[str, Any] = dict(model=d.model, max_tokens=100, messages=MESSAGES)
    if path.call == "create":
        out = await _maybe(client.messages.create(**kw, stream=True) if path.stream
                           else client.messages.create(**kw), is_async)
        return await _collect(out, is_async) if path.stream else out
    if path.call == "raw":
        return (await _maybe(client.messages.with_raw_response.create(**kw), is_async)).parse()
    if path.call == "beta":
        return await _maybe(client.beta.messages.create(**kw), is_async)
    if path.call == "stream-helper":
        if is_async:
            async with client.messages.stream(**kw) as st:
                return await st.get_final_message()
        with client.messages.stream(**kw) as st:
            return st.get_final_message()
    raise ValueError(path)


async def _gemini(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="test", http_options=types.HttpOptions(base_url=server.url))
    models = client.aio.models if is_async else client.models
    kw: dict[str, Any] = dict(model=d.model, contents="What is 2+3? Answer in JSON.")
    if path.stream:
        out = await _maybe(models.generate_content_stream(**kw), is_async)
        return await _collect(out, is_async)
    return await _maybe(models.generate_content(**kw), is_async)


async def _langchain(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    """LangChain chat models (recorded by tokprof's callback handler; the SDK underneath adds the usage in
    the provider's dialect)."""
    if path.call == "ChatOpenAI":
        from langchain_openai import ChatOpenAI

        model: Any = ChatOpenAI(model=d.model, base_url=server.openai_url, api_key="test", max_retries=0)
    elif path.call == "ChatDeepSeek":
        from langchain_deepseek import ChatDeepSeek

        model = ChatDeepSeek(model=d.model, api_base=server.openai_url, api_key="test", max_retries=0)
    else:
        from langchain_anthropic import ChatAnthropic

        model = ChatAnthropic(model=d.model, base_url=server.anthropic_url, api_key="test", max_retries=0)
    prompt = MESSAGES[0]["content"]
    if path.stream:
        return await _collect(model.astream(prompt) if is_async else model.stream(prompt), is_async)
    return await model.ainvoke(prompt) if is_async else model.invoke(prompt)


_DRIVERS = {"langchain": _langchain, "openai": _openai, "litellm": _litellm, "anthropic": _anthropic, "google-genai": _gemini}


async def _dashscope(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    import dashscope

    dashscope.base_http_api_url, dashscope.api_key = server.dashscope_url, "test"
    kw: dict[str, Any] = dict(model=d.model, messages=MESSAGES, result_format="message")
    if path.stream:
        kw.update(stream=True, incremental_output=True)
    if is_async:
        out = await dashscope.AioGeneration.call(**kw)
        return [x async for x in out] if path.stream else out
    out = dashscope.Generation.call(**kw)
    return list(out) if path.stream else out


async def _ark(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    import volcenginesdkarkruntime as ark

    cls = ark.AsyncArk if is_async else ark.Ark
    res = cls(base_url=server.url + "/api/v3", api_key="test", max_retries=0).chat.completions
    kw: dict[str, Any] = dict(model=d.model, messages=MESSAGES)
    out = await _maybe(res.create(**kw, stream=True) if path.stream else res.create(**kw), is_async)
    return await _collect(out, is_async) if path.stream else out


async def _zai(path: Path, d: Dialect, server: LLMServer, is_async: bool) -> Any:
    import dataclasses

    import zai

    if path.stream:  # GLM sends a stream's usage on its last chunk, unasked
        with server._lock:
            server._script.append(dataclasses.replace(server._script.pop(), usage_in_last_chunk=True))
    res = zai.ZaiClient(api_key="test", base_url=server.url + "/api/paas/v4").chat.completions
    out = res.create(model=d.model, messages=MESSAGES, stream=True) if path.stream else res.create(
        model=d.model, messages=MESSAGES)
    return list(out) if path.stream else out


_DRIVERS.update({"dashscope": _dashscope, "volcengine-ark": _ark, "zai-sdk": _zai})


def check(path: Path, dialect: Dialect, server: LLMServer) -> str | None:
    """Drive one combination under a profile; ``None`` when the recorded call is right, else what is wrong
    (the same checks as tests/test_conformance_clients.py, without the cost)."""
    from tokprof.profiler import profile, span

    server.script(reply_for(dialect))
    try:
        with profile("conformance") as run:
            with span("agent-step", kind="agent"):
                call(path, dialect, server)
    except Exception as exc:  # noqa: BLE001 - reported in the matrix
        return f"call failed: {exc!r}"
    llm = run.llm_spans()
    if len(llm) != 1:
        return f"{len(llm)} LLM spans"
    u = llm[0].llm.usage
    got = {k: getattr(u, k) for k in u.sources}
    if path.client == "litellm":
        got = {k: v for k, v in got.items() if k in dialect.expected or v != 0}
    if got != dialect.expected:
        return f"usage {got} != {dialect.expected}"
    if set(u.sources.values()) != {"provider"}:
        return f"sources {u.sources}"
    if llm[0].llm.model != dialect.model:
        return f"model {llm[0].llm.model!r}"
    return None
