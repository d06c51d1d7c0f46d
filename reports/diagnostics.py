"""Diagnostics and recommendations: what in a run wastes tokens, the money at stake, and the code change.

Each finding is a :class:`tokprof.reports.types.Diagnostic`, one per kind however many runs the report holds
(aggregated: "in 37 of 200 runs"), with where in the code it comes from. Money at stake is ``estimated``: it splits each call's
cost between its messages in proportion to their (estimated) token counts.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tokprof.optimizers.decompose import decompose
from tokprof.optimizers.prompt_cache import prefix_breaks
from tokprof.profiler.model import Run
from tokprof.profiler.policy import internal_error
from tokprof.reports.types import Diagnostic  # re-exported: ``tokprof.reports.diagnostics.Diagnostic``

if TYPE_CHECKING:  # pragma: no cover
    from tokprof.reports.payloads import PayloadTable

__all__ = ["Diagnostic", "diagnose"]

OVERSIZED_TOOL_OUTPUT_TOKENS = 1500
"""A tool output this large, re-sent with every later call, is worth trimming."""
PREFIX_ANALYSIS_MAX_CALLS = 2000
"""Runs with more LLM calls than this skip the prefix-stability analysis (with a note saying so)."""
DECOMPOSE_MAX_RUNS = 200
"""Runs checked for decomposition opportunities."""

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


def _runs_of(calls: list[dict[str, Any]], idx: list[int]) -> int:
    return len({calls[i]["run"] for i in idx if 0 <= i < len(calls)})


def _where(calls: list[dict[str, Any]], idx: list[int]) -> str:
    """The call path most of these calls come from (``agent / resolve_ticket → gpt-4.1``)."""
    paths: dict[str, int] = defaultdict(int)
    for i in idx:
        if 0 <= i < len(calls):
            paths[calls[i].get("where") or calls[i]["name"]] += 1
    if not paths:
        return ""
    best = max(paths, key=lambda p: paths[p])
    return best + (f" (and {len(paths) - 1} other call paths)" if len(paths) > 1 else "")


def _prefix_breaks(runs: list[Run], calls: list[dict[str, Any]], currency: str,
                   notes: list[str]) -> "Diagnostic | None":
    """Prefix breaks by the prompt-cache analysis (:func:`tokprof.optimizers.prompt_cache.prefix_breaks`, the
    one home of prefix-break detection), comparing calls of the same call path only."""
    index = {(c["run"], c["span_id"]): c["i"] for c in calls}
    found: list[tuple[int, Any]] = []
    skipped = 0
    for ri, r in enumerate(runs):
        if sum(1 for s in r.spans if s.llm is not None) > PREFIX_ANALYSIS_MAX_CALLS:
            skipped += 1  # the analysis tokenizes every prompt: too slow for a report on huge runs
            continue
        try:
            for b in prefix_breaks(r, currency, by_path=True):
                found.append((index.get((ri, b.span_id), -1), b))
        except Exception as exc:  # noqa: BLE001 - an analysis bug must not lose the report
            internal_error("tokprof.reports.diagnostics.prefix_breaks", exc)
            notes.append(f"prefix-stability analysis failed on run {r.name}: {type(exc).__name__}")
            return None
    if skipped:
        notes.append(f"prefix-stability analysis skipped on {skipped} run(s) with more than "
                     f"{PREFIX_ANALYSIS_MAX_CALLS:,} LLM calls (use `tokprof optimize --passes prompt-cache`)")
    if not found:
        return None
    causes: dict[str, list[Any]] = defaultdict(list)
    for _, b in found:
        causes[b.cause].append(b)
    costs = [b.cost for _, b in found if b.cost is not None]
    money = sum(costs, Decimal(0)) if costs else None
    lost = sum(b.lost_tokens for _, b in found)
    parts = ", ".join(f"{len(v)}× {k}" for k, v in sorted(causes.items(), key=lambda kv: -len(kv[1])))
    top = max(found, key=lambda f: f[1].lost_tokens)[1]
    example = f' Biggest: {top.where} changed ("{top.before[:60]}" → "{top.after[:60]}").' if top.before or top.after else ""
    idx = [i for i, _ in sorted(found, key=lambda f: -f[1].lost_tokens) if i >= 0]
    runs_hit = _runs_of(calls, idx)
    in_runs = f" in {runs_hit} of {len(runs)} runs" if len(runs) > 1 else ""
    detail = (f"{len(found)} calls{in_runs} diverge from the previous prompt of the same call path before its end "
              f"({parts}), so the provider's prefix cache cannot reuse {lost:,} tokens.{example}")
    return Diagnostic("prefix-break", "Prompt prefix is not stable", detail, money, lost, "simulated",
                      SNIPPET_PREFIX, idx[:50], where=_where(calls, idx[:1] or idx), runs_affected=runs_hit,
                      runs_total=len(runs), low=money,
                      risk="low: moving volatile text after the history does not change what the model sees")


def diagnose(runs: list[Run], calls: list[dict[str, Any]], payloads: "PayloadTable",
             currency: str) -> tuple[list["Diagnostic"], list[str]]:
    """All findings, biggest money first, one per kind (aggregated over runs: "in 37 of 200 runs"), and
    notes on analyses that were not available."""
    out: list[Diagnostic] = []
    notes: list[str] = []
    n_runs = len(runs)
    in_runs = (lambda k: f" in {k} of {n_runs} runs") if n_runs > 1 else (lambda k: "")
    rates = [_message_costs(c, payloads)[0] for c in calls]

    # 1. Prefix-stability breaks: a call that rewrites part of the previous prompt of its call path.
    d_diag = _prefix_breaks(runs, calls, currency, notes)
    if d_diag is not None and (d_diag.calls or d_diag.tokens):
        out.append(d_diag)

    # 2. Repeated calls: the same model asked the same thing again (a response cache serves identical
    # requests whoever sends them, so this one is not limited to one call path).
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
        k = _runs_of(calls, repeats)
        out.append(Diagnostic("repeated-calls", "Identical requests paid for again",
                              f"{len(repeats)} calls{in_runs(k)} send exactly the same model and messages as an "
                              f"earlier call ({toks:,} tokens). A response cache would serve them for free.",
                              money, toks, "estimated", SNIPPET_REPEATED, repeats[:50], where=_where(calls, repeats),
                              runs_affected=k, runs_total=n_runs, low=money))

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
        by_tool: dict[str, int] = defaultdict(int)
        for i, where in occurrences.items():
            t = payloads.tokens(i)
            total_tokens += t * len(where)
            worst.append((t * len(where), i))
            by_tool[payloads.items[i].get("name") or "tool"] += t * len(where)
            for ci in where:
                if rates[ci] is not None:
                    money += rates[ci] * t  # type: ignore[operator]
                    priced = True
        worst.sort(reverse=True)
        examples = "; ".join(f"{payloads.items[i].get('name') or 'tool'} output of {payloads.tokens(i):,} tokens "
                             f"sent {len(occurrences[i])}×" for _, i in worst[:3])
        affected = sorted({ci for w in occurrences.values() for ci in w})
        k = _runs_of(calls, affected)
        tools = sorted(by_tool, key=lambda t: -by_tool[t])
        m = money if priced else None
        out.append(Diagnostic("oversized-tool-output", f"Large {tools[0]} outputs re-sent on every call",
                              f"{len(occurrences)} tool outputs of {OVERSIZED_TOOL_OUTPUT_TOKENS:,}+ tokens{in_runs(k)} "
                              f"account for {total_tokens:,} input tokens across the calls that re-send them "
                              f"({examples}). Trimming or masking old observations removes most of it.",
                              m, total_tokens, "estimated", SNIPPET_TOOL_OUTPUT, affected[:50],
                              where="tool " + ", ".join(tools[:3]) + f" (called from {_where(calls, affected[:1])})",
                              runs_affected=k, runs_total=n_runs,
                              # masking keeps the newest copy of each output: about half to all is saved
                              low=None if m is None else m / 2,
                              risk="medium: lossy; the model may need a detail that was trimmed"))

    # 4. Decomposition opportunities (tokprof.optimizers.decompose): one finding over all runs, not one card
    # per run.

    hits: list[tuple[str, Any]] = []
    for r in runs[:DECOMPOSE_MAX_RUNS]:
        try:
            res = decompose(r)
        except Exception as exc:  # noqa: BLE001 - an analysis bug must not lose the report
            notes.append(f"decomposition analysis failed on run {r.name}: {type(exc).__name__}: {exc}")
            break
        if res:
            hits.append((r.name, res))
    if hits:
        savings = [res.saving for _, res in hits if isinstance(res.saving, Decimal)]
        money = sum(savings, Decimal(0)) if savings else None
        checked = min(n_runs, DECOMPOSE_MAX_RUNS)
        title = ("Decomposition opportunity" + (f" in {len(hits)} of {checked} runs" if checked > 1 else
                                                 f" in {hits[0][0]}"))
        example = hits[0][1].summary()[:500]
        detail = example if len(hits) == 1 else f"For example, in {hits[0][0]}: {example}"
        out.append(Diagnostic("decomposition", title, detail, money, 0, "estimated", SNIPPET_DECOMPOSE,
                              where=", ".join(n for n, _ in hits[:3]), runs_affected=len(hits), runs_total=checked,
                              low=None if money is None else money / 2))
    out.sort(key=lambda d: -(d.money or 0))
    return out, notes
