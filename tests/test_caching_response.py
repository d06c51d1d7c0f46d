"""The live response cache: real SDK clients over real HTTP on 127.0.0.1, real LangChain objects, a
second Python process reading what the first one stored."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from tokprof.optimizers.response_cache import ResponseCache, cached_client, is_deterministic, request_key

REPO = Path(__file__).resolve().parent.parent


class _Server:
    """A minimal OpenAI/Anthropic-compatible endpoint that counts requests and can fail on demand."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
                outer.requests.append(body)
                n = len(outer.requests)
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    self._send(500, {"error": {"message": "upstream exploded", "type": "server_error"}})
                    return
                if self.path.endswith("/messages"):
                    self._send(200, {
                        "id": f"msg_{n}", "type": "message", "role": "assistant", "model": body.get("model"),
                        "content": [{"type": "text", "text": f"anthropic answer #{n}"}],
                        "stop_reason": "end_turn", "stop_sequence": None,
                        "usage": {"input_tokens": 12, "output_tokens": 4}})
                else:
                    self._send(200, {
                        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 1700000000,
                        "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": f"answer #{n}"}}],
                        "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}})

            def _send(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def same_answer(hit, original) -> bool:
    """A cache hit is the original answer, its usage zeroed (nothing billed) and labelled as served by the
    cache, the original usage kept alongside (issue #21 "Also")."""
    h, o = hit.model_dump(), original.model_dump()
    assert getattr(hit, "tokprof_served_by", None) == "response-cache", "hit not labelled"
    assert hit.tokprof_cached_usage == original.usage.model_dump(mode="json")
    assert all(not v for k, v in h.pop("usage").items() if k.endswith("tokens")), "hit usage not zero"
    h.pop("tokprof_served_by", None), h.pop("tokprof_cached_usage", None)
    o.pop("usage")
    return h == o


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def _openai(server: _Server) -> Any:
    openai = pytest.importorskip("openai")
    return openai.OpenAI(base_url=server.url + "/v1", api_key="test-key", max_retries=0)


REQUEST = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "What is 2+2?"}], "temperature": 0}


def test_openai_client_hit_identical_result(server: _Server, tmp_path: Path) -> None:
    client = cached_client(_openai(server), ResponseCache(tmp_path / "c"))
    first = client.chat.completions.create(**REQUEST)
    second = client.chat.completions.create(**REQUEST)
    assert len(server.requests) == 1
    assert same_answer(second, first)
    assert type(second) is type(first)
    assert second.choices[0].message.content == "answer #1"


