"""Diagnostics and recommendations: what in a run wastes tokens, the money at stake, and the code change.

Each finding is a :class:`tokprof.reports.model.Diagnostic`. Money at stake is ``estimated``: it splits each call's
cost between its messages in proportion to their (estimated) token counts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokprof.optimizers.decompose import decompose
from tokprof.optimizers.prompt_cache import prefix_breaks
from tokprof.profiler.policy import internal_error
from tokprof.profiler.model import Run

if TYPE_CHECKING:  # pragma: no cover
    from tokprof.reports.payloads import PayloadTable

OVERSIZED_TOOL_OUTPUT_TOKENS = 1500
"""A tool output this large, re-sent with every later call, is worth trimming."""
CACHED_INPUT_DISCOUNT = Decimal("0.9")
PREFIX_ANALYSIS_MAX_CALLS = 2000
"""Runs with more LLM calls than this use the quick prefix check instead of the prompt-cache analysis."""
"""Share of the input price a cache read saves (Anthropic 90 %, OpenAI 50-90 %): an upper bound."""

@dataclass
class Diagnostic:
    """One finding of the report: what, where (call indices), the money at stake and a fix snippet."""

    kind: str
    """``prefix-break``, ``repeated-calls``, ``oversized-tool-output``, ``decomposition``."""
    title: str
    detail: str
    money: Decimal | None
    tokens: int
    evidence: str
    snippet: str
    calls: list[int] = field(default_factory=list)


SNIPPET_PREFIX = '''# Keep the prompt prefix byte-identical between calls so the provider's cache can reuse it:
# static instructions first, nothing that changes per call (dates, ids, counters) before the history.
SYSTEM_PROMPT = open("prompts/agent.md").read()          # fixed text, loaded once

def build_messages(history, user_input, now):
    return [
        {"role": "system", "content": SYSTEM_PROMPT},      # never edited
        *history,                                          # append-only: never rewrite old turns
        {"role": "user", "content": f"(time: {now:%Y-%m-%d %H:%M})\\n{user_input}"},  # volatile bits last
    ]
'''

SNIPPET_REPEATED = '''# Serve identical requests from a cache instead of paying for them again.
from langchain_core.globals import set_llm_cache
from langchain_core.caches import InMemoryCache      # or a persistent cache (SQLite, Redis...)

set_llm_cache(InMemoryCache())                        # same model + params + messages -> cached response
'''

SNIPPET_TOOL_OUTPUT = '''# Trim large tool outputs before the model sees them; keep the full result for the tool layer.
MAX_TOOL_CHARS = 4000

def tool_result_for_model(result: str) -> str:
    if len(result) <= MAX_TOOL_CHARS:
        return result
    head, tail = result[: MAX_TOOL_CHARS // 2], result[-MAX_TOOL_CHARS // 4 :]
    return f"{head}\\n... [{len(result) - len(head) - len(tail)} characters omitted] ...\\n{tail}"
'''

SNIPPET_DECOMPOSE = '''# Split the task: a cheap router model plans, sub-agents get only the context they need.
plan = router_llm.invoke([{"role": "user", "content": f"Split into independent subtasks: {task}"}])
results = [worker_llm.invoke(scoped_context(sub)) for sub in parse_subtasks(plan)]
'''


def _dec(x: str | None) -> Decimal | None:
    return None if x is None else Decimal(x)


def _message_costs(call: dict[str, Any], payloads: "PayloadTable") -> tuple[Decimal | None, int]:
    """The call's cost per estimated input token (to price a part of its prompt), and its estimated size."""
    est = sum(payloads.tokens(i) for i in call["msgs"]) + call.get("tools_tokens", 0)
    cost = _dec(call["cost"])
    if cost is None or not est:
        return None, est
    # Spread the call's cost over its input only if input dominates; output is a small share for agents.
    return cost / est, est


