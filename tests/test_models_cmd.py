"""`tokprof models`: what tokprof knows, per model (issue #15 point 2)."""

from __future__ import annotations

import json

import pytest

from tokprof.cli import main


def test_models_json_lists_prices_per_currency_tiers_rule_and_source(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "qwen3-max", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert [r["model"] for r in rows] == ["qwen3-max"]
    r = rows[0]
    assert set(r["prices"]) == {"CNY", "USD"}
    assert r["prices"]["CNY"]["input"] == "6" and r["prices"]["USD"]["input"] == "1.2"
    assert r["prices"]["CNY"]["tiers"][0]["above"] == 32000
    assert r["prices"]["USD"]["source"].startswith("https://www.alibabacloud.com/")
    assert r["tokenizer"]["encoding"] == "qwen"
    assert r["cache_rule"]["mode"] == "automatic" and r["cache_rule"]["confidence"] in ("documented", "assumed")


def test_models_resolves_a_name_seen_in_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "anthropic/claude-sonnet-4.5", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["models"]
    assert rows[0]["model"] == "claude-sonnet-4-5"
    assert rows[0]["prices"]["USD"]["cache_write_1h"] == "6"


def test_models_glob_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "glm-*"]) == 0
    out = capsys.readouterr().out
    assert "glm-4.5-flash" in out and "open.bigmodel.cn" in out


def test_unknown_pattern_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "qwen-maxx"]) == 1
    assert "did you mean qwen-max" in capsys.readouterr().out


def test_models_say_which_prices_are_confirmed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "doubao-seed-1.6", "--json"]) == 0
    r = next(m for m in json.loads(capsys.readouterr().out)["models"] if m["model"] == "doubao-seed-1.6")
    # mainland list not confirmed; the international (BytePlus) list seen on the provider's page
    assert r["prices"]["CNY"]["estimated"] is True and "note" in r["prices"]["CNY"]
    assert r["prices"]["USD"]["estimated"] is False
    assert r["prices"]["USD"]["confirmed"].startswith("2026-12-02 https://docs.byteplus.com/")
    assert main(["models", "gpt-5-nano"]) == 0
    out = capsys.readouterr().out
    assert "seen 2026-12-02" in out and "(estimated)" not in out
    assert main(["models", "gpt-4o-mini"]) == 0
    assert "(estimated)" in capsys.readouterr().out
