"""The provider-cache simulator: which tokens of a sequence of calls hit which provider's prompt cache.

This is a provider fact applied to a run (the rules come from :mod:`tokprof.profiler.providers.cache_rules`,
the money from :mod:`tokprof.profiler.providers.cost`), so it lives beside them: the run summary bills an
unchanged run's *automatic* caching with it (:mod:`tokprof.profiler.providers.as_paid`), and the optimizers
re-bill rewritten runs with the very same code.

How a run is billed (:func:`bill_runs`) depends on its *billing mode*, the ``mode`` argument or else
``run.metadata["billing"]["mode"]``:

``recorded`` (default: "the run as it was billed")
    each call is billed from its usage as recorded: the cache-read / cache-write tokens the provider
    reported when the file has them, none otherwise. Basis ``recorded`` (cache tokens reported) or
    ``uncached``.
``automatic``
    like ``recorded`` for calls whose cache tokens were reported; every other call of a provider with
    *automatic* prefix caching (OpenAI, DeepSeek, Qwen implicit, Moonshot, xAI) is billed by the
    simulator, fed the calls in time order. Basis ``simulated``.
``simulate`` (set by the ``prompt-cache`` pass)
    every call is billed by the simulator from its messages: automatic providers as above, explicit
    providers (Anthropic, Qwen explicit) with the cache breakpoints in the call's plan
    (``span.attributes["billing.plan"]``, written by the pass) or in its messages' ``cache_control``
    markers. Recorded cache tokens are ignored because the messages may have been rewritten.

Calls served without reaching the provider (``span.attributes["served_by"]``,
:data:`tokprof.profiler.keys.SERVED_BY`) cost nothing and never touch the provider's prompt cache.

Prefix matching uses :mod:`tokprof.profiler.providers.prompt_units`. The tokens *billed* are the recorded
counts: a match that covers an earlier call's whole prompt (or prompt + output) is worth exactly that
call's recorded tokens, and any other position is scaled linearly between those anchors.
"""

from __future__ import annotations

from typing import Any, Callable, Literal

from tokprof.profiler import keys
from tokprof.profiler.model import LLMCall, Run, Span
from tokprof.profiler.providers.bills import BillingError, CallBill, RunBill, call_cost, memo_lookup, memo_rules
from tokprof.profiler.providers.cache_rules import CacheRule, cache_rule
from tokprof.profiler.providers.cache_rules import bare_model as _bare_model
from tokprof.profiler.providers.cost import PriceLookup, call_start_ns, default_prices
from tokprof.profiler.providers.prices import priced_model
from tokprof.profiler.providers.provider_cache import ProviderCache, _Entry, _Seq  # re-exported: old import path
from tokprof.profiler.providers.prompt_units import (
    BLOCK_UNITS, KeyMemo, PromptUnits, exact_tokenizer, block_hashes, prefix_key, prompt_units, shared_units)

BillingMode = Literal["recorded", "automatic", "simulate"]
BILLING_MODES: tuple[str, ...] = ("recorded", "automatic", "simulate")
PLAN_ATTR = keys.BILLING_PLAN
SERVED_ATTR = keys.SERVED_BY  # one name for live and simulated cache hits (issue #13 point 3)


# ---------------------------------------------------------------------------------------------------
# plans (explicit breakpoints)
# ---------------------------------------------------------------------------------------------------
def marked_breakpoints(call: LLMCall) -> list[int]:
    """Message indices whose content carries a ``cache_control`` marker (index -1: the tool block)."""
    out = []
    if any(isinstance(t, dict) and t.get("cache_control") for t in call.tools or []):
        out.append(-1)
    for i, m in enumerate(call.messages):
        content = m.get("content")
        if m.get("cache_control") or (isinstance(content, list) and any(
                isinstance(p, dict) and p.get("cache_control") for p in content)):
            out.append(i)
    return out


def plan_of(span: Span) -> dict[str, Any]:
    """The call's caching plan: ``{"breakpoints": [message index...], "ttl": "5m"|"1h"}`` (may be empty)."""
    attrs = span.attributes or {}
    plan = attrs.get(PLAN_ATTR)
    if isinstance(plan, dict):
        return plan
    assert span.llm is not None
    marks = marked_breakpoints(span.llm)
    return {"breakpoints": marks, "ttl": "5m"} if marks else {}


