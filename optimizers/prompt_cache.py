"""The ``prompt-cache`` pass and prefix-stability diagnostics.

The pass bills every call's longest prefix that the provider could serve from its prompt cache:

* providers with automatic prefix caching (OpenAI, DeepSeek, Qwen implicit, Moonshot, xAI) need no
  change: the pass only switches the run to simulated billing, so a run whose file did not record the
  automatic hits is priced as the provider bills it;
* providers with explicit breakpoints (Anthropic; Qwen with ``explicit=True``) get a plan per call:
  which message ends get a ``cache_control`` marker (at most 4) and with which TTL. The plan is chosen
  from the call's past only (see :func:`plan_breakpoints`) and written to
  ``span.attributes["billing.plan"]``; the billing simulator prices it.

:func:`prefix_breaks` explains what keeps consecutive calls from sharing their prefix (a timestamp early
in the system prompt, tool definitions reordered, content inserted before the history...) and prices
each cause: the tokens the break made fresh again, times the difference between the plain and the
cache-read price.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar

from tokprof.optimizers.base import Evidence, LedgerRow, PassContext, register
from tokprof.optimizers.billing import (
    PLAN_ATTR,
    CacheRule,
    PromptUnits,
    Rates,
    annotate,
    bill_run,
    cache_rule,
    default_prices,
    prompt_units,
)
from tokprof.profiler.providers.messages import content_text
from tokprof.profiler.providers.prompt_units import KeyMemo, common_prefix, shared_units
from tokprof.profiler import keys
from tokprof.profiler.providers.cost import TokenSplit, call_start_ns, split_cost
from tokprof.profiler.providers.prices import priced_model
from tokprof.profiler.model import LLMCall, Run, Span

# A value that changes on every call: ISO dates/times, clock times, UUIDs, long hex or digit ids.
_VOLATILE = re.compile(
    r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?|\b\d{1,2}:\d{2}(:\d{2})?\b|"
    r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b|"
    r"\b[0-9a-fA-F]{16,}\b|\b\d{9,}\b")


def _thread_key(run: Run, span: Span, index: dict[str, Span]) -> tuple[Any, ...]:
    """Calls that form one conversation: same model and same ``side`` tag (agent / simulated user)."""
    assert span.llm is not None
    tags = run.span_tags(span, index)
    return (span.llm.provider, span.llm.model, tags.get("side"))


def _ordered(run: Run) -> list[Span]:
    return sorted(run.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id))


# ---------------------------------------------------------------------------------------------------
# breakpoint planning
# ---------------------------------------------------------------------------------------------------
@dataclass
class ThreadState:
    """What the planner knows about one conversation from the calls so far."""

    last_units: list[int] | None = None
    last_end_msg: int | None = None
    last_time_ns: int | None = None
    extended: int = 1
    """Calls whose prefix the next call reused (with a prior of one success out of one)."""
    opportunities: int = 1
    gaps_s: list[float] = field(default_factory=list)


def _system_end(call: LLMCall) -> int | None:
    """Index of the last leading system/developer message, if any."""
    end = None
    for i, m in enumerate(call.messages):
        if m.get("role") in ("system", "developer"):
            end = i
        else:
            break
    return end


def plan_breakpoints(call: LLMCall, pu: PromptUnits, rule: CacheRule, state: ThreadState,
                     ttl: str = "auto") -> dict[str, Any]:
    """Breakpoints for one call of an explicit-cache provider, decided from the past only.

    * the end of the prompt (the last message), so that the next call of an agent loop, which re-sends
      this prompt and appends to it, reads it at 0.1x: worth its 1.25x write when the next call reuses
      it with probability above 0.25 / 0.9 ~ 0.28 — estimated from how often this conversation's calls
      were extended so far;
    * the end of the previous call's prompt when this one extends it, so the read is found even when
      more than 20 content blocks were appended (the provider's look-back window);
    * the end of the system prompt (stable across runs of one agent, e.g. trials of a benchmark).

    TTL: 1 hour when the gaps between calls of this conversation have exceeded 5 minutes, else 5 minutes.
    """
    n = len(call.messages)
    if n == 0:
        return {}
    reuse = state.extended / state.opportunities
    write_cost = (rule.write_1h_multiplier if ttl == "1h" else rule.write_multiplier) - 1
    saving = 1 - rule.read_multiplier
    bps: list[int] = []
    sys_end = _system_end(call)
    if sys_end is not None and sys_end < n - 1:
        bps.append(sys_end)
    if state.last_end_msg is not None and state.last_units is not None and state.last_end_msg < n - 1:
        prev_len = pu.bounds[state.last_end_msg + 1] if state.last_end_msg + 1 < len(pu.bounds) else None
        if prev_len is not None and pu.units[:prev_len] == state.last_units[:prev_len]:
            bps.append(state.last_end_msg)
    if Decimal(reuse) * saving > write_cost:
        bps.append(n - 1)
    bps = sorted(set(bps))[-rule.max_breakpoints:]
    if not bps:
        return {}
    chosen_ttl = ttl
    if ttl == "auto":
        chosen_ttl = "1h" if state.gaps_s and max(state.gaps_s[-3:]) > rule.ttl_s else "5m"
    return {"breakpoints": bps, "ttl": chosen_ttl, "provider": rule.provider}


@register
class PromptCachePass:
    """Bill each call's longest provider-cacheable prefix; plan explicit cache breakpoints."""

    name: ClassVar[str] = "prompt-cache"
    description: ClassVar[str] = ("serve each call's longest shared prefix from the provider's prompt cache "
                                  "(automatic caching as billed; explicit breakpoints placed to minimise cost)")
    evidence: ClassVar[Evidence] = "simulated"
    reads: ClassVar[frozenset[str]] = frozenset({"messages", "tools", "usage", "timestamps"})
    changes: ClassVar[frozenset[str]] = frozenset({"cache"})
    lossless: ClassVar[bool] = True
    """Only a billing plan (cache markers) is added: the model reads the same prompt."""

    def __init__(self, ttl: str = "auto", explicit_qwen: bool = False) -> None:
        if ttl not in ("auto", "5m", "1h"):
            raise ValueError(f"prompt-cache: ttl must be 'auto', '5m' or '1h', got {ttl!r}")
        self.ttl = ttl
        self.explicit_qwen = explicit_qwen

    def rule_for(self, call: LLMCall) -> CacheRule:
        """The cache rule this pass plans with for ``call`` (explicit Qwen caching only if asked)."""
        wants_explicit = self.explicit_qwen and cache_rule(call.provider, call.model).provider == "qwen"
        return cache_rule(call.provider, call.model, explicit=wants_explicit)

    def plan_call(self, call: LLMCall, st: ThreadState, start_ns: int, end_ns: int | None = None) -> dict[str, Any]:
        """The breakpoint plan for one call of a conversation whose earlier calls updated ``st``; updates
        ``st`` with this call. Empty for providers without explicit caching. The one planning step both
        :meth:`apply` (per recorded call) and the live layer (per request, :mod:`tokprof.optimizers.live`)
        use, so a live request gets exactly the breakpoints the simulation bills."""
        rule = self.rule_for(call)
        if rule.mode != "explicit":
            return {}
        pu = prompt_units(call)
        if st.last_units is not None:
            # did this call extend the previous one? (the evidence for writing at the end of a prompt)
            st.opportunities += 1
            if pu.units[:len(st.last_units)] == st.last_units:
                st.extended += 1
        if st.last_time_ns is not None:
            st.gaps_s.append((start_ns - st.last_time_ns) / 1e9)
        plan = plan_breakpoints(call, pu, rule, st, self.ttl)
        st.last_units = pu.units
        st.last_end_msg = len(call.messages) - 1
        st.last_time_ns = end_ns or start_ns
        return plan

    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]:
        new = run.copy()
        new.metadata[keys.BILLING] = {"mode": "simulate", "by": self.name}
        index = new.by_id()
        states: dict[tuple[Any, ...], ThreadState] = {}
        for span in _ordered(new):
            call = span.llm
            assert call is not None
            st = states.setdefault(_thread_key(new, span, index), ThreadState())
            plan = self.plan_call(call, st, span.wall_start_ns, span.wall_end_ns)
            if plan:
                span.set_attribute(PLAN_ATTR, plan)
        bill = bill_run(new, ctx.currency)
        annotate(new, bill)
        breaks = {b.span_id: b for b in prefix_breaks(new, currency=ctx.currency)}
        rows = []
        for span, b in zip(new.llm_spans(), bill.calls):
            call = span.llm
            assert call is not None
            cached = b.cache_read_tokens + b.cache_write_tokens + b.cache_write_1h_tokens
            brk = breaks.get(span.span_id)
            if cached == 0 and brk is None:
                continue
            plan = (span.attributes or {}).get(PLAN_ATTR) or {}
            parts = [f"cache read {b.cache_read_tokens:,} tokens"]
            if b.cache_write_tokens or b.cache_write_1h_tokens:
                parts.append(f"wrote {b.cache_write_tokens + b.cache_write_1h_tokens:,}")
            if plan:
                parts.append(f"breakpoints after messages {plan['breakpoints']} ({plan['ttl']})")
            if brk is not None:
                parts.append(f"prefix broken: {brk.cause}")
            details: dict[str, Any] = {
                "cache_read_tokens": b.cache_read_tokens,
                "cache_write_tokens": b.cache_write_tokens,
                "cache_write_1h_tokens": b.cache_write_1h_tokens,
                "basis": b.basis,
                "provider": b.provider,
            }
            if plan:
                details["plan"] = plan
            if brk is not None:
                details["prefix_break"] = brk.to_dict()
            rows.append(LedgerRow(
                pass_name=self.name, span_id=span.span_id, model=call.model, change="; ".join(parts),
                evidence=self.evidence,
                input_tokens_before=call.usage.input_tokens, input_tokens_after=call.usage.input_tokens,
                output_tokens_before=call.usage.output_tokens, output_tokens_after=call.usage.output_tokens,
                risk="none", details=details))
        return new, rows


