"""What a run paid, call by call: THE as-paid bill every figure of tokprof starts from.

One function (:func:`paid_bills`) gives the bill a run actually incurred, from the best evidence the trace
has, and every place that shows a run's cost uses it: the run summary (``tokprof show``, ``run.summary()``,
``tokprof ls``), ``tokprof import``, the optimizer's baseline (``tokprof optimize``), the report and
``tokprof compare``, and the demo. Each call's figure says how it is known (its ``basis``):

``recorded cost`` (:data:`RECORDED`)
    the trace carries the cost the provider/harness charged (τ²-bench ``cost``): that amount, a point.
``provider cache tokens`` (:data:`CACHE_TOKENS`)
    the provider reported cache-read / cache-write tokens: tokens x prices, a point.
``simulated automatic caching`` (:data:`SIMULATED`)
    a provider with *automatic* prefix caching (OpenAI, xAI, DeepSeek...) and nothing recorded about
    it: the provider's automatic caching simulated on the unchanged run
    (:mod:`tokprof.profiler.providers.cache_sim`), with a range (below).
``uncached`` (:data:`UNCACHED`)
    no caching applies (no rule for the provider, or explicit breakpoints and none used): a point.

A run is its own account: its bill depends on the run alone, never on which other runs are loaded beside
it (so ``show`` on one run, ``import`` of its file and ``optimize`` of a folder give the same figure). What
other runs of the same account contribute is the prefix they share (tool definitions and system prompt):
the simulation starts with that prefix warm (:func:`simulated_bill`), as it is for all but the first run of
a benchmark or a product; the trace cannot say which, so the no-hits scenario keeps the cold bound. On the
corpus files that record their bills, this reproduces the recorded totals within -0.4%..+0.3% on four of
five files and keeps every recorded total inside the range (``benchmarks/bench_billing.py``; the held-out
gpt-5.4 file is predicted +36.6%, inside its range).

Error bars. Automatic cache hits are not promised per request (xAI lists "cache miss ... after cache
eviction" as expected, https://docs.x.ai/developers/advanced-api-usage/prompt-caching/usage-and-pricing; the
corpus shows OpenAI billing 14% fewer cached tokens than a perfect prefix cache would), so every simulated
automatic hit is billed under three scenarios of the hit rate ``h`` (the share of the simulator's predicted
cache-read tokens that the provider actually serves): ``all-hits`` (h = 1, best case), ``expected`` (h
calibrated per provider on recorded bills, :data:`HIT_RATES`) and ``no-hits`` (h = 0, worst case, the only
guaranteed bound). Explicit breakpoints (Anthropic) are deterministic: one point. A :class:`CostRange` keeps
the three and reports ``low``/``high`` whichever scenario gives them.

How a rewritten run is billed against this baseline is the optimizers' business
(:func:`tokprof.optimizers.paid.rebill`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Callable, Iterable

from tokprof.profiler.model import Run, Span
from tokprof.profiler.providers.bills import CallBill, RunBill, call_cost
from tokprof.profiler.providers.cache_rules import CacheRule, billing_rules, cache_rule
from tokprof.profiler.providers.bills import memo_lookup, memo_rules
from tokprof.profiler.providers.cache_sim import Simulator, bill_runs, plan_of
from tokprof.profiler.providers.cost import PriceLookup, Rates, default_prices
from tokprof.profiler.providers.cost import convert_or_none as convert_cost
from tokprof.profiler.providers.prices import priced_model

RECORDED = "recorded cost"
CACHE_TOKENS = "provider cache tokens"
SIMULATED = "simulated automatic caching"
UNCACHED = "uncached"
SERVED = "served"
BASES: tuple[str, ...] = (RECORDED, CACHE_TOKENS, SIMULATED, UNCACHED, SERVED)
"""Every basis of an unchanged run's call, strongest evidence first."""

SCENARIOS: tuple[str, ...] = ("all-hits", "expected", "no-hits")

HIT_RATES: dict[str, float] = {"openai": 0.844, "xai": 0.804}
"""Expected share of the simulator's automatic cache-read tokens that the provider really billed as cached,
per provider. Calibrated by ``benchmarks/bench_billing.py --calibrate`` on the *held-in* corpus files only
(:data:`CALIBRATION_FILES`): the cache-read tokens each call actually got are solved from its recorded cost
(``(full price - recorded cost) / (input price - cache-read price)``) and pooled over calls
with each run simulated as the baseline simulates it (:func:`simulated_bill`: its own cache, warm prefix)
(openai: 757,504 of 897,280 predicted tokens over gpt-4.1 and o3 calls; xai: 560,266 of 696,486 on grok-3).
The other files (claude-sonnet-4-5, gpt-5.4) are held out to test it."""