# ---------------------------------------------------------------------------------------------------
# the simulator
# ---------------------------------------------------------------------------------------------------
def _time_ns(span: Span) -> tuple[int, int]:
    """(start, end) wall-clock ns of a call: lookups happen at the start, cache writes at the end."""
    start = span.wall_start_ns
    end = span.wall_end_ns
    return start, (end if end is not None and end >= start else start)


def _recorded_bill(span: Span, call: LLMCall, provider: str | None) -> CallBill:
    u = call.usage
    has_cache = u.known("cache_read_tokens") or u.known("cache_write_tokens")
    return CallBill(
        span_id=span.span_id, model=call.model, provider=provider,
        basis="recorded" if has_cache else "uncached",
        input_tokens=u.input_tokens, output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens if u.known("cache_read_tokens") else 0,
        # Usage counts 1-hour writes inside cache_write_tokens; a bill keeps the two TTLs apart
        cache_write_tokens=(u.cache_write_tokens - min(u.cache_write_1h_tokens, u.cache_write_tokens))
        if u.known("cache_write_tokens") else 0,
        cache_write_1h_tokens=min(u.cache_write_1h_tokens, u.cache_write_tokens) if u.known("cache_write_tokens") else 0,
        reasoning_tokens=u.reasoning_tokens, tool_requests=tuple(sorted(u.tool_requests.items())),
    )


recorded_bill = _recorded_bill
"""A call billed from its usage as recorded (the ``recorded`` mode's bill of one call)."""


