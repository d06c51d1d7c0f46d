"""What task decomposition found: the subtasks of a run's main thread, the cheaper route for each, and
the report that sums them (:class:`DecompositionReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # networkx is imported where a graph is built: it costs ~0.5 s to import
    import networkx as nx


@dataclass
class Subtask:
    index: int
    intent: str
    """The user request that opened it (first 120 characters)."""
    span_ids: list[str] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)
    input_tokens: int = 0
    """Recorded input tokens of its calls."""
    context_tokens: int = 0
    """Estimated input tokens of the same calls run as a sub-agent with only the minimal context."""
    sections: list[str] = field(default_factory=list)
    """System-prompt section headings it needs."""
    uses_results_of: list[int] = field(default_factory=list)
    cost: Decimal | None = None
    """Its calls at plain input/output prices with their recorded input."""
    cost_as_subagent: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "intent": self.intent, "calls": len(self.span_ids), "span_ids": self.span_ids,
                "tools": self.tools, "input_tokens": self.input_tokens, "context_tokens": self.context_tokens,
                "sections": self.sections, "uses_results_of": self.uses_results_of,
                "cost": None if self.cost is None else str(self.cost),
                "cost_as_subagent": None if self.cost_as_subagent is None else str(self.cost_as_subagent)}


@dataclass
class RouteCandidate:
    span_id: str
    model: str
    cheaper: str
    reason: str
    saving: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "model": self.model, "cheaper": self.cheaper, "reason": self.reason,
                "saving": None if self.saving is None else str(self.saving)}


@dataclass
class DecompositionReport:
    """Everything :func:`decompose` found, all ``estimated``."""

    run_id: str
    subtasks: list[Subtask] = field(default_factory=list)
    graph: "nx.DiGraph | None" = None
    """The subtask DAG (``networkx.DiGraph``), once built."""
    waves: list[list[int]] = field(default_factory=list)
    """Subtasks that could run in parallel, wave by wave (topological generations of the DAG)."""
    routable: list[RouteCandidate] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    recommendation: str = ""
    evidence: str = "estimated"
    currency: str = "USD"

    @property
    def context_saving(self) -> Decimal | None:
        vals = [(s.cost or Decimal(0)) - (s.cost_as_subagent or Decimal(0)) for s in self.subtasks
                if s.cost is not None and s.cost_as_subagent is not None]
        return sum(vals, Decimal(0)) if vals else None

    @property
    def routing_saving(self) -> Decimal | None:
        vals = [r.saving for r in self.routable if r.saving is not None]
        return sum(vals, Decimal(0)) if vals else None

    @property
    def saving(self) -> Decimal | None:
        """Estimated total saving (context scoping + routing), at plain prices."""
        parts = [v for v in (self.context_saving, self.routing_saving) if v is not None]
        return sum(parts, Decimal(0)) if parts else None

    def __bool__(self) -> bool:
        return len(self.subtasks) > 1 or bool(self.routable)

    def _edges(self) -> int:
        return 0 if self.graph is None else int(self.graph.number_of_edges())

    def _dependencies(self) -> list[list[Any]]:
        g = self.graph
        return [] if g is None else [[a, b, g.edges[a, b].get("facts", [])[:5]] for a, b in g.edges]

    def summary(self) -> str:
        par = sum(1 for w in self.waves if len(w) > 1)
        s = (f"{len(self.subtasks)} subtasks, {self._edges()} data dependencies, "
             f"{par} wave(s) with independent subtasks, {len(self.routable)} mechanical call(s) routable to a "
             f"cheaper model")
        if self.saving is not None:
            s += f"; estimated saving {self.saving:.4f} {self.currency}"
        return s + ". " + self.recommendation

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "evidence": self.evidence, "currency": self.currency,
                "subtasks": [s.to_dict() for s in self.subtasks],
                "dependencies": self._dependencies(),
                "waves": self.waves, "routable": [r.to_dict() for r in self.routable],
                "context_saving": None if self.context_saving is None else str(self.context_saving),
                "routing_saving": None if self.routing_saving is None else str(self.routing_saving),
                "saving": None if self.saving is None else str(self.saving),
                "reasoning": self.reasoning, "recommendation": self.recommendation, "summary": self.summary()}
