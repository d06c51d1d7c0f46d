"""The tokprof pytest plugin, driven through pytester (real inner pytest sessions)."""

from __future__ import annotations

import json

import pytest

pytest_plugins = ["pytester"]

# An inner test module whose test makes one LLM call with the given usage (recorded by hand, as code no
# integration covers would), so token numbers are exact and known.
TEST_TEMPLATE = """
import pytest
from tokprof.profiler import record_llm_call, trace

@trace(kind="agent")
def agent(n_in, n_out):
    record_llm_call(model="gpt-4o-mini", provider="openai", name="plan",
                    messages=[{{"role": "user", "content": "hi"}}],
                    # no answer when n_out is 0: 0 output tokens for a real answer is not provider truth
                    output="ok" if n_out else "", usage={{"input_tokens": n_in, "output_tokens": n_out}})

{marker}
def test_agent({fixture}):
    agent({n_in}, {n_out})
"""


def make_test(pytester: pytest.Pytester, n_in: int, n_out: int = 10, marker: str = "",
              fixture: str = "tokprof") -> None:
    pytester.makepyfile(test_inner=TEST_TEMPLATE.format(n_in=n_in, n_out=n_out, marker=marker, fixture=fixture))


# Other installed plugins are blocked in the inner sessions: they cost seconds per session and are not
# what these tests are about (tokprof's own plugin still loads through its entry point).
OTHER_PLUGINS = ("hypothesispytest", "langsmith_plugin", "benchmark", "anyio", "cacheprovider")


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    blocked = [a for name in OTHER_PLUGINS for a in ("-p", f"no:{name}")]
    return pytester.runpytest(*blocked, *args)


def test_fixture_is_the_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        from tokprof.profiler import Run, record_llm_call

        def test_it(tokprof):
            assert isinstance(tokprof, Run)
            record_llm_call(model="gpt-4o-mini", usage={"input_tokens": 120, "output_tokens": 7})
            assert tokprof.total_usage().input_tokens == 120
            assert tokprof.total_usage().output_tokens == 7
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*tokprof token usage*", "*test_inner.py::test_it*120*7*ok*"])


def test_budget_pass_and_fail_with_breakdown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        import pytest
        from tokprof.profiler import record_llm_call, trace

        @trace(kind="agent")
        def agent(n_in, n_out):
            record_llm_call(model="gpt-4o-mini", provider="openai", name="plan",
                            messages=[{"role": "user", "content": "hi"}],
                            output="ok", usage={"input_tokens": n_in, "output_tokens": n_out})

        @pytest.mark.token_budget(max_input_tokens=1000, max_output_tokens=50)
        def test_within(tokprof):
            agent(900, 50)

        @pytest.mark.token_budget(max_input_tokens=1000, max_output_tokens=50)
        def test_over(tokprof):
            agent(5000, 80)
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*test_inner.py::test_over exceeded its token budget:",
        "*input tokens 5,000 > max_input_tokens=1,000",
        "*output tokens 80 > max_output_tokens=50",
        "*usage: 1 LLM calls, input 5,000*output 80*",
        "*top spans by own tokens:",
        "*5,080*llm*plan*",
    ])
    result.stdout.fnmatch_lines(["*test_inner.py::test_over*5,000*80*over budget*",
                                 "*test_inner.py::test_within*900*50*ok*"])
    assert "test_within exceeded" not in result.stdout.str()


def test_budget_marker_profiles_without_the_fixture(pytester: pytest.Pytester) -> None:
    make_test(pytester, 3000, marker="@pytest.mark.token_budget(max_total_tokens=2000)", fixture="")
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*total tokens 3,010 > max_total_tokens=2,000*"])


