"""Carried cost: each input token of each LLM call charged to the span that *introduced* it.

An agent re-sends its history: a tool output fetched once is paid for again in every later prompt. A
time-profiler view (tokens owned by the LLM span that sent them) hides that, so the biggest box is always
"the model". Here every part of every prompt is charged to whoever put it into the conversation:

* a ``tool`` message → the tool span whose output it is (matched by ``tool_call_id``, else by output text);
* an ``assistant`` message → the earlier LLM span whose output it was;
* the tool definitions, the system prompt and user messages → the function that called the model when the
  part first appeared (the LLM span's parent: the code that built the prompt);
* anything else (no earlier owner found) → that same caller.

A part is priced per call with the cache state that call actually had: the provider serves the first
``cache_read_tokens`` of the prompt (tool definitions, then messages in order) from its cache, the next
``cache_write_tokens`` are written to it, the rest are fresh. Each part's share of the call's *input cost*
is its tokens weighted by those rates; shares of one call add up exactly to that call's input cost, so the
sum of carried cost over all spans is the run's input cost (output cost stays with the LLM span that
produced it).

This module knows nothing about prices: the caller passes, per LLM span, the input cost and the per-token
rates of the fresh / cache-read / cache-write tokens (see ``tokprof.reports.carried_pricing``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Mapping

from tokprof.profiler.model import Run, Span

TokensOf = Callable[[Any], int]
"""Estimated tokens of one message, or of a tool-definition list (only proportions matter)."""

PART_KINDS = ("tools", "system", "user", "tool_output", "model_output", "other")


_SHARE_QUANTUM = Decimal("1e-18")


def _share(amount: Decimal) -> Decimal:
    """``amount`` quantized to :data:`_SHARE_QUANTUM`, without trailing zeros (nor an exponent for whole amounts)."""
    q = amount.quantize(_SHARE_QUANTUM).normalize()
    return q.quantize(Decimal(1)) if q.as_tuple().exponent > 0 else q  # type: ignore[operator]


@dataclass(frozen=True)
class CallPrice:
    """What one call's prompt cost and how: its input cost and the per-token rate of each cache state."""

    input_cost: Decimal
    fresh_rate: Decimal
    read_rate: Decimal
    write_rate: Decimal
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class Part:
    """One piece of one prompt: who introduced it, what it is, its tokens (scaled to the reported input)."""

    introducer: str
    kind: str
    tokens: int
    cost: Decimal | None = None


@dataclass
class CallAttribution:
    span_id: str
    input_tokens: int
    parts: list[Part] = field(default_factory=list)

    def share(self, kind: str) -> float:
        """Share (0..1) of this prompt's tokens that are of ``kind`` (e.g. ``tools``)."""
        total = sum(p.tokens for p in self.parts)
        return sum(p.tokens for p in self.parts if p.kind == kind) / total if total else 0.0


@dataclass
class Carried:
    """The run's carried cost: per introducing span, the input cost (and tokens) it caused in all calls."""

    cost: dict[str, Decimal]
    tokens: dict[str, int]
    calls: list[CallAttribution]
    unpriced_calls: int = 0

    @property
    def total(self) -> Decimal:
        return sum(self.cost.values(), Decimal(0))


