"""The fixes the report opens with: at most three, ranked by money at stake.

Candidates are the diagnostics (each knows what, where in the code, the money at stake and its evidence
class) and the optimization passes that saved money in the waterfall. A pass is only a candidate when its
saving is positive; the ranking uses the high end of each saving's range, and ties go to the better
evidence (measured > simulated > estimated).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Sequence

from tokprof.reports.types import Diagnostic, Fix, WaterfallStep

MAX_FIXES = 3
EVIDENCE_RANK = {"measured": 0, "simulated": 1, "estimated": 2}

_WHAT = {
    "prefix-break": "Keep the prompt prefix stable so the provider's cache can reuse it",
    "repeated-calls": "Cache identical requests (response cache)",
    "oversized-tool-output": "Trim or mask large tool outputs before they are re-sent",
    "decomposition": "Split the task: cheaper model for routing, scoped context for workers",
}
_RISK = {
    "prefix-break": "low: reordering static content does not change what the model sees",
    "repeated-calls": "low: only byte-identical requests are served; unsafe for non-deterministic sampling",
    "oversized-tool-output": "medium: lossy; the model may need a detail that was trimmed",
    "decomposition": "medium: changes the agent's structure; re-run its evaluation",
}


def _from_diagnostic(d: Diagnostic) -> Fix:
    what = _WHAT.get(d.kind, d.title)
    if d.runs_total > 1:
        what += f" (in {d.runs_affected} of {d.runs_total} runs)"
    return Fix(what=what, where=d.where or "—", saving=d.money, low=d.low, evidence=d.evidence,
               risk=d.risk or _RISK.get(d.kind, "unknown"), source=d.kind)


def _from_step(s: WaterfallStep) -> Fix:
    return Fix(what=f"Enable the {s.pass_name} pass: {s.description}", where=f"{s.calls_changed:,} calls changed",
               saving=s.delta_cost, low=s.delta_cost, evidence=s.evidence, risk=s.risk, source=s.pass_name)


def top_fixes(diagnostics: Sequence[Diagnostic], waterfall: Sequence[WaterfallStep], currency: str = "USD",
              limit: int = MAX_FIXES) -> list[Fix]:
    """The ``limit`` fixes with the most money at stake (unpriced findings rank last, by tokens)."""
    cands = [(_from_diagnostic(d), d.tokens) for d in diagnostics if d.money or d.tokens]
    cands += [(_from_step(s), s.delta_tokens) for s in waterfall
              if s.delta_cost is not None and s.delta_cost > 0 and s.evidence != "measured"]
    cands.sort(key=lambda ft: (-(ft[0].saving or Decimal(0)), EVIDENCE_RANK.get(ft[0].evidence, 3), -ft[1]))
    seen: set[str] = set()
    out: list[Fix] = []
    for f, _ in cands:
        if f.source in seen:
            continue
        seen.add(f.source)
        out.append(f)
        if len(out) == limit:
            break
    return out