# ---------------------------------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------------------------------
@dataclass
class PrefixBreak:
    """Something that made a call's prompt diverge from the previous call of its conversation early."""

    span_id: str
    previous_span_id: str
    model: str | None
    cause: str
    """``timestamp or id in the system prompt``, ``system prompt changed``, ``tool definitions reordered``,
    ``tool definitions changed``, ``content inserted before the history``, ``history rewritten``."""
    where: str
    """Which part diverged: ``tools``, ``message 0 (system)``..."""
    shared_tokens: int
    """Tokens of the prompt still shared with the previous call."""
    lost_tokens: int
    """Tokens of the previous prompt that this call could have read from cache but had to send fresh."""
    cost: Decimal | None
    """What the lost tokens cost over a cache read (per this call), in ``currency``."""
    currency: str
    before: str
    after: str
    """The changed text around the divergence, in the previous and in this call."""

    def to_dict(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "previous_span_id": self.previous_span_id, "model": self.model,
                "cause": self.cause, "where": self.where, "shared_tokens": self.shared_tokens,
                "lost_tokens": self.lost_tokens, "cost": None if self.cost is None else str(self.cost),
                "currency": self.currency, "before": self.before, "after": self.after}


def _text_of(m: Any) -> str:
    if not isinstance(m, dict):
        return str(m)
    text, _ = content_text(m.get("content"))
    for c in m.get("tool_calls") or []:
        fn = c.get("function") or c
        text += f" {fn.get('name')}({fn.get('arguments')})"
    return text