def estimate_tokens(obj: Any) -> int:
    """A cheap size estimate (4 characters a token): only the proportions inside one prompt matter,
    because each prompt's parts are scaled to its reported input tokens."""
    text = obj if isinstance(obj, str) else json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str)
    return max(1, len(text) // 4)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content blocks: the text parts carry the meaning
        # a file from elsewhere may hold junk parts (``5``, ``None``, ``{"text": 5}``): text is str-ed, not trusted
        return "".join(_part_text(b) for b in content)
    return json.dumps(content, ensure_ascii=False, sort_keys=True, default=str)


def _part_text(block: Any) -> str:
    if isinstance(block, dict):
        text = block.get("text", "")
        return text if isinstance(text, str) else ("" if text is None else str(text))
    return "" if block is None else str(block)


def _calls_key(calls: Any) -> str:
    out = []
    for c in calls or []:
        fn = (c.get("function") or c) if isinstance(c, dict) else {}
        if not isinstance(fn, dict):  # ``"function": "x"`` in a foreign file: no name, no arguments
            fn = {}
        args = fn.get("arguments", fn.get("args"))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        out.append((str(fn.get("name")), json.dumps(args, sort_keys=True, default=str)))
    return json.dumps(out)


def message_key(m: Any, *, role: bool = True) -> str:
    """The identity of a message as re-sent: role, text and tool calls (ids and formatting ignored).
    Without ``role``: one model's output re-sent to another with roles flipped (a simulated user's reply is
    a ``user`` message in the agent's prompt) still matches."""
    if not isinstance(m, dict):
        return hashlib.blake2b(str(m).encode(), digest_size=12).hexdigest()
    who = m.get("role") if role else ""
    # a tool result is one call's result: the same output fetched twice in one conversation is two parts,
    # each introduced by its own tool span
    tcid = m.get("tool_call_id") if role and m.get("role") == "tool" else None
    raw = f"{who}\0{tcid or ''}\0{_text(m.get('content')).strip()}\0{_calls_key(m.get('tool_calls'))}"
    return hashlib.blake2b(raw.encode("utf-8", "replace"), digest_size=12).hexdigest()


def _kind(role: Any) -> str:
    return {"system": "system", "developer": "system", "user": "user", "human": "user", "tool": "tool_output",
            "function": "tool_output", "assistant": "model_output", "ai": "model_output"}.get(str(role), "other")


def _ordered(run: Run) -> list[Span]:
    return sorted(run.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id))


class _Finder:
    """Where a message came from: tool spans by call id and output text, LLM spans by their output."""

    def __init__(self, run: Run) -> None:
        self.by_call_id: dict[str, list[Span]] = {}
        self.by_output: dict[str, Span] = {}
        self.llm_out: dict[str, Span] = {}
        for s in sorted(run.spans, key=lambda s: (s.wall_start_ns, s.start_ns)):
            a = s.attributes or {}
            if s.kind == "tool":
                tcid = a.get("tool_call_id")
                if isinstance(tcid, str):
                    self.by_call_id.setdefault(tcid, []).append(s)
                out = a.get("output")
                if isinstance(out, str) and out.strip():
                    self.by_output.setdefault(out.strip(), s)
            if s.llm is not None and s.llm.output is not None:
                self.llm_out.setdefault(message_key(s.llm.output, role=False), s)

    def tool(self, m: dict[str, Any], before_ns: int) -> Span | None:
        # call ids repeat across conversations (toolu_00 in every ticket): the latest one started before
        cands = [s for s in self.by_call_id.get(str(m.get("tool_call_id")), []) if s.wall_start_ns <= before_ns]
        if cands:
            return cands[-1]
        return self.by_output.get(_text(m.get("content")).strip())

    def model(self, m: Any, before_ns: int) -> Span | None:
        s = self.llm_out.get(message_key(m, role=False))
        return s if s is not None and s.wall_start_ns <= before_ns else None


