"""Issue #21 (pytest plugin): inf/string budgets and malformed baselines are usage errors, not hook
tracebacks; baseline writes are atomic; parametrised ids holding secrets are stored redacted."""

from __future__ import annotations

import json

import pytest

from tests.secret_samples import SECRETS
from tests.test_pytest_plugin import make_test, run

pytest_plugins = ["pytester"]


@pytest.mark.parametrize("budget", ["max_input_tokens=float('inf')", "max_input_tokens='100'",
                                    "max_total_tokens=float('nan')", "max_cost_usd='cheap'"])
def test_bad_budgets_are_usage_errors(pytester: pytest.Pytester, budget: str) -> None:
    make_test(pytester, 100, marker=f"@pytest.mark.token_budget({budget})", fixture="")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert "not a finite non-negative number" in result.stderr.str()


@pytest.mark.parametrize("doc", ['{"schema": 1, "tests": {"t": 5}}', '[1, 2]',
                                 '{"schema": 1, "tests": {"t": {"total_tokens": "lots"}}}', "[" * 100_000])
def test_malformed_baselines_are_usage_errors(pytester: pytest.Pytester, doc: str) -> None:
    make_test(pytester, 100)
    (pytester.path / "base.json").write_text(doc)
    result = run(pytester, "--tokprof-baseline", "base.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "not a tokprof baseline file" in result.stderr.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_baseline_ids_are_redacted_and_written_atomically(pytester: pytest.Pytester) -> None:
    key = SECRETS["openai-project"]
    pytester.makepyfile(test_inner=f"""
        import pytest
        from tokprof.profiler import record_llm_call

        @pytest.mark.parametrize("k", [{key!r}])
        def test_it(tokprof, k):
            record_llm_call(model="gpt-4o-mini", usage={{"input_tokens": 10, "output_tokens": 1}})
    """)
    result = run(pytester, "--tokprof-baseline", "base.json")
    result.assert_outcomes(passed=1)
    text = (pytester.path / "base.json").read_text()
    assert key not in text
    # the id holds the parameter redacted, or (pytest >= 9.2, which names this parameter by position) no secret
    assert "REDACTED" in text or "test_it[k0]" in text
    assert [p.name for p in pytester.path.iterdir() if p.name.endswith(".tmp")] == []
    # the redacted id still finds its entry: a second run compares instead of calling it new
    result = run(pytester, "--tokprof-baseline", "base.json")
    result.assert_outcomes(passed=1)
    assert json.loads(text)["tests"]
