"""Per-call entries (the drill-down) and the context-growth chart built from them."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from tokprof.optimizers.base import Ledger, LedgerRow
from tokprof.profiler.model import Run, Span
from tokprof.profiler.pairing import pair_calls
from tokprof.reports.payloads import PayloadTable
from tokprof.reports.types import GROWTH_PARTS

GROWTH_MAX_BARS = 400
"""Above this many LLM calls the context-growth chart averages consecutive calls into one bar."""


def _calls(runs: list[Run], optimized: list[Run] | None, before_costs: dict[str, dict[str, Decimal | None]],
           after_costs: dict[str, dict[str, Decimal | None]], ledgers: list[Ledger] | None,
           payloads: PayloadTable) -> tuple[list[dict[str, Any]], dict[tuple[str, str], int]]:
    """One entry per LLM call (all runs, in order) for drill-down; messages as payload indices."""
    calls: list[dict[str, Any]] = []
    index_of: dict[tuple[str, str], int] = {}
    rows_by_span: dict[tuple[str, str], list[LedgerRow]] = defaultdict(list)
    for lg in ledgers or []:
        for r in lg.rows:
            rows_by_span[(lg.run_id, r.span_id)].append(r)
    tools_memo: dict[tuple[int, str | None], tuple[Any, int]] = {}
    for ri, run in enumerate(runs):
        after_run = optimized[ri] if optimized else None
        # counterpart of each call: by span id only when the after run was derived from this one, else by
        # call order within the same call path (profiler.pairing)
        after_by_id = {b.span_id: a for b, a in pair_calls(run, after_run)} if after_run is not None else {}
        acosts = after_costs.get(after_run.run_id, {}) if after_run is not None else {}
        index = run.by_id()
        paths: dict[str | None, str] = {}
        for ci, s in enumerate(run.llm_spans()):
            llm = s.llm
            assert llm is not None
            u = llm.usage
            caller = _caller_path(s.parent_id, index, paths)
            parent = index.get(s.parent_id) if s.parent_id else None
            entry: dict[str, Any] = {
                "i": len(calls), "run": ri, "span_id": s.span_id, "model": llm.model or "unknown",
                # named by what called it (resolve_ticket → gpt-4.1), and where: the whole call path
                "name": f"{parent.name} → {s.name}" if parent is not None and parent.name != s.name else s.name,
                "where": f"{caller} → {s.name}" if caller else s.name,
                "in": u.input_tokens, "out": u.output_tokens, "cached": u.cache_read_tokens,
                "src": u.sources.get("input_tokens") or "unknown",
                "cost": _money_str(before_costs.get(run.run_id, {}).get(s.span_id)),
                "ms": round(s.duration_ns / 1e6, 1),
                "msgs": [payloads.add(m, llm.model) for m in llm.messages],
                "tools": len(llm.tools),
                "tools_tokens": _tools_tokens(llm.tools, llm.model, payloads, tools_memo) if llm.tools else 0,
                "output": payloads.add(llm.output, llm.model) if llm.output is not None else None,
            }
            if after_run is not None:
                a = after_by_id.get(s.span_id)
                if a is not None and a.llm is not None:
                    entry["after"] = {"msgs": [payloads.add(m, a.llm.model) for m in a.llm.messages],
                                      "in": a.llm.usage.input_tokens, "out": a.llm.usage.output_tokens,
                                      "cached": _billed_cache_read(a),
                                      "cost": _money_str(acosts.get(a.span_id))}
            rows = rows_by_span.get((run.run_id, s.span_id))
            if rows:
                entry["ledger"] = [{"pass": r.pass_name, "change": r.change, "evidence": r.evidence,
                                    "in_before": r.input_tokens_before, "in_after": r.input_tokens_after,
                                    "out_before": r.output_tokens_before, "out_after": r.output_tokens_after,
                                    "cost_before": _money_str(r.cost_before), "cost_after": _money_str(r.cost_after),
                                    "risk": r.risk, "fidelity": r.fidelity} for r in rows]
            index_of[(run.run_id, s.span_id)] = len(calls)
            calls.append(entry)
    return calls, index_of


def _caller_path(parent_id: str | None, index: dict[str, Span], memo: dict[str | None, str]) -> str:
    """``root / ... / parent``: the names of the spans above an LLM call (memoised per parent)."""
    if parent_id in memo:
        return memo[parent_id]
    names: list[str] = []
    cur = index.get(parent_id) if parent_id else None
    while cur is not None and len(names) < 64:
        names.append(str(cur.name))  # a loaded span name can be null
        cur = index.get(cur.parent_id) if cur.parent_id else None
    memo[parent_id] = " / ".join(reversed(names))
    return memo[parent_id]


def _tools_tokens(tools: list[dict[str, Any]], model: str | None, payloads: PayloadTable,
                  memo: dict[tuple[int, str | None], tuple[Any, int]]) -> int:
    """Estimated tokens of a call's tool definitions (calls usually share one list object: count it once)."""
    import json

    hit = memo.get((id(tools), model))
    if hit is not None and hit[0] is tools:
        return hit[1]
    n = payloads.count_text(json.dumps(tools, ensure_ascii=False, default=str), model)
    memo[(id(tools), model)] = (tools, n)
    return n


