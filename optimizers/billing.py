"""The optimizers' view of billing: the provider-cache simulator and the helpers passes use with it.

The simulator itself lives with the provider facts it applies (:mod:`tokprof.profiler.providers.cache_sim`,
prompts as units in :mod:`~tokprof.profiler.providers.prompt_units`, bills in
:mod:`~tokprof.profiler.providers.bills`), because the as-paid bill of an *unchanged* run — which the run
summary shows — simulates a provider's automatic caching with it (:mod:`tokprof.profiler.providers.as_paid`).
The optimizers re-bill *rewritten* runs with the very same code, so every pass, and every combination of
passes, is priced here (never by a pass's own arithmetic) and the savings ledger compares like with like.
This module re-exports those names for the optimizers and adds the pipeline's pricer (:func:`price_run`),
:func:`annotate` and :func:`request_digest`.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any, Iterable

from tokprof.profiler import keys
from tokprof.profiler.model import Run
# Re-exported: the optimizers (and their tests) import the billing vocabulary from here.
from tokprof.profiler.providers.bills import (  # noqa: F401
    Basis, BillingError, CallBill, RunBill, call_cost)
from tokprof.profiler.providers.cache_rules import (  # noqa: F401
    NO_CACHE, CacheRule, billing_rules, cache_rule, provider_of)
from tokprof.profiler.providers.cache_sim import (  # noqa: F401
    BILLING_MODES, PLAN_ATTR, SERVED_ATTR, BillingMode, ProviderCache, Simulator, bill_run, bill_runs,
    billing_mode, marked_breakpoints, plan_of)
from tokprof.profiler.providers.cost import (  # noqa: F401
    MILLION, PriceLookup, Rates, TokenSplit, default_prices, split_cost)
from tokprof.profiler.providers.cost import convert_or_none as convert_cost  # noqa: F401
from tokprof.profiler.providers.prompt_units import (  # noqa: F401
    BLOCK_UNITS, PromptUnits, block_hashes, prefix_key, prompt_units)


def price_run(run: Run, currency: str = "USD", *, mode: str | None = None,
              prices: PriceLookup | None = None) -> tuple[Decimal | None, list[Decimal | None]]:
    """The pipeline's pricer: ``(total, per-call costs in run.llm_spans() order)`` in ``currency``.

    ``total`` sums the calls whose price is known and is ``None`` only when none is; a call without a
    known price is ``None`` (unknown, never zero). See :func:`bill_run` for ``mode``."""
    bill = bill_run(run, currency, mode=mode, prices=prices)
    return bill.total, [c.cost for c in bill.calls]


def annotate(run: Run, bill: RunBill) -> None:
    """Record on each LLM span how it was billed (``span.attributes["billing"]``): the basis (``recorded``
    cache tokens / ``simulated`` / ``uncached`` / ``served``) and the token split. Mutates ``run``: call it
    on a copy you own."""
    by_id = run.by_id()
    for b in bill.calls:
        span = by_id.get(b.span_id)
        if span is not None:
            span.set_attribute(keys.BILLING, {k: v for k, v in b.to_dict().items() if k not in ("span_id",)})


def request_digest(parts: Iterable[Any]) -> str:
    """A stable hex digest of JSON-able parts (shared by the caching passes)."""
    h = hashlib.blake2b(digest_size=16)
    for p in parts:
        b = json.dumps(p, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()