def test_second_process_gets_identical_result(server: _Server, tmp_path: Path) -> None:
    cache_dir = tmp_path / "shared-cache"
    client = cached_client(_openai(server), ResponseCache(cache_dir, namespace="proj"))
    first = client.chat.completions.create(**REQUEST)
    script = textwrap.dedent(f"""
        import json, openai
        from tokprof.optimizers.response_cache import ResponseCache, cached_client
        client = cached_client(openai.OpenAI(base_url={server.url + '/v1'!r}, api_key="k", max_retries=0),
                               ResponseCache({str(cache_dir)!r}, namespace="proj"))
        r = client.chat.completions.create(**json.loads({json.dumps(json.dumps(REQUEST))}))
        print(json.dumps(r.model_dump(mode="json")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    want = first.model_dump(mode="json")
    # the same answer; the hit's usage is zero and it says it was served by the cache (issue #21)
    assert got.pop("tokprof_served_by") == "response-cache"
    assert got.pop("tokprof_cached_usage") == want["usage"]
    assert all(not v for k, v in got.pop("usage").items() if k.endswith("tokens"))
    want.pop("usage")
    assert got == want
    assert len(server.requests) == 1  # the second process never reached the server


@pytest.mark.parametrize("change", [
    {"model": "gpt-4.1-mini"},
    {"messages": [{"role": "user", "content": "What is 2+3?"}]},
    {"temperature": 0, "seed": 7},
    {"max_tokens": 5},
    {"tools": [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]},
])
def test_miss_when_a_keyed_parameter_changes(server: _Server, tmp_path: Path, change: dict[str, Any]) -> None:
    client = cached_client(_openai(server), ResponseCache(tmp_path / "c"))
    client.chat.completions.create(**REQUEST)
    other = client.chat.completions.create(**{**REQUEST, **change})
    assert len(server.requests) == 2
    assert other.choices[0].message.content == "answer #2"


def test_transport_parameters_do_not_change_the_key() -> None:
    base = request_key("openai", "gpt-4.1", REQUEST["messages"], None, {"temperature": 0})
    assert request_key("openai", "gpt-4.1", REQUEST["messages"], None,
                       {"temperature": 0, "timeout": 30, "user": "u1"}) == base
    assert request_key("openai", "gpt-4.1", REQUEST["messages"], None, {"temperature": 0.7}) != base


def test_failed_call_does_not_poison_the_cache(server: _Server, tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    cache = ResponseCache(tmp_path / "c")
    client = cached_client(_openai(server), cache)
    server.fail_next = 1
    with pytest.raises(openai.InternalServerError):  # the user's error propagates unchanged
        client.chat.completions.create(**REQUEST)
    assert len(cache) == 0
    ok = client.chat.completions.create(**REQUEST)
    assert ok.choices[0].message.content == "answer #2"
    again = client.chat.completions.create(**REQUEST)
    assert same_answer(again, ok)
    assert len(server.requests) == 2


def test_only_deterministic_requests_by_default(server: _Server, tmp_path: Path) -> None:
    client = cached_client(_openai(server), ResponseCache(tmp_path / "c"))
    hot = {**REQUEST, "temperature": 0.8}
    a = client.chat.completions.create(**hot)
    b = client.chat.completions.create(**hot)
    assert len(server.requests) == 2 and a.id != b.id
    assert is_deterministic({"temperature": 0.8, "seed": 3}) is True
    assert is_deterministic({}) is None


def test_streams_are_never_stored(server: _Server, tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    client = cached_client(_openai(server), cache)
    for _ in range(2):
        try:  # our test server answers with plain JSON, not SSE: whatever the SDK makes of it
            for _chunk in client.chat.completions.create(**REQUEST, stream=True):
                pass
        except Exception:
            pass
    assert len(cache) == 0
    assert len(server.requests) == 2  # both streams went to the server


def test_anthropic_client(server: _Server, tmp_path: Path) -> None:
    anthropic = pytest.importorskip("anthropic")
    raw = anthropic.Anthropic(base_url=server.url, api_key="k", max_retries=0)
    client = cached_client(raw, ResponseCache(tmp_path / "c"))
    kw = {"model": "claude-sonnet-4-5", "max_tokens": 50, "extra_body": {"temperature": 0}, "system": "Be brief.",
          "messages": [{"role": "user", "content": "hi"}]}
    a = client.messages.create(**kw)
    b = client.messages.create(**kw)
    c = client.messages.create(**{**kw, "system": "Be verbose."})
    assert len(server.requests) == 2
    assert same_answer(b, a) and a.content[0].text == "anthropic answer #1"
    assert c.content[0].text == "anthropic answer #2"


def test_ttl_namespace_and_size_cap(tmp_path: Path) -> None:
    a = ResponseCache(tmp_path / "c", namespace="a")
    b = ResponseCache(tmp_path / "c", namespace="b")
    a.set("k", {"v": 1})
    assert a.get("k") == {"v": 1} and b.get("k") is None
    expired = ResponseCache(tmp_path / "c", namespace="t", ttl=-1)
    expired.set("k", {"v": 2})
    assert expired.get("k") is None
    capped = ResponseCache(tmp_path / "cap", size_limit=200_000)
    for i in range(200):
        capped.set(f"k{i}", {"blob": "x" * 5000})
    assert len(capped) < 200  # diskcache evicted the least recently used entries


# ---------------------------------------------------------------------------------------------------
# LangChain
# ---------------------------------------------------------------------------------------------------
LC_SCRIPT = textwrap.dedent("""
    import sys
    from typing import Any
    from langchain_core.globals import set_llm_cache
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from tokprof.optimizers.response_cache import ResponseCache, TokprofLLMCache

    class Model(FakeListChatModel):
        temperature: float = 0.0

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model": "fake-deterministic", "temperature": self.temperature}

    set_llm_cache(TokprofLLMCache(ResponseCache(sys.argv[1])))
    answer = sys.argv[2]
    temperature = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    print(Model(responses=[answer], temperature=temperature).invoke("What is the capital of France?").content)
""")


def _lc(cache_dir: Path, answer: str, temperature: float = 0.0) -> str:
    out = subprocess.run([sys.executable, "-c", LC_SCRIPT, str(cache_dir), answer, str(temperature)],
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_langchain_cache_across_processes(tmp_path: Path) -> None:
    d = tmp_path / "lc"
    assert _lc(d, "Paris") == "Paris"
    # a different process whose model would answer differently gets the cached answer
    assert _lc(d, "Lyon") == "Paris"


def test_langchain_sampling_temperature_not_cached(tmp_path: Path) -> None:
    from typing import Any as _Any

    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from tokprof.optimizers.response_cache import TokprofLLMCache

    class Model(FakeListChatModel):
        temperature: float = 0.0

        @property
        def _identifying_params(self) -> dict[str, _Any]:
            return {"model": "fake-deterministic", "temperature": self.temperature}

    cache = TokprofLLMCache(ResponseCache(tmp_path / "lc"))
    assert Model(responses=["Paris"], cache=cache).invoke("capital?").content == "Paris"
    assert Model(responses=["Lyon"], cache=cache).invoke("capital?").content == "Paris"
    # a sampling temperature is not deterministic: not served, not stored
    hot = Model(responses=["Marseille", "Nice"], temperature=0.7, cache=cache)
    assert hot.invoke("capital?").content == "Marseille"
    assert hot.invoke("capital?").content == "Nice"


def test_langchain_cache_in_process(tmp_path: Path) -> None:
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    from tokprof.optimizers.response_cache import TokprofLLMCache

    cache = TokprofLLMCache(ResponseCache(tmp_path / "lc", deterministic_only=False))
    model = FakeListChatModel(responses=["first", "second"], cache=cache)
    assert model.invoke("q").content == "first"
    assert model.invoke("q").content == "first"
    assert model.invoke("other").content == "second"
    cache.clear()
    assert len(cache.store) == 0


def test_async_openai_client(server: _Server, tmp_path: Path) -> None:
    import asyncio

    openai = pytest.importorskip("openai")
    client = cached_client(openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="k", max_retries=0),
                           ResponseCache(tmp_path / "c"))

    async def go() -> tuple[Any, Any]:
        return (await client.chat.completions.create(**REQUEST), await client.chat.completions.create(**REQUEST))

    a, b = asyncio.run(go())
    assert len(server.requests) == 1 and same_answer(b, a)
