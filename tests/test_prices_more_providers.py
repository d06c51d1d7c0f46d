"""Prices of the client libraries the HTTP fallback records (Groq, Mistral, Cohere, Together, Fireworks, Ollama)
and how their model ids resolve (profiler/providers/prices.py ``priced_model``, resolver.py host labels).

Oracles: the figures printed on the pages each row cites (per 1M tokens, USD), multiplied out by hand here —
Groq (console.groq.com/docs/models table): llama-3.3-70b-versatile 0.59 / 0.79, openai/gpt-oss-20b 0.075 / 0.30,
cached 50% off (console.groq.com/docs/prompt-caching); OpenAI's own gpt-oss-20b row 0.05 / 0.20; Mistral
(docs.mistral.ai/models/..., Mistral's docs data): Small 4 (mistral-small-2603, mistral-small-latest) 0.15 / 0.60,
Large 3 (mistral-large-2512) 0.50 / 1.50; Cohere (cohere.com/pricing as captured 2026-11-11): command-r-08-2024
0.15 / 0.60, command-r (an alias of command-r-03-2024, docs.cohere.com/docs/command-r) 0.50 / 1.50; Together:
Llama-3.3-70B-Instruct-Turbo 0.88 / 0.88; Fireworks (docs.fireworks.ai/serverless/pricing): gpt-oss-120b 0.15,
cached 0.015, output 0.60. End-to-end cases drive the real groq / mistralai / cohere / ollama libraries over HTTP
to the loopback server (tests/llm_server.py), the loopback host labelled as the provider's API host.
"""

from __future__ import annotations

import warnings
from decimal import Decimal
from typing import Any

import pytest

import llm_server_native  # noqa: F401  (Ollama and Cohere routes)
from llm_server import Reply
from tokprof.profiler import profile, uninstrument
from tokprof.profiler.accounting import span_cost, usage_cost
from tokprof.profiler.integrations import http_routes
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.providers import prices
from tokprof.profiler.providers.as_paid import run_paid
from tokprof.profiler.providers.cache_rules import cache_rule
from tokprof.profiler.providers.prices import ModelPrice, UnknownModelWarning, get_price, priced_model

M = Decimal(1_000_000)
MSG = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(autouse=True)
def _clean():
    prices.reset_overrides()
    yield
    prices.reset_overrides()
    uninstrument()


def _cost(model: str, provider: str | None, **usage: int) -> Any:
    return usage_cost(Usage.from_provider(**usage), model, "USD", provider=provider)


def _run(model: str, provider: str, **usage: int) -> Run:
    call = LLMCall(provider=provider, model=model, messages=MSG, usage=Usage.from_provider(**usage))
    return Run(run_id="r", spans=[Span("s1", None, "r", "llm", "call", start_ns=0, wall_start_ns=0, end_ns=1,
                                       llm=call)])


