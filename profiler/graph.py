"""The call graph of a run, with inclusive and exclusive roll-ups (a time profiler's total and self time).

Node attributes (per span): ``span`` (the :class:`Span`), ``name``, ``kind``, ``depth``, ``path`` (names
from the root), ``calls`` (1), ``duration_ns``, and for each metric in :data:`METRICS` an ``excl_<m>``
(the span's own) and ``incl_<m>`` (the span and all its descendants) value. Costs are ``Decimal`` in the
run's pricing currency, unknown costs counted in ``unpriced_calls``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

import networkx as nx

from tokprof.profiler.accounting import span_cost
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


def _own_metrics(span: Span, cost_of: Callable[[Span], Decimal | None]) -> dict[str, Any]:
    m: dict[str, Any] = {k: 0 for k in METRICS}
    m["cost"] = Decimal(0)
    if span.llm is not None:
        u = span.llm.usage
        m["input_tokens"] = u.input_tokens
        m["output_tokens"] = u.output_tokens
        m["cache_read_tokens"] = u.cache_read_tokens
        m["cache_write_tokens"] = u.cache_write_tokens
        m["reasoning_tokens"] = u.reasoning_tokens
        m["total_tokens"] = u.input_tokens + u.output_tokens
        m["llm_calls"] = 1
        c = cost_of(span)
        if c is None:
            m["unpriced_calls"] = 1
        else:
            m["cost"] = c
    return m


def _default_cost(span: Span) -> Decimal | None:
    cost = span_cost(span)
    return cost.amount if cost is not None else None


def call_graph(run: Run, cost_of: Callable[[Span], Decimal | None] | None = None) -> nx.DiGraph:
    """Build the run's call graph. Edges go parent -> child; a span whose parent is missing becomes a root."""
    cost_of = cost_of or _default_cost
    g = nx.DiGraph(run_id=run.run_id, name=run.name)
    kids = run.children()
    for depth, span in run.walk(kids):
        own = _own_metrics(span, cost_of)
        g.add_node(
            span.span_id,
            span=span,
            name=span.name,
            kind=span.kind,
            depth=depth,
            calls=1,
            duration_ns=span.duration_ns,
            **{f"excl_{k}": v for k, v in own.items()},
        )
    for parent, children in kids.items():
        if parent is None:
            continue
        for c in children:
            g.add_edge(parent, c.span_id)
    # Paths, then inclusive roll-ups bottom-up (reverse topological order of a forest).
    order = list(nx.topological_sort(g))
    for node in order:
        preds = list(g.predecessors(node))
        g.nodes[node]["path"] = (g.nodes[preds[0]]["path"] if preds else ()) + (g.nodes[node]["name"],)
    for node in reversed(order):
        attrs = g.nodes[node]
        for k in METRICS:
            total = attrs[f"excl_{k}"]
            for c in g.successors(node):
                total = total + g.nodes[c][f"incl_{k}"]
            attrs[f"incl_{k}"] = total
    return g


def top_spans(g: nx.DiGraph, n: int = 10, metric: str = "total_tokens", inclusive: bool = False) -> list[dict[str, Any]]:
    """The ``n`` spans with the most exclusive (or inclusive) ``metric``, as node-attribute dicts."""
    key = f"{'incl' if inclusive else 'excl'}_{metric}"
    rows = [dict(g.nodes[v], span_id=v) for v in g.nodes]
    rows.sort(key=lambda r: r[key], reverse=True)
    return [r for r in rows[:n] if r[key]]


@dataclass
class AggregateNode:
    """Repeated calls of the same function along the same path, merged (as a time profiler does)."""

    path: tuple[str, ...]
    name: str
    kind: str
    calls: int = 0
    duration_ns: int = 0
    excl: dict[str, Any] = field(default_factory=dict)
    incl: dict[str, Any] = field(default_factory=dict)
    span_ids: list[str] = field(default_factory=list)


def aggregate_by_path(g: nx.DiGraph) -> nx.DiGraph:
    """Merge spans that share a call path (root name / ... / name) into one node per path.

    Returns a DiGraph keyed by path tuples whose nodes carry ``agg`` (:class:`AggregateNode`) plus the
    flattened ``calls``, ``excl_<metric>`` and ``incl_<metric>`` attributes.
    """
    by_path: dict[tuple[str, ...], AggregateNode] = {}
    for v, a in g.nodes(data=True):
        p = a["path"]
        node = by_path.get(p)
        if node is None:
            node = by_path[p] = AggregateNode(p, a["name"], a["kind"],
                                              excl=defaultdict(int), incl=defaultdict(int))
        node.calls += 1
        node.duration_ns += a["duration_ns"]
        node.span_ids.append(v)
        for k in METRICS:
            node.excl[k] = node.excl[k] + a[f"excl_{k}"]
            # The path key includes every ancestor's name, so a span's subtree belongs to exactly one
            # path node and summing inclusive totals never double counts (even under recursion).
            node.incl[k] = node.incl[k] + a[f"incl_{k}"]
    out = nx.DiGraph()
    for p, node in by_path.items():
        out.add_node(p, agg=node, name=node.name, kind=node.kind, calls=node.calls, duration_ns=node.duration_ns,
                     **{f"excl_{k}": node.excl[k] for k in METRICS}, **{f"incl_{k}": node.incl[k] for k in METRICS})
        if len(p) > 1 and p[:-1] in by_path:
            out.add_edge(p[:-1], p)
    return out
