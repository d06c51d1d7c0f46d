"""The billing simulator: what a sequence of LLM calls is billed under each provider's caching rules.

Every pass, and every combination of passes, is priced here (never by a pass's own arithmetic), so the
savings ledger compares like with like.

How a run is billed (:func:`bill_run`; :func:`price_run` is the pipeline's pricer on top of it) depends
on the run's *billing mode*, the ``mode`` argument or else ``run.metadata["billing"]["mode"]``:

``recorded`` (default: "the run as it was billed")
    each call is billed from its usage as recorded: the cache-read / cache-write tokens the provider
    reported when the file has them, none otherwise. Basis ``recorded`` (cache tokens reported) or
    ``uncached``.
``automatic``
    like ``recorded`` for calls whose cache tokens were reported; every other call of a provider with
    *automatic* prefix caching (OpenAI, DeepSeek, Qwen implicit, Moonshot, xAI) is billed by the
    simulator, fed the calls in time order. Basis ``simulated``. This is what an unmodified run costs
    when the file simply did not record the automatic cache hits (e.g. τ²-bench's simulated user).
``simulate`` (set by the ``prompt-cache`` pass)
    every call is billed by the simulator from its messages: automatic providers as above, explicit
    providers (Anthropic, Qwen explicit) with the cache breakpoints in the call's plan
    (``span.attributes["billing.plan"]``, written by the pass) or in its messages' ``cache_control``
    markers. Recorded cache tokens are ignored because the messages may have been rewritten.

Calls served without reaching the provider (``span.attributes["served_by"]``, :data:`tokprof.profiler.keys.SERVED_BY`, set by the
response cache) cost nothing and never touch the provider's prompt cache.

Prefix matching. The simulator needs, for each call, the longest token prefix it shares with what an
earlier call left in the provider's cache. Prompts are rendered to a unit sequence (tool definitions,
then each message: a role marker, its content's tokens, its tool calls, an end marker) using the model's
tokenizer from :mod:`tokprof.profiler.providers.tokenizers` when it is available, else a regex word/punctuation split.
Units are indexed by a cumulative hash every :data:`BLOCK_UNITS` units, so a lookup costs one dict probe
per block. Units say *where* prefixes match; the tokens *billed* are the recorded counts: a match that
covers an earlier call's whole prompt (or prompt + output) is worth exactly that call's recorded tokens,
and any other position is scaled linearly between those anchors.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable, Iterable, Literal

from tokprof.profiler import keys
from tokprof.profiler.model import LLMCall, Run, Span
from tokprof.profiler.providers.cache_rules import bare_model as _bare_model
# Provider facts live in profiler/providers (issue #13 point 2); re-exported here for existing importers.
from tokprof.profiler.providers.cache_rules import (  # noqa: F401
    NO_CACHE, CacheRule, billing_rules, cache_rule, provider_of)
from tokprof.profiler.providers.cost import (  # noqa: F401
    MILLION, PriceLookup, Rates, TokenSplit, default_prices, split_cost)
from tokprof.profiler.providers.cost import convert_or_none as convert_cost  # noqa: F401
from tokprof.profiler.providers.tokenizers import tokenizer_for

BillingMode = Literal["recorded", "automatic", "simulate"]
BILLING_MODES: tuple[str, ...] = ("recorded", "automatic", "simulate")
Basis = Literal["recorded", "uncached", "simulated", "served", "unpriced"]

BLOCK_UNITS = 16
"""Granularity of the prefix index (units). Matches are refined to the exact unit inside a block."""

PLAN_ATTR = keys.BILLING_PLAN
SERVED_ATTR = keys.SERVED_BY  # one name for live and simulated cache hits (issue #13 point 3)


class BillingError(ValueError):
    """A billing rule or plan that cannot be applied (names the span and model)."""


# ---------------------------------------------------------------------------------------------------
# bills
# ---------------------------------------------------------------------------------------------------
@dataclass
class CallBill:
    """How one call is billed: its prompt split into fresh / cache-read / cache-write tokens, and the cost."""

    span_id: str
    model: str | None
    provider: str | None
    basis: Basis
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    """Written with the short (5-minute) TTL."""
    cache_write_1h_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal | None = None
    currency: str = "USD"
    matched_units: int = 0
    """Units of the prompt shared with the provider's cache (diagnostics)."""

    @property
    def fresh_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens
                   - self.cache_write_1h_tokens)

    def to_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id, "model": self.model, "provider": self.provider, "basis": self.basis,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
            "cache_write_1h_tokens": self.cache_write_1h_tokens,
            "cost": None if self.cost is None else str(self.cost), "currency": self.currency,
        }


@dataclass
class RunBill:
    """The bill of one run: one :class:`CallBill` per LLM span, in ``run.llm_spans()`` order."""

    calls: list[CallBill]
    currency: str
    mode: str

    @property
    def total(self) -> Decimal | None:
        """Sum of the known call costs; ``None`` when no call has a known price (unknown, never zero)."""
        known = [c.cost for c in self.calls if c.cost is not None]
        return sum(known, Decimal(0)) if known else None

    @property
    def unpriced(self) -> int:
        return sum(1 for c in self.calls if c.cost is None and c.basis != "served")


