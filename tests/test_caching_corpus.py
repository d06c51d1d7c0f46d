"""The caching passes on the real corpus.

* τ²-bench files whose agent is a Claude model were billed without prompt caching; 86-92% of each agent
  call's input repeats the previous call's prefix, so prompt-cache alone must cut the agent's billed cost
  by at least 55%.
* τ-bench (tau1): the response cache's hits must be exactly the calls whose full request repeats an
  earlier one, counted here independently from the raw trajectories.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

from tokprof.optimizers.base import PassContext
from tokprof.optimizers.billing import bill_runs
from tokprof.optimizers.prompt_cache import PromptCachePass
from tokprof.optimizers.response_cache import ResponseCachePass
from tokprof.profiler.interchange import import_file


def _agent_cost(runs, bills) -> Decimal:  # noqa: ANN001
    total = Decimal(0)
    for run, bill in zip(runs, bills):
        by_id = run.by_id()
        for b in bill.calls:
            if run.span_tags(by_id[b.span_id]).get("side") == "agent":
                assert b.cost is not None, f"no price for {b.model}"
                total += b.cost
    return total


def test_prompt_cache_cuts_claude_agent_cost(corpus: Path) -> None:
    files = []
    for f in sorted((corpus / "tau2").glob("*.json.gz")):
        with gzip.open(f, "rt") as fh:
            agent = json.load(fh)["info"]["agent_info"]["llm"]
        if "claude" in agent:
            files.append(f)
    assert len(files) == 2
    for f in files:
        runs = import_file(f).runs
        before = _agent_cost(runs, bill_runs(runs))
        optimized = [PromptCachePass().apply(r, PassContext())[0] for r in runs]
        after = _agent_cost(optimized, bill_runs(optimized))
        cut = 1 - after / before
        print(f"{f.name[:50]}: agent {before:.4f} -> {after:.4f} USD ({cut:.1%} cut)")
        assert cut >= Decimal("0.55"), f.name


def _independent_repeats(path: Path) -> tuple[int, int]:
    """(calls, calls whose request repeats an earlier one): every assistant turn of a τ-bench trajectory
    was a gpt-4o call whose request was the messages before it; no tools or parameters are recorded."""
    with gzip.open(path, "rt") as fh:
        records = json.load(fh)
    seen: set[str] = set()
    calls = repeats = 0
    for rec in records:
        traj = rec["traj"]
        for i, m in enumerate(traj):
            if m["role"] == "assistant":
                key = json.dumps(traj[:i], sort_keys=True)
                calls += 1
                repeats += key in seen
                seen.add(key)
    return calls, repeats


def test_response_cache_hit_rate_on_tau1(corpus: Path) -> None:
    path = corpus / "tau1" / "gpt-4o-airline.json.gz"
    calls, repeats = _independent_repeats(path)
    runs = import_file(path).runs
    ctx = PassContext()
    p = ResponseCachePass()
    hits = sum(len(p.apply(r, ctx)[1]) for r in runs)
    assert sum(len(r.llm_spans()) for r in runs) == calls
    print(f"tau1: {hits}/{calls} calls served by the response cache; {repeats} repeat an earlier request")
    assert repeats > 0
    assert hits == repeats
