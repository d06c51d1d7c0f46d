"""Who a call through an OpenAI-compatible client went to (``tokprof.profiler.providers.hosts``).

Before, every call through the OpenAI SDK was labelled ``openai``: DeepSeek's, Qwen's or Groq's spend showed
under OpenAI in ``tokprof stats --by provider``, and a model two hosts serve was priced at OpenAI's row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from openai import OpenAI

from tokprof import profile
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.providers import hosts
from tokprof.profiler.providers.hosts import call_provider, host_provider

from llm_server import Reply

M = Decimal(1_000_000)
MSG = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("url,want", [
    ("https://api.deepseek.com/v1", "deepseek"),             # api-docs.deepseek.com: base_url
    ("https://dashscope.aliyuncs.com/compatible-mode/v1", "alibaba"),  # Model Studio OpenAI-compatible mode
    ("https://api.moonshot.cn/v1", "moonshot"),
    ("https://open.bigmodel.cn/api/paas/v4/", "zhipu"),
    ("https://ark.cn-beijing.volces.com/api/v3", "bytedance"),
    ("https://api.groq.com/openai/v1", "groq"),
    ("https://my-res.openai.azure.com/openai/deployments/x", "openai"),
    ("https://API.OPENAI.COM/v1", "openai"),
    ("http://127.0.0.1:8000/v1", None),
    ("not a url", None),
])
def test_known_hosts(url: str, want: str | None) -> None:
    assert host_provider(url) == want


def test_unknown_host_falls_back_to_the_models_row_then_the_client() -> None:
    assert call_provider("http://gateway.internal/v1", "deepseek-chat", "openai") == "deepseek"
    assert call_provider("http://gateway.internal/v1", "qwen-max", "openai") == "alibaba"
    assert call_provider("http://localhost:8000/v1", "my-finetune-7b", "openai") == "openai"
    assert call_provider("https://api.deepseek.com", "gpt-4o", "openai") == "deepseek"  # the host decides


def test_openai_client_calls_are_labelled_by_who_served_them(llm_server: Any) -> None:
    client = OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    with profile("providers", save=False) as run:
        for model in ("deepseek-chat", "qwen-max", "gpt-4o", "my-finetune-7b"):
            client.chat.completions.create(model=model, messages=MSG)
    assert [s.llm.provider for s in run.llm_spans()] == ["deepseek", "alibaba", "openai", "openai"]


def test_a_host_row_prices_the_call_through_the_openai_client(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loopback server stands in for api.groq.com. ``openai/gpt-oss-20b`` there is Groq's row (estimated:
    $0.075/M input, $0.30/M output), not OpenAI's: 10,000 x 0.075 + 2,000 x 0.30 = 750 + 600 = 1,350 per 1M."""
    monkeypatch.setitem(hosts.API_HOSTS, "127.0.0.1", "groq")
    llm_server.script(Reply(input_tokens=10_000, output_tokens=2_000))
    client = OpenAI(base_url=llm_server.openai_url, api_key="t", max_retries=0)
    with profile("groq", save=False) as run:
        client.chat.completions.create(model="openai/gpt-oss-20b", messages=MSG)
    (s,) = run.llm_spans()
    assert s.llm.provider == "groq"
    cost = span_cost(s, "USD")
    assert cost is not None and cost.amount == Decimal(1_350) / M