def call_cost(bill: CallBill, rates: Rates | None, rule: CacheRule, currency: str) -> Decimal | None:
    """The bill's cost, priced by the one cost function (:func:`tokprof.profiler.providers.cost.split_cost`)."""
    if bill.basis == "served":
        return Decimal(0)
    return split_cost(TokenSplit.from_bill(bill), rates, rule, currency)


# ---------------------------------------------------------------------------------------------------
# rendering prompts to units
# ---------------------------------------------------------------------------------------------------
_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+", re.UNICODE)


def _encoder_for(model: str | None) -> Callable[[str], list[int]] | None:
    try:
        enc = tokenizer_for(model).encoder
        enc.encode("probe")
        return enc.encode
    except Exception:  # no tokenizer data shipped for this model: fall back to the regex split
        return None


@lru_cache(maxsize=64)
def _exact_tokenizer(model: str | None) -> bool:
    try:
        return bool(tokenizer_for(model).exact) and _encoder_for(model) is not None
    except Exception:
        return False


@lru_cache(maxsize=64)
def _encode_fn(model: str | None) -> Callable[[str], list[int]]:
    enc = _encoder_for(model)
    if enc is not None:
        return enc
    return lambda text: [hash(p) for p in _PIECE.findall(text)]


def _message_key(m: Any) -> str:
    return json.dumps(m, sort_keys=True, ensure_ascii=False, default=str)


@lru_cache(maxsize=100_000)
def _units_of(key: str, model: str | None) -> tuple[int, ...]:
    """The units of one message (or tool block), memoized: a run re-sends its history on every call."""
    m = json.loads(key)
    encode = _encode_fn(model)
    if not isinstance(m, dict):
        return tuple(encode(str(m)))
    role = str(m.get("role") or "")
    units: list[int] = [hash(("<role>", role, m.get("name")))]
    content = m.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                units.extend(encode(part["text"]))
            else:  # an image or other non-text part: one opaque unit per distinct part
                units.append(hash(("<part>", json.dumps(part, sort_keys=True, default=str))))
    elif content is not None:
        units.extend(encode(str(content)))
    for call in m.get("tool_calls") or []:
        fn = call.get("function") or call
        args = fn.get("arguments")
        units.append(hash(("<call>", fn.get("name"))))
        units.extend(encode(args if isinstance(args, str) else json.dumps(args, sort_keys=True)))
    if m.get("tool_call_id"):
        units.append(hash(("<tool_call_id>", m.get("tool_call_id"))))
    if "function" in m and "role" not in m:  # a tool definition
        units.extend(encode(json.dumps(m, sort_keys=True)))
    units.append(hash(("<end>", role)))
    return tuple(units)


@dataclass
class PromptUnits:
    """A call's prompt as units, with where each message (and the tool block) ends."""

    units: list[int]
    bounds: list[int]
    """Unit offset at the end of the tool block (index 0) and of each message (index i+1)."""
    output_units: list[int]


def prompt_units(call: LLMCall) -> PromptUnits:
    """Render ``call``'s tools + messages (+ output) to units (see the module docstring)."""
    units: list[int] = []
    for tool in call.tools or []:
        units.extend(_units_of(_message_key(tool), call.model))
    bounds = [len(units)]
    for m in call.messages:
        units.extend(_units_of(_message_key(m), call.model))
        bounds.append(len(units))
    out = list(_units_of(_message_key(call.output), call.model)) if call.output else []
    return PromptUnits(units, bounds, out)


def _block_hashes(units: list[int]) -> list[int]:
    """Cumulative hash at every BLOCK_UNITS boundary: ``h[k]`` identifies ``units[:k*BLOCK_UNITS]``."""
    out = [0]
    h = 0
    for start in range(0, len(units) - BLOCK_UNITS + 1, BLOCK_UNITS):
        h = hash((h, tuple(units[start:start + BLOCK_UNITS])))
        out.append(h)
    return out


def prefix_key(units: list[int], blocks: list[int], pos: int) -> int:
    """A hash identifying ``units[:pos]`` (uses the block hashes, then the tail)."""
    k = pos // BLOCK_UNITS
    return hash((blocks[k], tuple(units[k * BLOCK_UNITS:pos])))


# ---------------------------------------------------------------------------------------------------
# the provider cache
# ---------------------------------------------------------------------------------------------------
@dataclass
class _Seq:
    """A unit sequence some call left in the cache, with recorded-token anchors (unit pos, tokens)."""

    units: list[int]
    anchors: list[tuple[int, int]]

    def tokens_at(self, pos: int) -> int:
        """Recorded tokens of ``units[:pos]``: exact at anchors, linear between them."""
        prev_u, prev_t = 0, 0
        for u, t in self.anchors:
            if pos <= u:
                if u == prev_u:
                    return t
                return prev_t + (t - prev_t) * (pos - prev_u) // (u - prev_u)
            prev_u, prev_t = u, t
        # past the last anchor: one token per unit
        return prev_t + (pos - prev_u)


