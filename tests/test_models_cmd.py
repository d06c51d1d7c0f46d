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
