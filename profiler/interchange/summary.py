"""The one-screen summary of an import: runs, calls, tokens by source, cost, models, per-file errors.

:func:`import_summary` returns a plain JSON-ready dict (what ``tokprof import --json`` prints). Keys:

* ``schema`` (1), ``files``: ``[{path, format, runs, calls, records, errors, error_reasons (first 5),
  failed (the whole file could not be read: its reason, else null)}]``;
* ``runs``, ``calls`` (LLM spans), ``tool_spans``;
* ``tokens``: ``{input, output, cache_read, cache_write, reasoning, total}``;
* ``tokens_by_source``: ``{provider|counted|estimated|unknown: {input, output}}``;
* ``cost``: ``{amount (decimal string or null), currency, by_source: {recorded|computed|estimated: str},
  unpriced_calls, unpriced_models: {model: calls}}`` — recorded costs from the file win, the rest is tokens x the price table;
* ``models``: ``{model: calls}``, most calls first; ``errors``: total record errors.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from tokprof.profiler.accounting import call_cost
from tokprof.profiler.providers.cost import call_start_ns
from tokprof.profiler.interchange.base import (
    MAX_REPORTED_ERRORS,
    ImportResult,
    InterchangeError,
)
from tokprof.profiler.model import Run

SUMMARY_SCHEMA = 1


class ImportTotals:
    """Accumulates runs as they are imported (so a big import need not keep every run in memory)."""

    def __init__(self, currency: str = "USD") -> None:
        self.currency = currency
        self.runs = 0
        self.calls = 0
        self.tool_spans = 0
        self.tokens = {"input": 0, "output": 0, "cache_read": 0, "cache_write": 0, "reasoning": 0,
                       "cache_write_1h": 0}
        self.by_source: dict[str, dict[str, int]] = {}
        self.cost_by_source: dict[str, Decimal] = {}
        self.unpriced = 0
        self.unpriced_models: dict[str, int] = {}
        self.models: dict[str, int] = {}
        self.files: list[dict[str, Any]] = []

    def add_run(self, run: Run) -> None:
        import warnings

        self.runs += 1
        for s in run.spans:
            if s.kind == "tool":
                self.tool_spans += 1
            if s.llm is None:
                continue
            call = s.llm
            u = call.usage
            self.calls += 1
            for key, field in (("input", "input_tokens"), ("output", "output_tokens"),
                               ("cache_read", "cache_read_tokens"), ("cache_write", "cache_write_tokens"),
                               ("reasoning", "reasoning_tokens"), ("cache_write_1h", "cache_write_1h_tokens")):
                self.tokens[key] += getattr(u, field)
            for key, field in (("input", "input_tokens"), ("output", "output_tokens")):
                bucket = self.by_source.setdefault(u.source(field) or "unknown", {"input": 0, "output": 0})
                bucket[key] += getattr(u, field)
            model = call.model or "(unknown model)"
            self.models[model] = self.models.get(model, 0) + 1
            with warnings.catch_warnings():
                # An unknown price is reported once in the summary (unpriced_models), not per call.
                warnings.simplefilter("ignore")
                cost = call_cost(call, self.currency, started_ns=call_start_ns(s))  # peak / off-peak prices
            if cost is None or cost.amount is None:
                self.unpriced += 1
                self.unpriced_models[model] = self.unpriced_models.get(model, 0) + 1
            else:
                self.cost_by_source[cost.source] = self.cost_by_source.get(cost.source, Decimal(0)) + cost.amount

    def add_file(self, result: ImportResult | None, path: str, fmt: str | None = None,
                 failure: InterchangeError | None = None) -> None:
        calls = sum(1 for r in result.runs for s in r.spans if s.llm is not None) if result else 0
        self.files.append({
            "path": path,
            "format": result.format if result else fmt,
            "runs": len(result.runs) if result else 0,
            "calls": calls,
            "records": result.records if result else 0,
            "errors": len(result.errors) if result else 0,
            "error_reasons": [str(e) for e in result.errors[:MAX_REPORTED_ERRORS]] if result else [],
            "failed": str(failure) if failure is not None else None,
            # Records imported in part (issue #17): how many, and what could not be rebuilt.
            "partial": len(result.partial) if result else 0,
            "partial_reasons": result.partial[:MAX_REPORTED_ERRORS] if result else [],
        })

    def to_dict(self) -> dict[str, Any]:
        total_cost = sum(self.cost_by_source.values(), Decimal(0)) if self.cost_by_source else None
        return {
            "schema": SUMMARY_SCHEMA,
            "files": self.files,
            "runs": self.runs,
            "calls": self.calls,
            "tool_spans": self.tool_spans,
            "tokens": {**self.tokens, "total": self.tokens["input"] + self.tokens["output"]},
            "tokens_by_source": self.by_source,
            "cost": {
                "amount": None if total_cost is None else str(total_cost),
                "currency": self.currency,
                "by_source": {k: str(v) for k, v in self.cost_by_source.items()},
                "unpriced_calls": self.unpriced,
                "unpriced_models": dict(sorted(self.unpriced_models.items(), key=lambda kv: -kv[1])),
            },
            "models": dict(sorted(self.models.items(), key=lambda kv: (-kv[1], kv[0]))),
            "errors": sum(f["errors"] for f in self.files),
            "partial": sum(f["partial"] for f in self.files),
            "failed_files": sum(1 for f in self.files if f["failed"]),
        }


def import_summary(results: Iterable[ImportResult], currency: str = "USD") -> dict[str, Any]:
    """The summary dict for already-imported files."""
    totals = ImportTotals(currency)
    for result in results:
        for run in result.runs:
            totals.add_run(run)
        totals.add_file(result, str(result.path))
    return totals.to_dict()
