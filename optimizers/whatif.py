"""Model selection as a what-if: what would the same requests cost on another model?

Every call's input is re-tokenized with the target model's tokenizer and chat template
(:func:`tokprof.profiler.providers.chat_format.count_prompt`). When the provider reported the original
input, it is scaled by the ratio of the two counts of the recorded messages instead, so what the trace did
not record (tool definitions in τ²-bench files) is kept in proportion rather than dropped. Its output tokens are estimated as the
recorded output scaled by how the two tokenizers count the recorded reply (the input ratio when there is
no reply text); then the calls are billed under the target's prices and cache rules by the simulator
(automatic caching with its hit-rate range; explicit breakpoints are not assumed). Everything here is
``estimated``: the requests are the ones the run sent, but another model would answer differently, may
take more or fewer steps, may think (hidden reasoning tokens) more or less, and may fail the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from tokprof.optimizers.paid import CostRange, paid_bills, simulate, total_range
from tokprof.profiler.model import Run, Usage

CAVEAT = ("estimated: the run's own requests re-tokenized and re-priced; another model answers differently, "
          "may take more or fewer steps or hidden reasoning tokens, and may fail the task. Check quality "
          "before switching (e.g. `tokprof verify` against that model, or re-run your evaluation).")


@dataclass
class WhatIf:
    """The estimated bill of ``runs`` on ``model``."""

    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost: CostRange
    exact_tokenizer: bool
    unpriced: int
    currency: str = "USD"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "evidence": "estimated", "calls": self.calls,
                "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cost": self.cost.to_dict(), "currency": self.currency, "exact_tokenizer": self.exact_tokenizer,
                "unpriced_calls": self.unpriced, "caveat": CAVEAT}


def retarget(run: Run, model: str) -> Run:
    """A copy of ``run`` whose calls are sent to ``model``: input counted, output estimated, no cost."""
    from tokprof.profiler.providers.chat_format import count_completion, count_prompt

    new = run.copy()
    for span in new.llm_spans():
        call = span.llm
        assert call is not None
        u = call.usage
        n_in = count_prompt(call.messages, model, call.tools or None).tokens
        if u.source("input_tokens") == "provider" and u.input_tokens and call.model:
            try:
                n_orig = count_prompt(call.messages, call.model, call.tools or None).tokens
            except Exception:  # the original model's tokenizer is unknown: the target's own count
                n_orig = 0
            if n_orig:
                n_in = round(u.input_tokens * n_in / n_orig)
        ratio = 1.0
        try:
            theirs = count_completion(call.output, model) if call.output else 0
            ours = count_completion(call.output, call.model or model) if call.output else 0
        except Exception:  # an unknown original model: fall back to the input ratio
            theirs = ours = 0
        if theirs and ours:
            ratio = theirs / ours
        elif u.input_tokens:
            ratio = n_in / u.input_tokens
        usage = Usage()
        usage.set("input_tokens", n_in, "estimated")
        usage.set("output_tokens", round(u.output_tokens * ratio), "estimated")
        call.usage = usage
        call.model, call.provider, call.cost = model, None, None
    return new


def whatif(runs: list[Run], model: str, currency: str = "USD") -> WhatIf:
    """The estimated bill of ``runs`` (one account) on ``model`` (see the module docstring)."""
    from tokprof.profiler.providers.tokenizers import tokenizer_for

    moved = [retarget(r, model) for r in runs]
    sim = simulate(moved, currency)
    costs = [c.cost for calls in sim for c in calls.values()]
    inp = sum(s.llm.usage.input_tokens for r in moved for s in r.llm_spans() if s.llm is not None)
    out = sum(s.llm.usage.output_tokens for r in moved for s in r.llm_spans() if s.llm is not None)
    try:
        exact = bool(tokenizer_for(model).exact)
    except Exception:
        exact = False
    return WhatIf(model, len(costs), inp, out, total_range(costs), exact, sum(1 for c in costs if not c.known),
                  currency)


def paid_total(runs: list[Run], currency: str = "USD") -> CostRange:
    """What ``runs`` paid (the comparison point)."""
    return total_range(b.total for b in paid_bills(runs, currency))


def _fmt(v: Decimal | None) -> str:
    return "unknown" if v is None else f"{v:,.4f}"