CALIBRATION_FILES: tuple[str, ...] = (
    "tau2/ironshell-ironforge_ironshell-ui_2026-03-09__ironshell_ironforge_grok3_wave2.json.gz",
    "tau2/ironshell-ironforge_ironshell-ui_2026-03-09__ironshell_ironforge_o3_wave2.json.gz",
    "tau2/ironshell-ironforge_ironshell-ui_2026-03-09__ironshell_ironforge_v2_sonnet46.json.gz",
)
DEFAULT_HIT_RATE = 0.83
"""Providers with automatic caching but no recorded bills to calibrate on (DeepSeek, Qwen, Moonshot): the
pooled rate of the calibrated ones (1,317,770 of 1,593,766 tokens), labelled ``assumed``."""


def hit_rate(provider: str | None) -> tuple[float, str]:
    """(expected hit rate, confidence) for a provider's automatic caching."""
    if provider in HIT_RATES:
        return HIT_RATES[provider], "calibrated"
    return DEFAULT_HIT_RATE, "assumed"


def rule_confidence(rule: CacheRule) -> str:
    """How sure the cache rule is: from the rules file when it says (``documented``/``calibrated``/
    ``assumed``), else ``documented`` for explicit breakpoints and the hit-rate confidence for automatic."""
    data = (billing_rules().get("providers") or {}).get(rule.provider) or {}
    conf = data.get("confidence")
    if isinstance(conf, dict):  # per-field confidences: the weakest one
        order = {"documented": 0, "calibrated": 1, "assumed": 2}
        conf = max((str(v) for v in conf.values()), key=lambda v: order.get(v, 2), default=None)
    if isinstance(conf, str) and conf:
        return conf
    if rule.mode == "automatic":
        return hit_rate(rule.provider)[1]
    return "documented"


@dataclass(frozen=True)
class CostRange:
    """A cost under each hit-rate scenario (:data:`SCENARIOS`); a point when they agree."""

    by_scenario: tuple[Decimal | None, ...]

    @classmethod
    def point(cls, value: Decimal | None) -> "CostRange":
        return cls((value,) * len(SCENARIOS))

    @property
    def expected(self) -> Decimal | None:
        return self.by_scenario[SCENARIOS.index("expected")]

    @property
    def known(self) -> bool:
        return all(v is not None for v in self.by_scenario)

    @property
    def low(self) -> Decimal | None:
        return min(self.by_scenario) if self.known else None  # type: ignore[type-var]

    @property
    def high(self) -> Decimal | None:
        return max(self.by_scenario) if self.known else None  # type: ignore[type-var]

    @property
    def is_point(self) -> bool:
        return self.known and self.low == self.high

    def __add__(self, other: "CostRange") -> "CostRange":
        return CostRange(tuple(None if a is None or b is None else a + b
                               for a, b in zip(self.by_scenario, other.by_scenario)))

    def __sub__(self, other: "CostRange") -> "CostRange":
        return CostRange(tuple(None if a is None or b is None else a - b
                               for a, b in zip(self.by_scenario, other.by_scenario)))

    def contains(self, value: Decimal, tolerance: Decimal = Decimal("0.000001")) -> bool:
        return self.known and self.low - tolerance <= value <= self.high + tolerance  # type: ignore[operator]

    def to_dict(self) -> dict[str, Any]:
        def s(v: Decimal | None) -> str | None:
            return None if v is None else str(v)
        best, expected, worst = self.by_scenario
        return {"expected": s(expected), "low": s(self.low), "high": s(self.high), "best": s(best),
                "worst": s(worst), "scenarios": {n: s(v) for n, v in zip(SCENARIOS, self.by_scenario)}}


def total_range(ranges: Iterable[CostRange]) -> CostRange:
    """Sum scenario by scenario over the calls whose cost is known (unknown is left out, never zero)."""
    sums = [Decimal(0)] * len(SCENARIOS)
    any_known = False
    for r in ranges:
        if r.known:
            any_known = True
            sums = [a + b for a, b in zip(sums, r.by_scenario)]  # type: ignore[operator]
    return CostRange(tuple(sums)) if any_known else CostRange.point(None)


@dataclass
class CallPaid:
    """One call's bill: how it is known (``basis``), its cost range and the confidence of the rule."""

    span_id: str
    model: str | None
    provider: str | None
    basis: str
    cost: CostRange
    confidence: str = "documented"

    def to_dict(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "model": self.model, "provider": self.provider, "basis": self.basis,
                "confidence": self.confidence, "cost": self.cost.to_dict()}