# ---- hand arithmetic from the cited pages -----------------------------------------------------------------
def test_groq_gpt_oss_is_groqs_price_not_openais() -> None:
    # 10,000 prompt tokens of which 4,000 cached, 2,000 output
    groq = _cost("openai/gpt-oss-20b", "groq", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    # Groq: 6,000 x 0.075 + 4,000 x 0.0375 (50% off) + 2,000 x 0.30 = 450 + 150 + 600 = 1,200 per 1M
    assert groq.amount == Decimal(1_200) / M and groq.source == "estimated"  # Groq's table: third-party copy
    openai = _cost("openai/gpt-oss-20b", "openai", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    # OpenAI's own open-weight row lists no cache price and gpt-oss has no caching rule: 10,000 x 0.05 + 2,000 x 0.20
    assert openai.amount == Decimal(900) / M


def test_groq_llama_and_litellm_style_ids() -> None:
    # 1,000 x 0.59 + 100 x 0.79 = 590 + 79 per 1M, whichever way the id arrives
    want = Decimal(669) / M
    for model, provider in [("llama-3.3-70b-versatile", "groq"), ("groq/llama-3.3-70b-versatile", None),
                            ("llama-3.3-70b-versatile", None)]:
        assert _cost(model, provider, input_tokens=1_000, output_tokens=100).amount == want, (model, provider)


def test_mistral_rows_confirmed_on_mistrals_page() -> None:
    small = _cost("mistral-small-latest", "mistral", input_tokens=2_000, output_tokens=500)
    assert small.amount == (Decimal(2_000) * Decimal("0.15") + Decimal(500) * Decimal("0.60")) / M  # 600 per 1M
    assert small.source == "computed"  # a row confirmed on the provider's own page, provider-reported usage
    large = _cost("mistral/mistral-large-2512", None, input_tokens=4_000, output_tokens=1_000)
    assert large.amount == (Decimal(4_000) * Decimal("0.5") + Decimal(1_000) * Decimal("1.5")) / M  # 3,500 per 1M


def test_cohere_dated_ids_and_documented_aliases() -> None:
    r08 = _cost("command-r-08-2024", "cohere", input_tokens=1_000, output_tokens=200)
    assert r08.amount == Decimal(150 + 120) / M and r08.source == "estimated"
    # Cohere's docs: "command-r is an alias for command-r-03-2024" (the older, dearer model)
    alias = _cost("command-r", "cohere", input_tokens=1_000, output_tokens=200)
    assert alias.amount == Decimal(500 + 300) / M


def test_together_and_fireworks_ids_as_the_sdks_send_them() -> None:
    want = Decimal(2_000) * Decimal("0.88") / M
    for model, provider in [("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together"),
                            ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "together_ai"),  # litellm's label
                            ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", None)]:
        assert _cost(model, provider, input_tokens=1_000, output_tokens=1_000).amount == want, (model, provider)
    # a Fireworks id names its host: priced by Fireworks even through the OpenAI SDK (labelled "openai")
    fw = _cost("accounts/fireworks/models/gpt-oss-120b", "openai", input_tokens=10_000, cache_read_tokens=5_000,
               output_tokens=1_000)
    # 5,000 x 0.15 + 5,000 x 0.015 + 1,000 x 0.60 = 750 + 75 + 600 per 1M; a confirmed row
    assert fw.amount == Decimal(1_425) / M and fw.source == "computed"


def test_summary_and_simulator_use_the_hosts_row() -> None:
    # the run summary (what the run paid, profiler/providers/as_paid.py) and the span cost agree on Groq's price
    run = _run("openai/gpt-oss-20b", "groq", input_tokens=10_000, cache_read_tokens=4_000, output_tokens=2_000)
    paid = run_paid(run).total
    assert paid.is_point and paid.expected == Decimal(1_200) / M == span_cost(run.spans[0], "USD").amount


# ---- id matching ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,provider,key", [
    ("openai/gpt-oss-20b", "groq", "groq/openai/gpt-oss-20b"),
    ("openai/gpt-oss-120b", "groq", "groq/openai/gpt-oss-120b"),
    ("qwen/qwen3-32b", "groq", "groq/qwen/qwen3-32b"),
    ("moonshotai/kimi-k2-instruct", "groq", "groq/moonshotai/kimi-k2-instruct-0905"),
    ("llama-3.1-8b-instant", None, "groq/llama-3.1-8b-instant"),
    ("openai/gpt-oss-20b", "openai", "gpt-oss-20b"),
    ("openai/gpt-oss-20b", None, "gpt-oss-20b"),
    ("qwen/qwen3-32b", None, "qwen3-32b"),  # Alibaba's own Qwen3-32B row without a host
    ("mistral-small-latest", "mistral", "mistral-small-2603"),
    ("mistral/mistral-medium-latest", None, "mistral-medium-2508"),
    ("codestral-latest", "mistral", "codestral-2508"),
    ("ministral-8b-latest", "mistral", "ministral-8b-2512"),
    ("open-mistral-nemo", "mistral", "open-mistral-nemo-2407"),
    ("command-r-plus", "cohere", "command-r-plus-04-2024"),
    ("command-r7b", "cohere", "command-r7b-12-2024"),
    ("command-a-03-2025", "cohere", "command-a-03-2025"),
    ("Qwen/Qwen2.5-72B-Instruct-Turbo", "together", "together/qwen/qwen2.5-72b-instruct-turbo"),
    ("deepseek-ai/DeepSeek-V3", "together_ai", "together/deepseek-ai/deepseek-v3"),
    ("deepseek-ai/DeepSeek-V3", None, "deepseek-chat"),  # DeepSeek's own row when the host is unknown
    ("accounts/fireworks/models/llama-v3p3-70b-instruct", None, "fireworks/accounts/fireworks/models/llama-v3p3-70b-instruct"),
    ("fireworks_ai/accounts/fireworks/models/gpt-oss-20b", None, "fireworks/accounts/fireworks/models/gpt-oss-20b"),
])
def test_sdk_style_ids_resolve(model: str, provider: str | None, key: str) -> None:
    p = get_price(model, provider=provider, warn=False)
    assert p is not None and p.model == key, (model, provider, p and p.model)


def test_unknown_dated_ids_are_not_priced_as_a_neighbour() -> None:
    # Mistral Large 2.1 (2411) was $2/$6: stripping the date must not land on Large 3's row
    for model in ("mistral-large-2411", "ministral-8b-2410", "command-r-plus-09-2025"):
        assert get_price(model, provider="mistral", warn=False) is None, model