def test_cost_budget(pytester: pytest.Pytester) -> None:
    # gpt-4o-mini: 0.15 USD / 1M input tokens, so 1M input tokens cost 0.15 USD.
    pytester.makepyfile(test_inner="""
        import pytest
        from tokprof.profiler import record_llm_call

        @pytest.mark.token_budget(max_cost_usd=0.10)
        def test_dear():
            record_llm_call(model="gpt-4o-mini", usage={"input_tokens": 1_000_000, "output_tokens": 0})

        @pytest.mark.token_budget(max_cost_usd=0.20)
        def test_cheap_enough():
            record_llm_call(model="gpt-4o-mini", usage={"input_tokens": 1_000_000, "output_tokens": 0})
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_dear exceeded its token budget:", "*cost $0.150000 > max_cost_usd=$0.1*"])


def test_unknown_budget_argument_is_a_usage_error(pytester: pytest.Pytester) -> None:
    make_test(pytester, 10, marker="@pytest.mark.token_budget(max_tokens=5)")
    result = run(pytester)
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*unknown token_budget argument(s) max_tokens*"])


def test_own_failure_is_kept_and_tabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        from tokprof.profiler import record_llm_call

        def test_it(tokprof):
            record_llm_call(model="gpt-4o-mini", usage={"input_tokens": 50, "output_tokens": 5})
            assert False, "the agent's own assertion"
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the agent's own assertion*", "*test_inner.py::test_it*50*5*failed*"])


def test_baseline_record_then_compare(pytester: pytest.Pytester) -> None:
    baseline = pytester.path / "tokens.json"
    make_test(pytester, 1000, n_out=0)
    result = run(pytester, f"--tokprof-baseline={baseline}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_inner.py::test_agent*1,000*recorded*", "*baseline written to*"])
    data = json.loads(baseline.read_text())
    assert data["tests"]["test_inner.py::test_agent"]["total_tokens"] == 1000

    # +5%: within the default 10% tolerance.
    make_test(pytester, 1050, n_out=0)
    result = run(pytester, f"--tokprof-baseline={baseline}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_inner.py::test_agent*1,050*1,000*+5.0%*ok*"])

    # +20%: a regression.
    make_test(pytester, 1200, n_out=0)
    result = run(pytester, f"--tokprof-baseline={baseline}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*test_inner.py::test_agent uses more tokens than its baseline:",
        "*tokens grew 1,000 -> 1,200 (+20.0%; tolerance 10%*",
        "*test_inner.py::test_agent*1,200*1,000*+20.0%*regressed*",
    ])
    # The baseline file is not rewritten by a comparing session.
    assert json.loads(baseline.read_text())["tests"]["test_inner.py::test_agent"]["total_tokens"] == 1000

    # A wider tolerance lets it through; 20% exactly is allowed.
    run(pytester, f"--tokprof-baseline={baseline}", "--tokprof-tolerance=25%").assert_outcomes(passed=1)
    run(pytester, f"--tokprof-baseline={baseline}", "--tokprof-tolerance", "20").assert_outcomes(passed=1)

    # A deliberate change: update the baseline, then the new number is the reference.
    run(pytester, f"--tokprof-baseline={baseline}", "--tokprof-update-baseline").assert_outcomes(passed=1)
    assert json.loads(baseline.read_text())["tests"]["test_inner.py::test_agent"]["total_tokens"] == 1200
    make_test(pytester, 1300, n_out=0)
    run(pytester, f"--tokprof-baseline={baseline}").assert_outcomes(passed=1)  # +8.3%


def test_new_test_is_not_a_regression(pytester: pytest.Pytester) -> None:
    baseline = pytester.path / "tokens.json"
    baseline.write_text(json.dumps({"schema": 1, "tests": {"test_other.py::test_x": {"total_tokens": 5}}}))
    make_test(pytester, 999)
    result = run(pytester, f"--tokprof-baseline={baseline}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_inner.py::test_agent*new*"])


def test_bad_baseline_file_and_tolerance(pytester: pytest.Pytester) -> None:
    baseline = pytester.path / "tokens.json"
    baseline.write_text("not json")
    make_test(pytester, 10)
    result = run(pytester, f"--tokprof-baseline={baseline}")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*tokens.json: not a tokprof baseline file*"])
    result = run(pytester, "--tokprof-tolerance=lots")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*--tokprof-tolerance expects a percentage*"])


def test_silent_when_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        def test_plain():
            assert 1 + 1 == 2
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    assert "tokprof token usage" not in result.stdout.str()


def test_summary_lists_every_profiled_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        import pytest
        from tokprof.profiler import record_llm_call

        @pytest.mark.parametrize("n", [100, 300])
        def test_p(tokprof, n):
            record_llm_call(model="gpt-4o-mini", usage={"input_tokens": n, "output_tokens": 1})

        def test_plain():
            pass
    """)
    result = run(pytester)
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    section = out[out.index("tokprof token usage"):]
    assert "test_p[100]" in section and "test_p[300]" in section and "test_plain" not in section
    # biggest first
    assert section.index("test_p[300]") < section.index("test_p[100]")


def test_code_that_opens_its_own_profile_is_counted(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner="""
        import pytest
        from tokprof.profiler import profile, record_llm_call

        def app():
            with profile("app") as inner:
                record_llm_call(model="gpt-4o-mini", name="inner-call",
                                usage={"input_tokens": 700, "output_tokens": 3})
            return inner

        @pytest.mark.token_budget(max_input_tokens=500)
        def test_nested(tokprof):
            inner = app()
            assert len(inner.llm_spans()) == 1  # the app's own run is untouched
            assert tokprof.total_usage().input_tokens == 700  # and the test's run includes it
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*input tokens 700 > max_input_tokens=500*", "*703*llm*inner-call*"])