def _prefix_breaks_from_optimizer(runs: list[Run], calls: list[dict[str, Any]],
                                  currency: str) -> "Diagnostic | None":
    """Prefix breaks by the prompt-cache analysis (``tokprof.optimizers.prompt_cache.prefix_breaks``), which knows
    each provider's cache rules and prices; ``None`` when it is not available."""
    if max((sum(1 for s in r.spans if s.llm is not None) for r in runs), default=0) > PREFIX_ANALYSIS_MAX_CALLS:
        return None  # the full analysis is slow on huge runs; the quick check below stands in
    index = {(c["run"], c["span_id"]): c["i"] for c in calls}
    found: list[tuple[int, Any]] = []
    try:
        for ri, r in enumerate(runs):
            for b in prefix_breaks(r, currency):
                found.append((index.get((ri, b.span_id), -1), b))
    except Exception as exc:  # noqa: BLE001 - an analysis bug must not lose the report
        internal_error("tokprof.reports.diagnostics.prefix_breaks", exc)
        return None
    empty = Diagnostic("prefix-break", "", "", None, 0, "estimated", "")
    if not found:
        return empty
    causes: dict[str, list[Any]] = defaultdict(list)
    for _, b in found:
        causes[b.cause].append(b)
    costs = [b.cost for _, b in found if b.cost is not None]
    money = sum(costs, Decimal(0)) if costs else None
    lost = sum(b.lost_tokens for _, b in found)
    parts = ", ".join(f"{len(v)}× {k}" for k, v in sorted(causes.items(), key=lambda kv: -len(kv[1])))
    top = max(found, key=lambda f: f[1].lost_tokens)[1]
    example = f' Biggest: {top.where} changed ("{top.before[:60]}" → "{top.after[:60]}").' if top.before or top.after else ""
    detail = (f"{len(found)} calls diverge from the previous call's prompt before its end ({parts}), so the "
              f"provider's prefix cache cannot reuse {lost:,} tokens.{example}")
    ordered = [i for i, _ in sorted(found, key=lambda f: -f[1].lost_tokens) if i >= 0]
    return Diagnostic("prefix-break", "Prompt prefix is not stable", detail, money, lost, "simulated",
                      SNIPPET_PREFIX, ordered[:50])


def _quick_prefix_breaks(calls: list[dict[str, Any]], payloads: "PayloadTable") -> list[tuple[int, int, str]]:
    """(call, tokens re-sent uncached, reason) for each call that rewrites part of the previous prompt of its
    run and model, from the payload table alone."""
    breaks: list[tuple[int, int, str]] = []  # call, tokens re-sent uncached, reason
    prev: dict[tuple[int, str], list[int]] = {}
    for c in calls:
        key = (c["run"], c["model"])
        p, m = prev.get(key), c["msgs"]
        prev[key] = m
        if not p:
            continue
        k = 0
        for a, b in zip(p, m):
            if a != b:
                break
            k += 1
        if k >= len(p) or k >= len(m):
            continue  # the new prompt extends the old one: cacheable
        lost = sum(payloads.tokens(i) for i in m[k:len(p)])
        role = payloads.items[m[k]]["role"]
        reason = "system prompt changed" if role in ("system", "developer") else f"message {k + 1} ({role}) rewritten"
        breaks.append((c["i"], lost, reason))
    return breaks