@dataclass
class RunPaid:
    """The bill of one run, one :class:`CallPaid` per LLM span in ``run.llm_spans()`` order."""

    run_id: str
    currency: str
    calls: list[CallPaid] = field(default_factory=list)

    @property
    def total(self) -> CostRange:
        return total_range(c.cost for c in self.calls)

    def by_span(self) -> dict[str, CallPaid]:
        return {c.span_id: c for c in self.calls}

    def bases(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.calls:
            out[c.basis] = out.get(c.basis, 0) + 1
        return out

    @property
    def unpriced(self) -> int:
        """Calls whose cost is unknown (no price for the model): left out of the total, never zero."""
        return sum(1 for c in self.calls if not c.cost.known)

    def label(self) -> str:
        """Where the total comes from, e.g. ``recorded cost 120 calls, simulated automatic caching 80 calls``."""
        bases = self.bases()
        return ", ".join(f"{b} {bases[b]} call{'s' if bases[b] != 1 else ''}"
                         for b in sorted(bases, key=lambda b: BASES.index(b) if b in BASES else len(BASES)))

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "currency": self.currency, "total": self.total.to_dict(),
                "bases": self.bases(), "label": self.label()}


# ---------------------------------------------------------------------------------------------------
# simulation under the hit-rate scenarios
# ---------------------------------------------------------------------------------------------------
def inferred_plan(span: Span, own: dict[str, Any] | None = None) -> dict[str, Any]:
    """The breakpoint an agent evidently used on an explicit-cache provider: the trace reports cache
    tokens but not where the ``cache_control`` marker was, so assume the last message (the usual
    placement for a growing conversation). Empty for anything else. ``own``: ``plan_of(span)``, if known."""
    call = span.llm
    if call is None or (own if own is not None else plan_of(span)):
        return {}
    u = call.usage
    if not (u.cache_read_tokens > 0 or u.cache_write_tokens > 0):
        return {}
    if cache_rule(call.provider, call.model).mode != "explicit" or not call.messages:
        return {}
    return {"breakpoints": [len(call.messages) - 1], "ttl": "1h" if u.cache_write_1h_tokens > 0 else "5m"}


def _scenario_cost(bill: CallBill, rule: CacheRule, rates: Rates | None, currency: str) -> CostRange:
    if bill.basis == "served":
        return CostRange.point(Decimal(0))
    if rule.mode != "automatic" or bill.cache_read_tokens <= 0:
        return CostRange.point(bill.cost)
    h_exp, _ = hit_rate(rule.provider)
    out = []
    for h in (1.0, h_exp, 0.0):
        reads = int(bill.cache_read_tokens * h)
        out.append(call_cost(replace(bill, cache_read_tokens=reads), rates, rule, currency))
    return CostRange(tuple(out))


def simulated_bill(run: Run, currency: str = "USD", plan_for: Callable[[int, Span], dict[str, Any]] | None = None,
                   prices: PriceLookup | None = None, *, own_plans: dict[tuple[int, str], dict[str, Any]] | None = None,
                   priced: bool = True) -> RunBill:
    """THE simulation of one run (all predicted hits served): its own provider cache, warmed with the prefix
    its account evidently sent before (:meth:`~tokprof.profiler.providers.cache_sim.Simulator.warm`), the
    calls fed in time order. ``plan_for(0, span)``: breakpoints for calls that carry none; ``own_plans``,
    ``priced``: as for :func:`~tokprof.profiler.providers.cache_sim.bill_runs`."""
    sim = Simulator()
    sim.warm(run)
    return bill_runs([run], currency, mode="simulate", plan_for=plan_for, prices=prices, simulator=sim,
                     own_plans=own_plans, priced=priced)[0]


def simulate(runs: list[Run], currency: str = "USD",
             plans: dict[tuple[int, str], dict[str, Any]] | None = None,
             prices: PriceLookup | None = None) -> list[dict[str, CallPaid]]:
    """Every call of ``runs`` billed by the simulator from its messages, under the hit-rate scenarios; each
    run is its own account (see the module docstring). ``plans``: (run index, span id) -> breakpoints for
    calls that carry none."""
    return simulate_in(runs, (currency,), plans, prices)[currency]