def _diff_excerpt(a: str, b: str, width: int = 40) -> tuple[str, str]:
    i = 0
    n = min(len(a), len(b))
    while i < n and a[i] == b[i]:
        i += 1
    lo = max(0, i - width)
    return a[lo:i + 2 * width], b[lo:i + 2 * width]


def _segment(pu: PromptUnits, pos: int) -> int:
    """-1 for the tool block, else the index of the message containing unit ``pos``."""
    if pos < pu.bounds[0]:
        return -1
    for i in range(1, len(pu.bounds)):
        if pos < pu.bounds[i]:
            return i - 1
    return len(pu.bounds) - 2


def _tool_names(call: LLMCall) -> list[str]:
    return [str((t.get("function") or t).get("name")) for t in call.tools or []]


def _classify(prev: LLMCall, cur: LLMCall, seg: int) -> tuple[str, str, str, str]:
    """(cause, where, before text, after text)."""
    if seg == -1:
        a, b = _tool_names(prev), _tool_names(cur)
        if sorted(a) == sorted(b) and a != b:
            return "tool definitions reordered", "tools", ", ".join(a), ", ".join(b)
        before, after = _diff_excerpt(repr(prev.tools), repr(cur.tools))
        return "tool definitions changed", "tools", before, after
    pm = prev.messages[seg] if seg < len(prev.messages) else None
    cm = cur.messages[seg] if seg < len(cur.messages) else None
    role = (cm or {}).get("role") or (pm or {}).get("role")
    where = f"message {seg} ({role})"
    before, after = _diff_excerpt(_text_of(pm) if pm else "", _text_of(cm) if cm else "")
    if role in ("system", "developer") and all(m.get("role") in ("system", "developer")
                                               for m in cur.messages[:seg + 1]):
        if _VOLATILE.search(before) or _VOLATILE.search(after):
            return "timestamp or id in the system prompt", where, before, after
        return "system prompt changed", where, before, after
    # was the previous message at this position pushed later by something inserted before it?
    if pm is not None and any(m == pm for m in cur.messages[seg + 1:]):
        return "content inserted before the history", where, before, after
    if _VOLATILE.search(before) or _VOLATILE.search(after):
        return "timestamp or id in an earlier message", where, before, after
    return "history rewritten", where, before, after


