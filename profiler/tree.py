"""The one roll-up of a run: a typed tree of spans with own, inclusive and carried tokens and cost.

Like pyinstrument's ``Frame``: each :class:`Node` holds what the span did itself (``own``), what it and its
descendants did (``incl``, a time profiler's total time) and its ``carried`` cost (input cost of the tokens
it introduced into the conversation, paid in every call that re-sent them; see
:mod:`tokprof.profiler.carried`). Computed once, then read by the networkx export
(:mod:`tokprof.profiler.graph`), the console tree and the report's icicle and call graph.

:func:`span_tree` gives one node per span; :func:`merge_by_path` merges repeated calls of the same function
along the same call path (root name / ... / name), across runs, as a profiler's aggregated view does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterator, Mapping, Sequence

from tokprof.profiler.model import Run, Span

METRICS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "llm_calls",
    "cost",
    "unpriced_calls",
)
"""Counted per node; ``cost`` is ``Decimal`` in the report's currency, unknown costs counted in
``unpriced_calls``. ``carried_cost``/``carried_tokens``/``output_cost`` are kept beside them."""

CARRIED: tuple[str, ...] = ("carried_cost", "carried_tokens", "output_cost")

CostOf = Callable[[Span], "Decimal | None"]


def _zero() -> dict[str, Any]:
    m: dict[str, Any] = {k: 0 for k in (*METRICS, *CARRIED)}
    m["cost"] = m["carried_cost"] = m["output_cost"] = Decimal(0)
    return m


@dataclass
class Node:
    """One span (or, merged, every span along one call path)."""

    name: str
    kind: str
    path: tuple[str, ...]
    span_ids: list[str] = field(default_factory=list)
    calls: int = 0
    duration_ns: int = 0
    own: dict[str, Any] = field(default_factory=_zero)
    incl: dict[str, Any] = field(default_factory=_zero)
    children: list["Node"] = field(default_factory=list)
    parent: "Node | None" = field(default=None, repr=False)
    model: str | None = None
    status: str = "ok"

    @property
    def depth(self) -> int:
        return len(self.path) - 1

    @property
    def carried_total(self) -> Decimal:
        """The "carried" view's box size: input cost this subtree introduced plus the output it produced
        (the roots' boxes add up to the run's cost)."""
        return self.incl["carried_cost"] + self.incl["output_cost"]

    def walk(self, depth: int = 0) -> Iterator[tuple[int, "Node"]]:
        """Depth-first, parents before children."""
        stack: list[tuple[int, Node]] = [(depth, self)]
        while stack:
            d, n = stack.pop()
            yield d, n
            stack.extend((d + 1, c) for c in reversed(n.children))


def own_metrics(span: Span, cost: Decimal | None, output_cost: Decimal | None = None) -> dict[str, Any]:
    """A span's own numbers: its LLM call's usage and cost (zero for other spans)."""
    m = _zero()
    if span.llm is not None:
        u = span.llm.usage
        m.update(input_tokens=u.input_tokens, output_tokens=u.output_tokens, cache_read_tokens=u.cache_read_tokens,
                 cache_write_tokens=u.cache_write_tokens, reasoning_tokens=u.reasoning_tokens,
                 total_tokens=u.input_tokens + u.output_tokens, llm_calls=1)
        if cost is None:
            m["unpriced_calls"] = 1
        else:
            m["cost"] = cost
            m["output_cost"] = output_cost if output_cost is not None else Decimal(0)
    return m


def _default_cost(span: Span) -> Decimal | None:
    from tokprof.profiler.accounting import span_cost

    c = span_cost(span)
    return c.amount if c is not None else None


def _roll_up(roots: Sequence[Node]) -> None:
    """Inclusive values, bottom-up (iterative: deep recursive agents must not hit the recursion limit)."""
    order = [n for r in roots for _, n in r.walk()]
    for n in order:
        n.incl = dict(n.own)
    for n in reversed(order):
        if n.parent is not None:
            for k, v in n.incl.items():
                n.parent.incl[k] = n.parent.incl[k] + v


def span_tree(run: Run, cost_of: CostOf | None = None, *, output_cost_of: CostOf | None = None,
              carried: Mapping[str, Decimal] | None = None,
              carried_tokens: Mapping[str, int] | None = None) -> list[Node]:
    """One node per span, rooted like the run (a span whose parent is missing becomes a root)."""
    cost_of = cost_of or _default_cost
    carried = carried or {}
    carried_tokens = carried_tokens or {}
    kids = run.children()
    nodes: dict[str, Node] = {}
    roots: list[Node] = []
    for _, span in run.walk(kids):
        parent = nodes.get(span.parent_id) if span.parent_id is not None else None
        path = (parent.path if parent is not None else ()) + (span.name,)
        cost = cost_of(span) if span.llm is not None else None
        own = own_metrics(span, cost, output_cost_of(span) if (output_cost_of and span.llm) else None)
        own["carried_cost"] = carried.get(span.span_id, Decimal(0))
        own["carried_tokens"] = carried_tokens.get(span.span_id, 0)
        n = Node(span.name, span.kind, path, [span.span_id], 1, span.duration_ns, own, parent=parent,
                 model=span.llm.model if span.llm is not None else None, status=span.status)
        nodes[span.span_id] = n
        (parent.children if parent is not None else roots).append(n)
    _roll_up(roots)
    return roots


def merge_by_path(forests: Sequence[Sequence[Node]], root_name: str | None = None) -> list[Node]:
    """Merge nodes that share a call path (across runs too). With ``root_name``, all roots hang under one
    synthetic root of that name (several runs, or a run with several roots)."""
    by_path: dict[tuple[str, ...], Node] = {}
    out: list[Node] = []
    top: Node | None = None
    if root_name is not None:
        top = by_path[(root_name,)] = Node(root_name, "agent", (root_name,))
        out.append(top)
    for roots in forests:
        if top is not None:
            top.calls += 1
            top.duration_ns += sum(r.duration_ns for r in roots)
        for r in roots:
            for _, n in r.walk():
                path = ((root_name,) if root_name is not None else ()) + n.path
                m = by_path.get(path)
                if m is None:
                    parent = by_path.get(path[:-1]) if len(path) > 1 else None
                    m = by_path[path] = Node(n.name, n.kind, path, parent=parent, model=n.model)
                    (parent.children if parent is not None else out).append(m)
                m.calls += 1
                m.duration_ns += n.duration_ns
                m.span_ids.extend(n.span_ids)
                if n.status != "ok":
                    m.status = n.status
                for k, v in n.own.items():
                    m.own[k] = m.own[k] + v
    _roll_up(out)
    return out


def find(roots: Sequence[Node], pred: Callable[[Node], bool]) -> Iterator[Node]:
    for r in roots:
        for _, n in r.walk():
            if pred(n):
                yield n