def simulate_in(runs: list[Run], currencies: tuple[str, ...],
                plans: dict[tuple[int, str], dict[str, Any]] | None = None,
                prices: PriceLookup | None = None) -> dict[str, list[dict[str, CallPaid]]]:
    """:func:`simulate` priced in each of ``currencies``: which tokens hit the cache does not depend on the
    currency, so each run is simulated once and its bills priced once per currency (the ledger stores USD
    and CNY)."""
    plans = plans or {}
    lookup = memo_lookup(prices or default_prices)
    rule_of = memo_rules()
    out: dict[str, list[dict[str, CallPaid]]] = {c: [] for c in currencies}
    for i, run in enumerate(runs):
        def plan_for(_: int, span: Span, i: int = i) -> dict[str, Any]:
            return plans.get((i, span.span_id), {})

        rb = simulated_bill(run, currencies[0], plan_for, lookup)
        per: dict[str, dict[str, CallPaid]] = {c: {} for c in currencies}
        for span, b in zip(run.llm_spans(), rb.calls):
            call = span.llm
            assert call is not None
            plan = plan_of(span) or plan_for(0, span)
            rule = rule_of(call.provider, call.model, bool(plan.get("breakpoints")))
            rates = lookup(priced_model(call.model, call.provider))
            basis = SERVED if b.basis == "served" else (
                SIMULATED if rule.mode == "automatic" else
                "simulated breakpoints" if plan.get("breakpoints") else UNCACHED)
            confidence = rule_confidence(rule) if rule.caches else "documented"
            for cur in currencies:
                bc = b if cur == b.currency or b.basis == "served" else \
                    replace(b, currency=cur, cost=call_cost(b, rates, rule, cur))
                per[cur][span.span_id] = CallPaid(span.span_id, call.model, rule.provider, basis,
                                                  _scenario_cost(bc, rule, rates, cur), confidence)
        for cur in currencies:
            out[cur].append(per[cur])
    return out


def original_plans(runs: list[Run]) -> dict[tuple[int, str], dict[str, Any]]:
    """:func:`inferred_plan` for every call of ``runs`` that needs one."""
    out = {}
    for i, run in enumerate(runs):
        for span in run.llm_spans():
            p = inferred_plan(span)
            if p:
                out[(i, span.span_id)] = p
    return out


# ---------------------------------------------------------------------------------------------------
# the baseline and the rewritten runs
# ---------------------------------------------------------------------------------------------------
def _recorded_cost(span: Span, currency: str) -> Decimal | None:
    c = span.llm.cost if span.llm is not None else None
    if c is None or c.source != "recorded" or c.amount is None:
        return None
    if c.currency == currency:
        return c.amount
    return convert_cost(c.amount, c.currency, currency)  # None for an unknown pair: the tokens are priced


recorded_cost = _recorded_cost
"""``span``'s recorded cost in ``currency`` (converted), or None: what :func:`paid_bills` bills first."""


def needs_simulation(run: Run, currency: str) -> bool:
    """Whether some call of ``run`` is billed by simulated automatic caching (else the simulator is skipped:
    a run whose every call recorded its cost needs none)."""
    for span in run.llm_spans():
        call = span.llm
        assert call is not None
        u = call.usage
        if _recorded_cost(span, currency) is not None or u.known("cache_read_tokens") \
                or u.known("cache_write_tokens"):
            continue
        if cache_rule(call.provider, call.model).mode == "automatic":
            return True
    return False


def paid_bills(runs: list[Run], currency: str = "USD",
               sim: list[dict[str, CallPaid]] | None = None, prices: PriceLookup | None = None) -> list[RunPaid]:
    """What each of ``runs`` paid, call by call, each run its own account (see the module docstring for the
    bases). ``sim``: :func:`simulate` of the same runs, when the caller has it already."""
    out = []
    for i, run in enumerate(runs):
        rb = bill_runs([run], currency, mode="recorded", prices=prices)[0]
        if sim is not None:
            s = sim[i]
        elif needs_simulation(run, currency):
            s = simulate([run], currency, original_plans([run]), prices)[0]
        else:
            s = {}
        rp = RunPaid(run.run_id, currency)
        for span, b in zip(run.llm_spans(), rb.calls):
            call = span.llm
            assert call is not None
            amount = _recorded_cost(span, currency)
            simulated = s.get(span.span_id)
            if amount is not None:
                rp.calls.append(CallPaid(span.span_id, call.model, b.provider, RECORDED, CostRange.point(amount)))
            elif b.basis == "served":  # answered from a cache: it never reached the provider
                rp.calls.append(CallPaid(span.span_id, call.model, b.provider, SERVED, CostRange.point(Decimal(0))))
            elif b.basis == "recorded":
                rp.calls.append(CallPaid(span.span_id, call.model, b.provider, CACHE_TOKENS, CostRange.point(b.cost)))
            elif simulated is not None and simulated.basis == SIMULATED:
                rp.calls.append(simulated)
            else:
                rp.calls.append(CallPaid(span.span_id, call.model, b.provider, UNCACHED, CostRange.point(b.cost)))
        out.append(rp)
    return out


def run_paid(run: Run, currency: str = "USD", prices: PriceLookup | None = None) -> RunPaid:
    """What one run paid (:func:`paid_bills` of ``[run]``)."""
    return paid_bills([run], currency, prices=prices)[0]