def test_host_rows_keep_the_vendors_cache_rule_out() -> None:
    # Qwen3-32B on Groq is not cached by Alibaba's rules; gpt-oss on Groq is Groq's automatic cache (50% off)
    assert cache_rule("groq", "qwen/qwen3-32b").provider != "qwen"
    assert not cache_rule("groq", "qwen/qwen3-32b").caches
    rule = cache_rule("groq", "openai/gpt-oss-20b")
    assert rule.provider == "groq" and rule.mode == "automatic" and rule.read_multiplier == Decimal("0.5")
    assert cache_rule("openai", "accounts/fireworks/models/gpt-oss-120b").provider == "fireworks"


# ---- Ollama: local, no per-token price ---------------------------------------------------------------------
def test_ollama_models_have_no_price_and_say_why() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cost = _cost("llama3.2:3b", "ollama", input_tokens=100, output_tokens=10)
    assert cost is None  # unknown, never 0
    (w,) = [w for w in caught if issubclass(w.category, UnknownModelWarning)]
    assert "local Ollama" in str(w.message) and "did you mean" not in str(w.message)
    # a local model that shares a hosted model's name is not priced as the hosted one
    assert priced_model("gpt-oss-20b", "ollama") is None
    assert _cost("gpt-oss-20b", "ollama_chat", input_tokens=100, output_tokens=10) is None
    assert not cache_rule("ollama", "qwen3:32b").caches


def test_a_users_own_price_for_a_local_model_applies() -> None:
    prices.set_price(ModelPrice(model="ollama/llama3.2:3b", provider="ollama", currency="USD",
                                input=Decimal("0.01"), output=Decimal("0.02")))
    cost = _cost("llama3.2:3b", "ollama", input_tokens=1_000_000, output_tokens=500_000)
    assert cost.amount == Decimal("0.01") + Decimal("0.01")


# ---- the real client libraries through the HTTP fallback -----------------------------------------------------
def test_groq_sdk_call_priced_at_groqs_row(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    groq = pytest.importorskip("groq")
    # the loopback server stands in for api.groq.com: the route labels the call by host, as it would there
    monkeypatch.setitem(http_routes.HOSTS, "127.0.0.1", "groq")
    llm_server.script(Reply(input_tokens=10_000, cached_tokens=4_000, output_tokens=2_000))
    with profile("groq") as run:
        groq.Groq(api_key="t", base_url=llm_server.url, max_retries=0).chat.completions.create(
            model="openai/gpt-oss-20b", messages=MSG)
    (s,) = run.llm_spans()
    assert s.llm.provider == "groq" and s.llm.model == "openai/gpt-oss-20b"
    assert span_cost(s, "USD").amount == Decimal(1_200) / M


def test_mistral_sdk_call_priced(llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    mistralai = pytest.importorskip("mistralai")
    Mistral = getattr(mistralai, "Mistral", None) or __import__("mistralai.client", fromlist=["Mistral"]).Mistral
    monkeypatch.setitem(http_routes.HOSTS, "127.0.0.1", "mistral")
    llm_server.script(Reply(input_tokens=2_000, output_tokens=500))
    with profile("mistral") as run:
        Mistral(api_key="t", server_url=llm_server.url).chat.complete(model="mistral-small-latest", messages=MSG)
    (s,) = run.llm_spans()
    assert s.llm.provider == "mistral"
    assert span_cost(s, "USD").amount == Decimal(600) / M


def test_cohere_sdk_billed_units_priced(llm_server: Any) -> None:
    cohere = pytest.importorskip("cohere")
    llm_server.script(Reply(input_tokens=1_000, output_tokens=200))
    with profile("cohere") as run:
        cohere.ClientV2(api_key="t", base_url=llm_server.url).chat(model="command-r-08-2024", messages=MSG)
    (s,) = run.llm_spans()
    # the server's usage.tokens add 3 unbilled input tokens: billed units are priced, 1,000 x 0.15 + 200 x 0.60
    assert s.llm.provider == "cohere" and span_cost(s, "USD").amount == Decimal(270) / M


def test_ollama_sdk_call_stays_unknown(llm_server: Any) -> None:
    ollama = pytest.importorskip("ollama")
    llm_server.script(Reply(input_tokens=26, output_tokens=5))
    with profile("ollama") as run:
        ollama.Client(host=llm_server.url).chat(model="gpt-oss:20b", messages=MSG)
    (s,) = run.llm_spans()
    assert s.llm.provider == "ollama" and span_cost(s, "USD") is None
    assert run_paid(run).unpriced == 1