def attribute(run: Run, tokens_of: TokensOf | None = None) -> list[CallAttribution]:
    """Each LLM call's prompt split into parts, each charged to the span that introduced it (tokens only).

    Parts' tokens are estimated with ``tokens_of`` and scaled so they add up to the call's reported input
    tokens (when it reported any)."""
    size_of = tokens_of or estimate_tokens
    finder = _Finder(run)
    # an agent re-sends the same message objects call after call: key and size each object once (the
    # memo holds the object, so its id cannot be reused while the memo lives)
    memo: dict[int, tuple[Any, str, int]] = {}

    def keyed(m: Any) -> tuple[str, int]:
        hit = memo.get(id(m))
        if hit is None or hit[0] is not m:
            hit = memo[id(m)] = (m, message_key(m), size_of(m))
        return hit[1], hit[2]

    tools_memo: dict[int, tuple[Any, str, int]] = {}

    def tools_key(tools: list[dict[str, Any]]) -> tuple[str, int]:
        hit = tools_memo.get(id(tools))
        if hit is None or hit[0] is not tools:
            text = json.dumps(tools, sort_keys=True, default=str)
            hit = tools_memo[id(tools)] = (tools, "tools\0" + text, size_of(tools))
        return hit[1], hit[2]
    # (conversation owner, message key) -> introducer: the same system prompt sent by two sub-agents is
    # introduced by each of them
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    out: list[CallAttribution] = []
    for span in _ordered(run):
        call = span.llm
        assert call is not None
        caller = span.parent_id or span.span_id
        raw: list[tuple[str, str, int]] = []
        if call.tools:
            tk, tn = tools_key(call.tools)
            intro, kind = seen.setdefault((caller, tk), (caller, "tools"))
            raw.append((intro, kind, tn))
        for m in call.messages:
            k, n_m = keyed(m)
            hit = seen.get((caller, k))
            if hit is None:
                kind = _kind(m.get("role") if isinstance(m, dict) else None)
                src: Span | None = None
                if kind == "tool_output" and isinstance(m, dict):
                    src = finder.tool(m, span.wall_start_ns)
                elif kind in ("model_output", "user"):  # a user turn may be a simulated user's output
                    src = finder.model(m, span.wall_start_ns)
                hit = seen[(caller, k)] = (src.span_id if src is not None else caller, kind)
            raw.append((hit[0], hit[1], n_m))
        est = sum(t for _, _, t in raw)
        n = call.usage.input_tokens
        parts = [Part(i, k, t) for i, k, t in raw]
        if n and est:
            for p in parts:
                p.tokens = round(p.tokens * n / est)
            if parts:  # rounding: the parts add up to the reported input exactly
                biggest = max(parts, key=lambda p: p.tokens)
                biggest.tokens += n - sum(p.tokens for p in parts)
        out.append(CallAttribution(span.span_id, n or est, parts))
    return out


def _price_parts(ca: CallAttribution, price: CallPrice) -> None:
    """Split ``price.input_cost`` over the parts: prompt order decides which tokens were cache reads."""
    read_left, write_left = price.cache_read_tokens, price.cache_write_tokens
    weights: list[Decimal] = []
    for p in ca.parts:
        t = p.tokens
        r = min(t, read_left)
        read_left -= r
        w = min(t - r, write_left)
        write_left -= w
        weights.append(r * price.read_rate + w * price.write_rate + (t - r - w) * price.fresh_rate)
    total: Decimal = sum(weights, Decimal(0))
    if not ca.parts:
        return
    if not total:
        weights = [Decimal(p.tokens) for p in ca.parts]
        total = sum(weights, Decimal(0)) or Decimal(1)
    assigned = Decimal(0)
    for p, weight in zip(ca.parts[:-1], weights[:-1]):
        # Shares are quantized (far below any currency's unit) so that sums of shares, over a call, a span or a
        # whole run, stay exact in Decimal's 28 digits: the carried total then equals the input cost exactly.
        p.cost = _share(price.input_cost * weight / total)
        assigned += p.cost
    ca.parts[-1].cost = price.input_cost - assigned  # exact: the shares add up to the call's input cost


def carried_costs(run: Run, prices: Mapping[str, CallPrice | None], tokens_of: TokensOf | None = None) -> Carried:
    """Carried cost per introducing span; ``prices`` maps an LLM span id to its :class:`CallPrice`
    (``None``/missing = unpriced: its tokens are still attributed, its cost is not)."""
    calls = attribute(run, tokens_of)
    cost: dict[str, Decimal] = {}
    tokens: dict[str, int] = {}
    unpriced = 0
    for ca in calls:
        price = prices.get(ca.span_id)
        if price is None:
            unpriced += 1
        else:
            try:
                _price_parts(ca, price)
            except (InvalidOperation, OverflowError):
                # a cost beyond Decimal's 28 digits at the share quantum (absurd token counts from a hostile
                # file): its shares cannot be exact, so the call counts as unpriced (tokens still attributed)
                # rather than the whole carried view being lost
                for p in ca.parts:
                    p.cost = None
                unpriced += 1
        for p in ca.parts:
            tokens[p.introducer] = tokens.get(p.introducer, 0) + p.tokens
            if p.cost is not None:
                cost[p.introducer] = cost.get(p.introducer, Decimal(0)) + p.cost
    return Carried(cost, tokens, calls, unpriced)
