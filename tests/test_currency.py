"""Chinese providers first-class: a run on CNY-priced models reports in CNY by default (issue #15 point 5)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tokprof.cli import main
from tokprof.profiler.model import LLMCall, Run, Span, Usage
from tokprof.profiler.providers.currency import CURRENCY_ENV, CurrencyError, money, run_currency
from tokprof.profiler.store import save_run


def _run(model: str, **meta: str) -> Run:
    call = LLMCall(provider=None, model=model, messages=[{"role": "user", "content": "你好"}],
                   usage=Usage.from_provider(input_tokens=100_000, output_tokens=10_000))
    r = Run(run_id=f"r-{model}", name="cny", spans=[Span("s1", None, "r", "llm", "call", start_ns=0,
                                                          wall_start_ns=0, end_ns=1, llm=call)])
    r.metadata.update(meta)
    return r


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CURRENCY_ENV, raising=False)


def test_cny_priced_run_reports_in_cny_without_conversion() -> None:
    s = _run("qwen-plus").summary()
    # qwen-plus mainland list: 0.8 CNY in, 2 CNY out per 1M: 0.1 x 0.8 + 0.01 x 2
    assert (s.currency, s.cost) == ("CNY", Decimal("0.08") + Decimal("0.02"))
    assert _run("gpt-4.1").summary().currency == "USD"


def test_explicit_run_and_env_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_currency(_run("qwen-plus"), "usd") == "USD"
    assert run_currency(_run("qwen-plus", currency="USD")) == "USD"       # profile(currency="USD")
    monkeypatch.setenv(CURRENCY_ENV, "CNY")
    assert run_currency(_run("gpt-4.1")) == "CNY"
    with pytest.raises(CurrencyError, match="EUR"):
        run_currency(_run("gpt-4.1"), "EUR")


def test_money_never_labels_an_unknown_amount() -> None:
    assert money(None, "USD") == "unknown"
    assert money(Decimal("0.0873"), "CNY") == "¥0.0873"
    assert money(Decimal("1234.5"), "USD", 2) == "$1,234.50"


def test_profile_records_the_currency() -> None:
    import tokprof

    with tokprof.profile("x", currency="cny") as run:
        pass
    assert run.metadata["currency"] == "CNY"


def test_show_json_defaults_to_cny_for_a_cny_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = save_run(_run("glm-4-plus"), tmp_path)
    assert main(["show", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["cost"]["currency"] == "CNY" and Decimal(doc["cost"]["amount"]) == Decimal("0.55")  # 110K x 5 CNY
