"""Where a span's numbers come from: fill missing usage by local counting, and price it.

Provider-reported usage always wins; local counting fills only what is missing, and each field keeps
its source (``provider`` / ``counted`` / ``estimated``).

NOTE: first cut — the tokenizer registry and the price table (``profiler.tokenizers``,
``profiler.chat_format``, ``profiler.prices``) plug in here.
"""

from __future__ import annotations

from profiler.model import Cost, LLMCall, Span


def fill_usage(call: LLMCall) -> None:
    """Fill the usage counts a provider did not report by counting the call's messages and output."""
    return None


def call_cost(call: LLMCall, currency: str = "USD") -> Cost | None:
    """The cost of one call: as recorded by the trace when present, else tokens x price. ``None``: unknown."""
    return call.cost


def span_cost(span: Span, currency: str = "USD") -> Cost | None:
    return call_cost(span.llm, currency) if span.llm is not None else None


def fill_run_usage(run) -> None:  # noqa: ANN001
    """Fill missing usage on every LLM span of ``run`` (importers call this after building a run)."""
    for s in run.spans:
        if s.llm is not None:
            fill_usage(s.llm)
