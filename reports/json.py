"""The report as JSON: a documented, versioned schema for scripts and CI (``tokprof report --json``).

Schema ``tokprof.report/1`` (money is a decimal string or ``null`` when unknown; tokens are integers)::

    {
      "schema": "tokprof.report/1",
      "title": str, "currency": "USD" | "CNY", "generated_at": str,
      "runs": [{"run_id", "name", "llm_calls", "spans", "complete", "source"}],
      "headline": {
        "llm_calls", "runs", "optimized": bool,
        "tokens": {"before": {"input", "output", "cache_read", "total"}, "after": {"input", "output", "total"},
                   "saved_pct": float | null},
        "cost": {"before", "after", "saved", "saved_pct": float | null, "basis": str, "unpriced_calls": int,
                 "before_range": [low, high] | null,    # over the cache hit-rate scenarios, when not a point
                 "saved_range": [least, most] | null},
        "token_sources": {"provider": share, "counted": share, "estimated": share, "unknown": share},
        "fidelity": float | null                      # reference retention of the optimized run, 0..1
      },
      "waterfall": [{"pass", "description", "evidence": "measured" | "simulated" | "estimated",
                     "input_tokens", "output_tokens", "billed_cost", "tokens_saved", "cost_saved",
                     "risk", "fidelity", "calls_changed"}],
      "waterfall_note": str | null,                   # why the waterfall is empty
      "top_spans": [{"name", "path", "kind", "calls", "own_tokens", "input_tokens", "output_tokens",
                     "cached_tokens", "cost", "duration_ms"}],   # repeated calls along one path merged
      "context_growth": {"bucket": int,               # calls averaged per entry (1 = one entry per call)
                         "calls": [{"call", "system", "tools", "history", "tool_outputs", "new", "cached",
                                    "input", "after"?}]},
      "diagnostics": [{"kind", "title", "detail", "money_at_stake", "tokens", "evidence", "snippet", "calls"}],
      "diagnostics_notes": [str],
      "attribution": {"by_tag": [{"key", "value", "calls", "input_tokens", "output_tokens", "cached_tokens",
                                  "cost", "unpriced_calls"}],
                      "by_model": [{"model", ...same counts}]},
      "notes": [str]
    }

Additions in this version (additive, same schema): ``"fixes": [{"what", "where", "saving", "saving_low",
"evidence", "risk", "source"}]`` (at most three, money first; the report leads with them);
``headline.tools_share`` (share of input tokens that are tool definitions); ``carried``:
``{"total", "input_cost"}`` (equal: every input token has one introducer); ``call_tree``: the icicle's nodes
``[{"id", "parent", "name", "kind", "calls", "own": {"tokens", "cost"}, "inclusive": {"tokens", "cost"},
"carried": {"own_cost", "cost", "tokens"}}]`` where carried ``cost`` is the box size of the default
"carried" view (input cost the subtree introduced plus its output cost); ``top_spans[].carried_cost``;
``diagnostics[].where``, ``runs_affected``, ``runs_total``, ``money_low``; ``timeline``.

Message bodies are not included (they are in the HTML drill-down); ``calls`` indices are 0-based
positions of LLM calls in run order. Additive changes keep the version; removals or renames bump it.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from tokprof.reports.renderers import Renderer, register
from tokprof.reports.types import GROWTH_PARTS, ReportModel

REPORT_SCHEMA = "tokprof.report/1"


def _m(x: Decimal | None) -> str | None:
    return None if x is None else str(x)


def _r(x: float | None, digits: int = 4) -> float | None:
    return None if x is None else round(x, digits)


def report_dict(m: ReportModel) -> dict[str, Any]:
    """The report as plain JSON-able data (see the module docstring for the schema)."""
    h = m.headline
    return {
        "schema": REPORT_SCHEMA,
        "title": m.title,
        "currency": m.currency,
        "generated_at": m.generated_at,
        "runs": m.runs,
        "headline": {
            "llm_calls": h.llm_calls, "runs": h.runs, "optimized": h.optimized,
            "tokens": {"before": {"input": h.input_before, "output": h.output_before,
                                  "cache_read": h.cache_read_before, "total": h.tokens_before},
                       "after": {"input": h.input_after, "output": h.output_after, "total": h.tokens_after},
                       "saved_pct": _r(h.tokens_saved_pct, 2)},
            "cost": {"before": _m(h.cost_before), "after": _m(h.cost_after), "saved": _m(h.cost_saved),
                     "saved_pct": _r(h.cost_saved_pct, 2), "basis": h.cost_basis,
                     "before_range": None if h.cost_before_range is None else [_m(v) for v in h.cost_before_range],
                     "saved_range": None if h.cost_saved_range is None else [_m(v) for v in h.cost_saved_range],
                     "unpriced_calls": h.unpriced_calls},
            "token_sources": {k: _r(v) for k, v in h.token_sources.items()},
            "fidelity": _r(h.fidelity),
            "tools_share": _r(h.tools_share),
        },
        "fixes": [{"what": f.what, "where": f.where, "saving": _m(f.saving), "saving_low": _m(f.low),
                   "evidence": f.evidence, "risk": f.risk, "source": f.source} for f in m.fixes],
        "carried": {"total": _m(m.carried_total), "input_cost": _m(m.input_cost)},
        "call_tree": [{"id": n["id"], "parent": n["parent"], "name": n["name"], "kind": n["kind"],
                       "calls": n["calls"], "own": {"tokens": n["excl_tokens"], "cost": _f(n["excl_cost"])},
                       "inclusive": {"tokens": n["tokens"], "cost": _f(n["cost"])},
                       "carried": {"own_cost": _f(n["excl_carried"]), "cost": _f(n["carried"]),
                                   "tokens": n["carried_tokens"]}} for n in m.flame],
        "waterfall": [{"pass": s.pass_name, "description": s.description, "evidence": s.evidence,
                       "input_tokens": s.input_tokens, "output_tokens": s.output_tokens,
                       "billed_cost": _m(s.billed_cost), "tokens_saved": s.delta_tokens,
                       "cost_saved": _m(s.delta_cost), "risk": s.risk, "fidelity": _r(s.fidelity),
                       "calls_changed": s.calls_changed} for s in m.waterfall],
        "waterfall_note": m.waterfall_note,
        "top_spans": [{"name": r["name"], "path": r["path"], "kind": r["kind"], "calls": r["calls"],
                       "own_tokens": r["excl_tokens"], "input_tokens": r["in"], "output_tokens": r["out"],
                       "cached_tokens": r["cached"],
                       "cost": str(Decimal(str(r["cost"]))) if r["llm_calls"] > r["unpriced"] else None,
                       "duration_ms": r["ms"], "carried_cost": _f(r["excl_carried"])} for r in m.top_spans],
        "context_growth": {"bucket": m.growth_bucket,
                           "calls": [{"call": b["call"], **{p: b[p] for p in GROWTH_PARTS}, "cached": b["cached"],
                                      "input": b["in"], **({"after": b["after"]} if "after" in b else {})}
                                     for b in m.growth]},
        "diagnostics": [{"kind": d.kind, "title": d.title, "detail": d.detail,
                         "money_at_stake": _m(d.money.quantize(Decimal("0.000001")) if d.money is not None else None),
                         "tokens": d.tokens, "evidence": d.evidence, "snippet": d.snippet, "calls": d.calls,
                         "where": d.where, "runs_affected": d.runs_affected, "runs_total": d.runs_total,
                         "money_low": _m(d.low)}
                        for d in m.diagnostics],
        "diagnostics_notes": m.diagnostics_notes,
        "attribution": {
            "by_tag": [{"key": r["key"], "value": r["value"], **_counts(r)} for r in m.attribution["by_tag"]],
            "by_model": [{"model": r["model"], **_counts(r)} for r in m.attribution["by_model"]],
        },
        "notes": m.notes,
        "timeline": m.timeline,
    }


def _f(x: float) -> str:
    """A float amount (the icicle's) as a decimal string rounded to 1e-9 of the currency."""
    return str(Decimal(str(x)).quantize(Decimal("0.000000001")).normalize())


def _counts(r: dict[str, Any]) -> dict[str, Any]:
    return {"calls": r["calls"], "input_tokens": r["in"], "output_tokens": r["out"], "cached_tokens": r["cached"],
            "cost": str(r["cost"]) if r["calls"] > r["unpriced"] else None, "unpriced_calls": r["unpriced"]}


def render_json(m: ReportModel, indent: int | None = 2) -> str:
    return json.dumps(report_dict(m), indent=indent, ensure_ascii=False)


@register
class JsonRenderer(Renderer):
    """The report as JSON (schema ``tokprof.report/1``)."""

    name = "json"
    file_extension = ".json"

    def render(self, model: ReportModel) -> str:
        return render_json(model)
