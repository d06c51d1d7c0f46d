"""One resolver from the model names seen in traffic to priced models (issue #15 point 2)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from tokprof.profiler.accounting import usage_cost
from tokprof.profiler.model import Usage
from tokprof.profiler.providers import prices, resolver
from tokprof.profiler.providers.prices import UnknownModelWarning, get_price, resolve_model, suggestions
from tokprof.profiler.providers.tokenizers import tokenizer_for


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(resolver.ALIASES_ENV, raising=False)
    resolver.reset_model_aliases()
    prices.reset_overrides()
    yield
    resolver.reset_model_aliases()
    prices.reset_overrides()


@pytest.mark.parametrize("seen,key", [
    ("anthropic/claude-sonnet-4.5", "claude-sonnet-4-5"),          # OpenRouter: dotted version
    ("moonshotai/Kimi-K2-Instruct", "kimi-k2-0905-preview"),       # Hugging Face / router name
    ("doubao-seed-1-6-250615", "doubao-seed-1.6"),                 # Volcengine Ark response model (YYMMDD)
    ("Doubao_Seed_1.6", "doubao-seed-1.6"),                        # case + separator variant
    ("qwen3-32b", "qwen3-32b"), ("qwen2.5-72b-instruct", "qwen2.5-72b-instruct"),
    ("glm-4.5-flash", "glm-4.5-flash"), ("kimi-k2.5", "kimi-k2.5"), ("moonshot/kimi-k2.5", "kimi-k2.5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"), ("us.anthropic.claude-opus-4-6-v1:0", "claude-opus-4-6"),
])
def test_names_seen_in_traffic_resolve(seen: str, key: str) -> None:
    assert resolve_model(seen) == key


def test_endpoint_ids_resolve_through_the_user_alias_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_model("ep-20250615-abcde") is None
    f = tmp_path / "aliases.json"
    f.write_text(json.dumps({"aliases": {"ep-20250615-abcde": "doubao-seed-1.6"}}))
    monkeypatch.setenv(resolver.ALIASES_ENV, str(f))
    resolver.reset_model_aliases()
    assert resolve_model("ep-20250615-abcde") == "doubao-seed-1.6"
    assert resolve_model("EP-20250615-ABCDE") == "doubao-seed-1.6"


def test_bad_alias_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "aliases.json"
    f.write_text('{"aliases": ["not", "a", "map"]}')
    with pytest.raises(resolver.AliasFileError, match="aliases.json"):
        resolver.load_model_aliases(f)


def test_unknown_model_gets_a_suggestion_an_unknown_cost_and_estimated_counts() -> None:
    assert resolve_model("qwen-maxx") is None
    assert suggestions("qwen-maxx")[0] == "qwen-max"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert get_price("qwen-maxx") is None
    assert any(issubclass(w.category, UnknownModelWarning) and "did you mean 'qwen-max'" in str(w.message)
               for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cost = usage_cost(Usage.from_provider(input_tokens=1000, output_tokens=10), "qwen-maxx", "CNY")
    assert cost is None  # unknown: never 0, never a currency
    choice = tokenizer_for("qwen-maxx")
    assert choice.source == "estimated" and "qwen-max" in (choice.approximation or "")


def test_request_model_is_kept_when_the_response_model_does_not_resolve() -> None:
    assert prices.pick_model("doubao-seed-1.6", "ep-20250615-abcde") == "doubao-seed-1.6"
    assert prices.pick_model("gpt-4.1", "gpt-4.1-2025-04-14") == "gpt-4.1-2025-04-14"
    assert prices.pick_model("my-deployment", "gpt-4o-2024-08-06") == "gpt-4o-2024-08-06"
    assert prices.pick_model("gpt-4.1", None) == "gpt-4.1"