@dataclass
class _Entry:
    seq: _Seq
    pos: int
    last_used_ns: int
    ttl_ns: int

    def alive(self, now_ns: int) -> bool:
        return now_ns - self.last_used_ns <= self.ttl_ns


@dataclass
class ProviderCache:
    """The cache of one provider account, per model (cached prefixes are never shared across models)."""

    blocks: dict[tuple[str, int], _Entry] = field(default_factory=dict)
    """(model, block hash) -> entry, for automatic caching (every block boundary is cached)."""
    points: dict[tuple[str, int], _Entry] = field(default_factory=dict)
    """(model, prefix key) -> entry, for explicit breakpoints (only breakpoint positions are cached)."""

    # -- automatic --------------------------------------------------------------------------------
    def match_automatic(self, model: str, units: list[int], blocks: list[int], now_ns: int,
                        refresh: bool) -> tuple[int, _Entry | None]:
        """Longest live cached prefix of ``units``: (units matched, entry holding it)."""
        best: _Entry | None = None
        k = 1
        while k < len(blocks):
            e = self.blocks.get((model, blocks[k]))
            if e is None or not e.alive(now_ns):
                break
            best = e
            k += 1
        matched = (k - 1) * BLOCK_UNITS
        # refine inside the next block against the sequence that owns the matched prefix
        cand = best.seq if best is not None else None
        if cand is None:
            return 0, None
        i = matched
        limit = min(len(units), len(cand.units))
        while i < limit and units[i] == cand.units[i]:
            i += 1
        if refresh:
            for j in range(1, k):
                e = self.blocks.get((model, blocks[j]))
                if e is not None:
                    e.last_used_ns = now_ns
        return i, best

    def insert_automatic(self, model: str, seq: _Seq, now_ns: int, ttl_ns: int) -> None:
        blocks = _block_hashes(seq.units)
        for k in range(1, len(blocks)):
            self.blocks[(model, blocks[k])] = _Entry(seq, k * BLOCK_UNITS, now_ns, ttl_ns)
        # the partial last block: keep the sequence reachable for refinement via its last full block

    # -- explicit ---------------------------------------------------------------------------------
    def match_point(self, model: str, key: int, now_ns: int) -> _Entry | None:
        e = self.points.get((model, key))
        return e if e is not None and e.alive(now_ns) else None

    def insert_point(self, model: str, key: int, entry: _Entry) -> None:
        self.points[(model, key)] = entry


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
        reasoning_tokens=u.reasoning_tokens,
    )


class Simulator:
    """Feeds calls in time order through per-provider caches and bills each one."""

    def __init__(self) -> None:
        self.cache = ProviderCache()

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
            if not u.known("reasoning_tokens") and _exact_tokenizer(call.model):
                out_tokens = min(out_tokens, len(pu.output_units))
            anchors.append((len(units), max(prompt_tokens, prompt_tokens + out_tokens - rule.output_reuse_gap)))
        return _Seq(list(units), anchors), _block_hashes(pu.units)

    def bill(self, span: Span, rule: CacheRule, plan: dict[str, Any]) -> CallBill:
        call = span.llm
        assert call is not None
        u = call.usage
        model = _bare_model(call.model)
        start, end = _time_ns(span)
        pu = prompt_units(call)
        seq, blocks = self._seq(pu, call, rule)
        prompt_tokens = seq.anchors[0][1]
        bill = CallBill(span.span_id, call.model, rule.provider, "simulated", prompt_tokens, u.output_tokens,
                        reasoning_tokens=u.reasoning_tokens)
        if rule.mode == "automatic":
            matched, entry = self.cache.match_automatic(model, pu.units, blocks, start, rule.refresh_on_hit)
            bill.matched_units = matched
            if entry is not None and matched > 0:
                tokens = min(entry.seq.tokens_at(matched), prompt_tokens)
                if tokens >= rule.min_tokens:
                    bill.cache_read_tokens = tokens // rule.block_tokens * rule.block_tokens
            self.cache.insert_automatic(model, seq, end, rule.ttl_s * 1_000_000_000)
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
              plan_for: Callable[[int, Span], dict[str, Any]] | None = None) -> list[RunBill]:
    """Bill several runs made by one account: their calls reach the provider's cache in wall-clock order,
    interleaved across runs (concurrent simulations of a benchmark share the cache).

    ``plan_for(run index, span)``: the caching plan of a call in ``simulate`` mode when it has none of its
    own (:mod:`tokprof.optimizers.paid` uses it to keep the breakpoints an agent evidently used)."""
    lookup = prices or default_prices
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
        plan = plan_of(span) if m == "simulate" else {}
        if m == "simulate" and not plan and plan_for is not None:
            plan = plan_for(i, span) or {}
        rule = cache_rule(call.provider, call.model, explicit=bool(plan.get("breakpoints")))
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
            b.cost = call_cost(b, lookup(span.llm.model), rules[key], currency)
            if b.cost is None and b.basis != "served":
                b.basis = "unpriced"
            calls.append(b)
        out.append(RunBill(calls, currency, modes[i]))
    return out


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
