"""The report's data types: what every renderer reads (and nothing else)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

GROWTH_PARTS = ("system", "tools", "history", "tool_outputs", "new")
"""The parts a prompt is split into in the context-growth chart."""


# ---- the model ------------------------------------------------------------------------------------
@dataclass
class Headline:
    llm_calls: int
    runs: int
    input_before: int
    output_before: int
    input_after: int
    output_after: int
    cache_read_before: int
    cost_before: Decimal | None
    cost_after: Decimal | None
    currency: str
    cost_basis: str
    """How the money was computed: ``billed (simulated)`` by the billing simulator, else ``recorded/priced``."""
    unpriced_calls: int
    token_sources: dict[str, float]
    """Share (0..1) of input+output tokens by source: provider / counted / estimated / unknown."""
    fidelity: float | None
    optimized: bool
    duration_ms: float
    tools_share: float | None = None
    """Share (0..1) of all input tokens that are tool definitions (schemas re-sent with every call)."""
    cost_before_range: tuple[Decimal, Decimal] | None = None
    """(low, high) of ``cost_before`` over the cache hit-rate scenarios, when the as-paid cost is simulated
    under a rule that is not guaranteed; ``None`` when the figure is a point (recorded, or a guaranteed rule)."""
    cost_saved_range: tuple[Decimal, Decimal] | None = None
    """(least, most) saved over the same scenarios, each scenario compared with itself."""

    @property
    def tokens_before(self) -> int:
        return self.input_before + self.output_before

    @property
    def tokens_after(self) -> int:
        return self.input_after + self.output_after

    @property
    def tokens_saved_pct(self) -> float | None:
        return None if not self.tokens_before else 100.0 * (self.tokens_before - self.tokens_after) / self.tokens_before

    @property
    def cost_saved(self) -> Decimal | None:
        if self.cost_before is None or self.cost_after is None:
            return None
        return self.cost_before - self.cost_after

    @property
    def cost_saved_pct(self) -> float | None:
        if self.cost_saved is None or not self.cost_before:
            return None
        return float(100 * self.cost_saved / self.cost_before)


@dataclass
class WaterfallStep:
    pass_name: str
    description: str
    evidence: str
    input_tokens: int
    output_tokens: int
    billed_cost: Decimal | None
    delta_tokens: int
    """Tokens saved by this pass (positive = fewer tokens)."""
    delta_cost: Decimal | None
    """Money saved by this pass (negative when it made billing worse, e.g. by breaking a cache prefix)."""
    risk: str
    fidelity: float | None
    calls_changed: int


@dataclass
class Diagnostic:
    kind: str
    """``prefix-break``, ``repeated-calls``, ``oversized-tool-output``, ``decomposition``."""
    title: str
    detail: str
    money: Decimal | None
    tokens: int
    evidence: str
    snippet: str
    calls: list[int] = field(default_factory=list)
    where: str = ""
    """Where in the code: the call path (``agent / resolve_ticket``) or the tool that causes it."""
    runs_affected: int = 1
    """In how many of the report's runs it was found (one finding per kind, never one per run)."""
    runs_total: int = 1
    low: Decimal | None = None
    """Low end of the money at stake where the saving is not guaranteed (``money`` is the high end)."""
    risk: str = ""


@dataclass
class Fix:
    """One of the (at most three) fixes the report opens with, ranked by money at stake."""

    what: str
    where: str
    saving: Decimal | None
    """Expected saving (the high end of ``low``..``saving`` when a range)."""
    low: Decimal | None
    evidence: str
    """``measured`` / ``simulated`` / ``estimated``."""
    risk: str
    source: str
    """What found it: a diagnostic kind or a pass name."""


@dataclass
class ReportModel:
    title: str
    currency: str
    generated_at: str
    runs: list[dict[str, Any]]
    headline: Headline
    waterfall: list[WaterfallStep]
    waterfall_note: str | None
    flame: list[dict[str, Any]]
    top_spans: list[dict[str, Any]]
    growth: list[dict[str, Any]]
    growth_bucket: int
    graph: dict[str, Any]
    diagnostics: list[Diagnostic]
    diagnostics_notes: list[str]
    attribution: dict[str, list[dict[str, Any]]]
    calls: list[dict[str, Any]]
    payloads: list[dict[str, Any]]
    payload_token_source: str
    notes: list[str] = field(default_factory=list)
    fixes: list[Fix] = field(default_factory=list)
    timeline: dict[str, Any] = field(default_factory=dict)
    """Spans on a time axis (one run): ``{"run", "total_ms", "spans": [{name, kind, depth, start, ms, call}]}``."""
    carried_total: Decimal = Decimal(0)
    """Sum of carried cost over all spans: equals ``input_cost`` (every input token has one introducer)."""
    input_cost: Decimal = Decimal(0)

    @property
    def optimized(self) -> bool:
        return self.headline.optimized