def _caller_path(span: Span, index: dict[str, Span]) -> tuple[str, ...]:
    """Names of the span's ancestors, root first: which agent/function made the call."""
    names: list[str] = []
    cur = index.get(span.parent_id) if span.parent_id else None
    while cur is not None and len(names) < 64:
        names.append(cur.name)
        cur = index.get(cur.parent_id) if cur.parent_id else None
    return tuple(reversed(names))


def prefix_breaks(run: Run, currency: str = "USD", *, prices: Any = None, by_path: bool = False) -> list[PrefixBreak]:
    """Where consecutive calls of one conversation (same model and side) stop sharing their prefix before
    the end of the previous call's prompt, why, and what it costs.

    With ``by_path``, a conversation is also one call path (the names of the calling spans): two
    sub-agents that share a model are not compared with each other (the report's diagnostics).

    A call that simply extends the previous prompt (the normal agent loop) is not a break. The cost is
    the tokens of the previous prompt past the divergence, priced at (input - cache read) for the model:
    what a stable prefix would have saved on this call."""
    lookup = prices or default_prices
    index = run.by_id()
    last: dict[tuple[Any, ...], tuple[Span, PromptUnits]] = {}
    out: list[PrefixBreak] = []
    memo: KeyMemo = {}  # a run re-sends its history objects on every call: each is serialised once here
    for span in _ordered(run):
        call = span.llm
        assert call is not None
        if keys.served_by(span.attributes) or keys.is_embedding(span.attributes):
            continue  # an embedding endpoint has no prompt cache and no conversation: nothing can "break"
        key = _thread_key(run, span, index)
        if by_path:
            key = (*key, _caller_path(span, index))
        pu = prompt_units(call, memo)
        prev = last.get(key)
        last[key] = (span, pu)
        if prev is None:
            continue
        pspan, ppu = prev
        assert pspan.llm is not None
        # the parts (tools, messages) both prompts start with have equal units: compare from there
        i = common_prefix(pu.units, ppu.units, shared_units(ppu.part_keys, ppu.part_ends, pu.part_keys))
        if i >= len(ppu.units) or i >= len(pu.units):
            continue  # the previous prompt is a prefix of this one (or vice versa): nothing broke
        # only breaks that happen before the last message of the previous prompt matter: changing the
        # newest message is how a conversation moves on
        seg = _segment(ppu, i)
        if seg >= len(pspan.llm.messages) - 1 and seg >= 0:
            continue
        cause, where, before, after = _classify(pspan.llm, call, seg)
        prev_tokens = pspan.llm.usage.input_tokens or len(ppu.units)
        ratio = prev_tokens / max(1, len(ppu.units))
        shared = int(i * ratio)
        lost = max(0, min(prev_tokens, call.usage.input_tokens or prev_tokens) - shared)
        rule = cache_rule(call.provider, call.model)
        rates: Rates | None = lookup(priced_model(call.model, call.provider))
        cost = None
        if rates is not None:
            # what the lost tokens cost fresh minus what they would have cost read from the cache, both priced
            # by the one cost function (a provider without caching: as if read at 0.1x)
            if not rule.caches:
                rule = replace(rule, read_multiplier=Decimal("0.1"))
            prompt = call.usage.input_tokens or prev_tokens
            at = call_start_ns(span)  # a time-of-day row (DeepSeek off-peak) prices by the hour it started
            fresh = split_cost(TokenSplit(prompt, lost), rates, rule, currency, started_ns=at)
            cached = split_cost(TokenSplit(prompt, 0, cache_read=lost), rates, rule, currency, started_ns=at)
            cost = None if fresh is None or cached is None else fresh - cached
        out.append(PrefixBreak(span.span_id, pspan.span_id, call.model, cause, where, shared, lost, cost,
                               currency, before, after))
    return out


def breaks_by_cause(breaks: list[PrefixBreak]) -> dict[str, dict[str, Any]]:
    """cause -> {"count", "lost_tokens", "cost"} (for reports)."""
    out: dict[str, dict[str, Any]] = {}
    for b in breaks:
        d = out.setdefault(b.cause, {"count": 0, "lost_tokens": 0, "cost": Decimal(0)})
        d["count"] += 1
        d["lost_tokens"] += b.lost_tokens
        if b.cost is not None:
            d["cost"] += b.cost
    return out