class Simulator:
    """Feeds calls in time order through per-provider caches and bills each one."""

    def __init__(self) -> None:
        self.cache = ProviderCache()
        self._keys: KeyMemo = {}  # message keys by object, for this simulator's life (runs are not edited)
        # per model string: part keys, part ends and block hashes of the last sequence left in the cache, so
        # the next call of a conversation hashes only what it adds (the results are the same either way)
        self._last: dict[str | None, tuple[list[str], list[int], list[int]]] = {}

    def warm(self, run: Run) -> None:
        """Leave in the cache what the run's account evidently sent before: the static prefix (tool
        definitions and leading system messages) of the run's first call to each model with *automatic*
        caching, as of that call's start.

        Runs of one agent share that prefix (a benchmark's policy prompt, a product's system prompt) and the
        providers cache it per account, so the first call of a run usually finds it warm; a trace cannot say
        whether another run warmed it, so the as-paid bill assumes so and its no-hits scenario keeps the cold
        bound (:mod:`tokprof.profiler.providers.as_paid`). A long pause inside the run still evicts it."""
        seen: set[str] = set()
        for span in sorted(run.llm_spans(), key=lambda s: (_time_ns(s)[0], s.start_ns, s.span_id)):
            call = span.llm
            assert call is not None
            model = _bare_model(call.model)
            if model in seen or keys.served_by(span.attributes):
                continue
            seen.add(model)
            rule = cache_rule(call.provider, call.model)
            if rule.mode != "automatic":
                continue
            lead = 0
            while lead < len(call.messages) and call.messages[lead].get("role") in ("system", "developer"):
                lead += 1
            pu = prompt_units(call, self._keys)
            end = pu.bounds[lead]
            if end <= 0:
                continue
            prompt_tokens = call.usage.input_tokens if call.usage.input_tokens > 0 else len(pu.units)
            # tokens of the prefix: the call's recorded prompt tokens, scaled by units (as any other match)
            seq = _Seq(pu.units[:end], [(len(pu.units), prompt_tokens)])
            self.cache.insert_automatic(model, seq, _time_ns(span)[0], rule.ttl_s * 1_000_000_000)

    def _seq(self, pu: PromptUnits, call: LLMCall, rule: CacheRule) -> tuple[_Seq, list[int]]:
        """The sequence the call leaves in the cache, and its prompt's block hashes."""
        u = call.usage
        n_prompt = len(pu.units)
        prompt_tokens = u.input_tokens if u.input_tokens > 0 else n_prompt
        anchors = [(n_prompt, prompt_tokens)]
        units = pu.units
        if rule.caches_output and pu.output_units:
            units = pu.units + pu.output_units
            out_tokens = (u.output_tokens - u.reasoning_tokens) if u.output_tokens > 0 else len(pu.output_units)
            # hidden reasoning is billed as output but never replayed: when the file did not say how much
            # there was, the visible reply (its tokens, when our tokenizer is the model's) bounds what the
            # next prompt can reuse
            if not u.known("reasoning_tokens") and exact_tokenizer(call.model):
                out_tokens = min(out_tokens, len(pu.output_units))
            anchors.append((len(units), max(prompt_tokens, prompt_tokens + out_tokens - rule.output_reuse_gap)))
        keys, ends = pu.part_keys, pu.part_ends
        if units is not pu.units:  # the output is part of the sequence left in the cache
            keys = keys + [pu.output_key]  # type: ignore[list-item]
            ends = ends + [len(units)]
        last = self._last.get(call.model)
        full = block_hashes(units, last[2], shared_units(last[0], last[1], keys)) if last is not None \
            else block_hashes(units)
        self._last[call.model] = (keys, ends, full)
        blocks = full[:n_prompt // BLOCK_UNITS + 1]  # the prompt's: a prefix of the sequence's
        # no copy: ``pu.units`` is this call's own list, and nothing writes to a cached sequence
        return _Seq(units, anchors, full), blocks

    def bill(self, span: Span, rule: CacheRule, plan: dict[str, Any]) -> CallBill:
        call = span.llm
        assert call is not None
        u = call.usage
        model = _bare_model(call.model)
        start, end = _time_ns(span)
        pu = prompt_units(call, self._keys)
        seq, blocks = self._seq(pu, call, rule)
        prompt_tokens = seq.anchors[0][1]
        bill = CallBill(span.span_id, call.model, rule.provider, "simulated", prompt_tokens, u.output_tokens,
                        reasoning_tokens=u.reasoning_tokens, tool_requests=tuple(sorted(u.tool_requests.items())))
        if rule.mode == "automatic":
            # no refresh: the insert below re-stamps every matched block at ``end`` >= ``start`` anyway
            matched, entry = self.cache.match_automatic(model, pu.units, blocks, start, False)
            bill.matched_units = matched
            if entry is not None and matched > 0:
                tokens = min(entry.seq.tokens_at(matched), prompt_tokens)
                if tokens >= rule.min_tokens:
                    bill.cache_read_tokens = tokens // rule.block_tokens * rule.block_tokens
            self.cache.insert_automatic(model, seq, end, rule.ttl_s * 1_000_000_000, seq.blocks)
        elif rule.mode == "explicit":
            self._bill_explicit(bill, pu, seq, blocks, rule, plan, model, start, end, span)
        return bill

    def _bill_explicit(self, bill: CallBill, pu: PromptUnits, seq: _Seq, blocks: list[int], rule: CacheRule,
                       plan: dict[str, Any], model: str, start: int, end: int, span: Span) -> None:
        raw = plan.get("breakpoints") or []
        if not raw:
            return
        if len(raw) > rule.max_breakpoints:
            raise BillingError(f"span {span.span_id} ({span.llm.model if span.llm else None}): "
                               f"{len(raw)} cache breakpoints, the provider allows {rule.max_breakpoints}")
        ttl_1h = plan.get("ttl") == "1h"
        n_msgs = len(pu.bounds) - 1
        # breakpoint positions in units: index -1 = end of the tool block, i = end of message i
        positions = sorted({pu.bounds[min(int(i), n_msgs - 1) + 1] if int(i) >= 0 else pu.bounds[0]
                            for i in raw})
        bounds = sorted(set(pu.bounds))
        # lookups: each breakpoint and up to `lookback_blocks` message boundaries before it
        candidates: set[int] = set()
        for p in positions:
            before = [b for b in bounds if b <= p]
            candidates.update(before[-(rule.lookback_blocks + 1):])
        hit_pos, hit_tokens, hit_entry = 0, 0, None
        for q in sorted(candidates, reverse=True):
            if q <= 0:
                continue
            e = self.cache.match_point(model, prefix_key(pu.units, blocks, q), start)
            if e is not None:
                hit_pos, hit_tokens, hit_entry = q, e.seq.tokens_at(e.pos), e
                break
        if hit_entry is not None:
            bill.cache_read_tokens = min(hit_tokens, bill.input_tokens)
            if rule.refresh_on_hit:
                hit_entry.last_used_ns = start
        # writes: everything between the hit and the last breakpoint that reaches the minimum
        ttl_ns = (rule.ttl_1h_s if ttl_1h else rule.ttl_s) * 1_000_000_000
        written_to = bill.cache_read_tokens
        for p in positions:
            tokens = min(seq.tokens_at(p), bill.input_tokens)
            if tokens < rule.min_tokens:
                continue
            key = prefix_key(pu.units, blocks, p)
            existing = self.cache.match_point(model, key, start)
            if existing is not None:
                existing.last_used_ns = start
                continue
            if p > hit_pos:
                written_to = max(written_to, tokens)
            self.cache.insert_point(model, key, _Entry(seq, p, end, ttl_ns))
        written = max(0, written_to - bill.cache_read_tokens)
        if ttl_1h:
            bill.cache_write_1h_tokens = written
        else:
            bill.cache_write_tokens = written


def billing_mode(run: Run, mode: str | None = None) -> str:
    m = mode or (run.metadata.get(keys.BILLING) or {}).get("mode") or "recorded"
    if m not in BILLING_MODES:
        raise BillingError(f"run {run.run_id}: unknown billing mode {m!r}; expected one of {BILLING_MODES}")
    return m


def bill_run(run: Run, currency: str = "USD", *, mode: str | None = None,
             prices: PriceLookup | None = None, simulator: Simulator | None = None) -> RunBill:
    """Bill every LLM call of ``run`` (see the module docstring for the modes).

    Args:
        run: the run; it is not modified.
        currency: currency of the costs (converted with :func:`tokprof.profiler.providers.prices.convert`).
        mode: ``recorded`` / ``automatic`` / ``simulate``; default: ``run.metadata["billing"]["mode"]``,
            else ``recorded``.
        prices: model -> :class:`Rates` (default: the price table).
        simulator: share one simulator (one provider cache) across several runs, e.g. runs made by the
            same account within the cache lifetime (or use :func:`bill_runs`).
    """
    return bill_runs([run], currency, mode=mode, prices=prices, simulator=simulator)[0]


def bill_runs(runs: list[Run], currency: str = "USD", *, mode: str | None = None,
              prices: PriceLookup | None = None, simulator: Simulator | None = None,
              plan_for: Callable[[int, Span], dict[str, Any]] | None = None,
              own_plans: dict[tuple[int, str], dict[str, Any]] | None = None, priced: bool = True) -> list[RunBill]:
    """Bill several runs made by one account: their calls reach the provider's cache in wall-clock order,
    interleaved across runs (concurrent simulations of a benchmark share the cache).

    ``plan_for(run index, span)``: the caching plan of a call in ``simulate`` mode when it has none of its
    own (:mod:`tokprof.optimizers.paid` uses it to keep the breakpoints an agent evidently used).
    ``own_plans``: (run index, span id) -> :func:`plan_of` of the call, when the caller has them already.
    ``priced=False``: the bills' tokens only (``cost`` left None, basis never ``unpriced``), for a caller that
    prices them itself."""
    lookup = memo_lookup(prices or default_prices)
    rule_of = memo_rules()
    sim = simulator or Simulator()
    modes = [billing_mode(r, mode) for r in runs]
    items = [(i, s) for i, r in enumerate(runs) for s in r.llm_spans()]
    bills: dict[tuple[int, str], CallBill] = {}
    rules: dict[tuple[int, str], CacheRule] = {}
    # the provider's cache sees calls in the order they were sent
    for i, span in sorted(items, key=lambda it: (_time_ns(it[1])[0], it[1].start_ns, it[0], it[1].span_id)):
        m = modes[i]
        key = (i, span.span_id)
        call = span.llm
        assert call is not None
        plan = ((own_plans[key] if own_plans is not None else plan_of(span)) if m == "simulate" else {})
        if m == "simulate" and not plan and plan_for is not None:
            plan = plan_for(i, span) or {}
        rule = rule_of(call.provider, call.model, bool(plan.get("breakpoints")))
        rules[key] = rule
        if keys.served_by(span.attributes):  # a live or simulated cache hit: nothing reached the provider
            bills[key] = CallBill(span.span_id, call.model, rule.provider, "served", 0, 0)
            continue
        u = call.usage
        reported = u.known("cache_read_tokens") or u.known("cache_write_tokens")
        simulate = rule.caches and (m == "simulate" or (m == "automatic" and not reported
                                                         and rule.mode == "automatic"))
        bills[key] = sim.bill(span, rule, plan) if simulate else _recorded_bill(span, call, rule.provider)
    out = []
    for i, run in enumerate(runs):
        calls = []
        for span in run.llm_spans():
            key = (i, span.span_id)
            b = bills[key]
            assert span.llm is not None
            b.currency = currency
            b.started_ns = call_start_ns(span)  # time-of-day prices (peak / off-peak) need the call's start
            if not priced:
                calls.append(b)
                continue
            b.cost = call_cost(b, lookup(priced_model(span.llm.model, span.llm.provider)), rules[key], currency)
            if b.cost is None and b.basis != "served":
                b.basis = "unpriced"
            calls.append(b)
        out.append(RunBill(calls, currency, modes[i]))
    return out
