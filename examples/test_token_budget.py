"""Token budgets in CI with tokprof's pytest plugin (installed with tokprof; nothing to configure).

    pytest examples/test_token_budget.py                                  # budgets
    pytest examples/test_token_budget.py --tokprof-baseline tokens.json   # 1st run records, later runs
                                                                          # fail on > 10% token growth
    pytest examples/test_token_budget.py --tokprof-baseline tokens.json --tokprof-tolerance 5

A test over budget fails with the numbers and the top spans, e.g.::

    tokprof: examples/test_token_budget.py::test_demo_agent exceeded its token budget:
      - input tokens 118,755 > max_input_tokens=100,000
      usage: 14 LLM calls, input 118,755 (cached 0), output 610, cost $0.365415
      top spans by own tokens: ...
"""

from __future__ import annotations

import pytest

from tokprof.demo import run_agent


@pytest.mark.token_budget(max_input_tokens=150_000, max_cost_usd=0.50)
def test_demo_agent() -> None:
    """The marker alone profiles the test; the demo agent's baseline run stays within budget."""
    _run, answer = run_agent()
    assert "[T-101] Hi Dana" in answer


def test_demo_agent_optimized(tokprof) -> None:  # noqa: ANN001 - the fixture is the Run being recorded
    """The fixture gives the test its Run: assert on tokens directly."""
    _run, answer = run_agent(optimize=["response-cache", "prompt-cache", "dedupe", "observation-mask", "minify"])
    assert "[T-101] Hi Dana" in answer
    assert tokprof.total_usage().input_tokens < 80_000