def diagnose(runs: list[Run], calls: list[dict[str, Any]], payloads: "PayloadTable",
             currency: str) -> tuple[list["Diagnostic"], list[str]]:
    """All findings, biggest money first, and notes on analyses that were not available."""
    out: list[Diagnostic] = []
    notes: list[str] = []
    rates = [_message_costs(c, payloads)[0] for c in calls]

    # 1. Prefix-stability breaks: a call that rewrites part of the previous call's prompt. The billing
    # simulator's analysis when it is available; else a quick scan of the payload table.
    d_diag = _prefix_breaks_from_optimizer(runs, calls, currency)
    breaks = _quick_prefix_breaks(calls, payloads) if d_diag is None else []
    if d_diag is not None:
        if d_diag.calls or d_diag.tokens:
            out.append(d_diag)
    elif breaks:
        money = sum(((rates[i] or 0) * t * CACHED_INPUT_DISCOUNT for i, t, _ in breaks), Decimal(0))
        reasons: dict[str, int] = defaultdict(int)
        for _, _, r in breaks:
            reasons[r.split(" (")[0] if r.startswith("message") else r] += 1
        detail = (f"{len(breaks)} calls rewrite part of the previous call's prompt, so the provider's prefix cache "
                  f"cannot reuse it ({', '.join(f'{v}× {k}' for k, v in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])}); "
                  f"{sum(t for _, t, _ in breaks):,} tokens re-sent uncached (up to the value shown, if cached "
                  "input is billed at 10% of the input price).")
        out.append(Diagnostic("prefix-break", "Prompt prefix is not stable", detail, money,
                              sum(t for _, t, _ in breaks), "estimated", SNIPPET_PREFIX,
                              [i for i, _, _ in sorted(breaks, key=lambda b: -b[1])][:50]))

    # 2. Repeated calls: the same model asked the same thing again.
    seen: dict[tuple[str, tuple[int, ...]], int] = {}
    repeats: list[int] = []
    for c in calls:
        key = (c["model"], tuple(c["msgs"]))
        if key in seen:
            repeats.append(c["i"])
        else:
            seen[key] = c["i"]
    if repeats:
        costs = [_dec(calls[i]["cost"]) for i in repeats]
        money = sum((x for x in costs if x is not None), Decimal(0)) if any(x is not None for x in costs) else None
        toks = sum(calls[i]["in"] + calls[i]["out"] for i in repeats)
        out.append(Diagnostic("repeated-calls", "Identical requests paid for again",
                              f"{len(repeats)} calls send exactly the same model and messages as an earlier call "
                              f"({toks:,} tokens). A response cache would serve them for free.",
                              money, toks, "estimated", SNIPPET_REPEATED, repeats[:50]))

    # 3. Oversized tool outputs, re-sent with every later call of the conversation.
    occurrences: dict[int, list[int]] = defaultdict(list)
    for c in calls:
        for i in set(c["msgs"]):
            it = payloads.items[i]
            if it["role"] == "tool" and it["tokens"] >= OVERSIZED_TOOL_OUTPUT_TOKENS:
                occurrences[i].append(c["i"])
    if occurrences:
        total_tokens = 0
        money = Decimal(0)
        priced = False
        worst: list[tuple[int, int]] = []
        for i, where in occurrences.items():
            t = payloads.tokens(i)
            total_tokens += t * len(where)
            worst.append((t * len(where), i))
            for ci in where:
                if rates[ci] is not None:
                    money += rates[ci] * t  # type: ignore[operator]
                    priced = True
        worst.sort(reverse=True)
        examples = "; ".join(f"{payloads.items[i].get('name') or 'tool'} output of {payloads.tokens(i):,} tokens "
                             f"sent {len(occurrences[i])}×" for _, i in worst[:3])
        out.append(Diagnostic("oversized-tool-output", "Large tool outputs re-sent on every call",
                              f"{len(occurrences)} tool outputs of {OVERSIZED_TOOL_OUTPUT_TOKENS:,}+ tokens account for "
                              f"{total_tokens:,} input tokens across the calls that re-send them ({examples}). "
                              "Trimming or masking old observations removes most of it.",
                              money if priced else None, total_tokens, "estimated", SNIPPET_TOOL_OUTPUT,
                              sorted({ci for w in occurrences.values() for ci in w})[:50]))

    # 4. Decomposition opportunities (tokprof.optimizers.decompose).

    for r in runs[:20]:
        try:
            res = decompose(r)
        except Exception as exc:  # noqa: BLE001 - an analysis bug must not lose the report
            notes.append(f"decomposition analysis failed on run {r.name}: {type(exc).__name__}: {exc}")
            break
        if not res:
            continue
        money = res.saving if isinstance(res.saving, Decimal) else None
        out.append(Diagnostic("decomposition", f"Decomposition opportunity in {r.name}", res.summary()[:600],
                              money, 0, "estimated", SNIPPET_DECOMPOSE))
    out.sort(key=lambda d: -(d.money or 0))
    return out, notes