def _billed_cache_read(span: Span) -> int:
    """Cache-read tokens as billed: a caching pass records them in ``attributes["billing"]`` (the billing
    simulator's annotation) rather than rewriting the provider's usage."""
    billing = (span.attributes or {}).get("billing")
    if isinstance(billing, dict) and isinstance(billing.get("cache_read_tokens"), int):
        return billing["cache_read_tokens"]
    return span.llm.usage.cache_read_tokens if span.llm is not None else 0


def _money_str(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _growth(runs: list[Run], optimized: list[Run] | None, calls: list[dict[str, Any]],
            payloads: PayloadTable) -> tuple[list[dict[str, Any]], int]:
    """Per LLM call, its input split into parts (scaled so the parts add up to the reported input tokens)."""
    bars: list[dict[str, Any]] = []
    for c in calls:
        msgs = c["msgs"]
        roles = [payloads.items[i]["role"] for i in msgs]
        last_assistant = max((k for k, r in enumerate(roles) if r == "assistant"), default=-1)
        est = dict.fromkeys(GROWTH_PARTS, 0)
        est["tools"] = c["tools_tokens"]
        for k, (i, role) in enumerate(zip(msgs, roles)):
            t = payloads.tokens(i)
            if role in ("system", "developer"):
                est["system"] += t
            elif role == "tool":
                est["tool_outputs"] += t
            elif k > last_assistant:
                est["new"] += t
            else:
                est["history"] += t
        total_est = sum(est.values())
        scale = (c["in"] / total_est) if (c["in"] and total_est) else 1.0
        parts = {k: round(v * scale) for k, v in est.items()}
        if c["in"]:  # rounding: make the parts add up exactly
            biggest = max(parts, key=lambda k: parts[k])
            parts[biggest] += c["in"] - sum(parts.values())
        bar = {"call": c["i"], "run": c["run"], **parts, "cached": c["cached"], "in": c["in"] or total_est}
        if "after" in c:
            bar["after"] = c["after"]["in"]
            bar["after_cached"] = c["after"]["cached"]
        bars.append(bar)
    bucket = 1
    if len(bars) > GROWTH_MAX_BARS:
        bucket = -(-len(bars) // GROWTH_MAX_BARS)
        out = []
        for j in range(0, len(bars), bucket):
            grp = bars[j:j + bucket]
            avg = {k: round(sum(b.get(k, 0) for b in grp) / len(grp))
                   for k in (*GROWTH_PARTS, "cached", "in")}
            if any("after" in b for b in grp):
                avg["after"] = round(sum(b.get("after", 0) for b in grp) / len(grp))
                avg["after_cached"] = round(sum(b.get("after_cached", 0) for b in grp) / len(grp))
            out.append({"call": grp[0]["call"], "run": grp[0]["run"], **avg})
        bars = out
    return bars, bucket
