"""The call graph of a run as a networkx ``DiGraph``: an export of the roll-up tree (:mod:`tokprof.profiler.tree`).

Node attributes (per span): ``span`` (the :class:`Span`), ``name``, ``kind``, ``depth``, ``path`` (names
from the root), ``calls`` (1), ``duration_ns``, and for each metric in :data:`METRICS` (plus the carried
ones, :data:`tokprof.profiler.tree.CARRIED`) an ``excl_<m>`` (the span's own) and ``incl_<m>`` (the span and
all its descendants) value. Costs are ``Decimal``, unknown costs counted in ``unpriced_calls``. The numbers
are the tree's; this module only copies them into networkx for graph algorithms and export.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, Callable, Mapping

from tokprof.profiler.model import Run, Span
from tokprof.profiler.tree import CARRIED, METRICS, Node, merge_by_path, span_tree

if TYPE_CHECKING:
    import networkx as nx
# networkx is imported by the functions that build a graph, not here: it costs ~0.4 s, and recording a run
# (``import tokprof``, ``@trace``, ``profile()``) never builds one.

__all__ = ["METRICS", "call_graph", "top_spans", "aggregate_by_path", "tree_to_graph"]


def _attrs(n: Node) -> dict[str, Any]:
    return {**{f"excl_{k}": n.own[k] for k in (*METRICS, *CARRIED)},
            **{f"incl_{k}": n.incl[k] for k in (*METRICS, *CARRIED)}}


def call_graph(run: Run, cost_of: Callable[[Span], Decimal | None] | None = None, *,
               carried: Mapping[str, Decimal] | None = None) -> nx.DiGraph:
    """The run's call graph. Edges go parent -> child; a span whose parent is missing becomes a root."""
    import networkx as nx
    g = nx.DiGraph(run_id=run.run_id, name=run.name)
    index = run.by_id()
    for root in span_tree(run, cost_of, carried=carried):
        for depth, n in root.walk():
            sid = n.span_ids[0]
            g.add_node(sid, span=index[sid], name=n.name, kind=n.kind, depth=depth, path=n.path, calls=1,
                       duration_ns=n.duration_ns, **_attrs(n))
            if n.parent is not None:
                g.add_edge(n.parent.span_ids[0], sid)
    return g


def top_spans(g: nx.DiGraph, n: int = 10, metric: str = "total_tokens", inclusive: bool = False) -> list[dict[str, Any]]:
    """The ``n`` spans with the most exclusive (or inclusive) ``metric``, as node-attribute dicts."""
    key = f"{'incl' if inclusive else 'excl'}_{metric}"
    rows = [dict(g.nodes[v], span_id=v) for v in g.nodes]
    rows.sort(key=lambda r: r[key], reverse=True)
    return [r for r in rows[:n] if r[key]]


def tree_to_graph(roots: list[Node]) -> nx.DiGraph:
    """Merged (by-path) nodes as a DiGraph keyed by path tuples, with ``agg`` (the :class:`Node`)."""
    import networkx as nx
    out = nx.DiGraph()
    for r in roots:
        for _, n in r.walk():
            out.add_node(n.path, agg=n, name=n.name, kind=n.kind, calls=n.calls, duration_ns=n.duration_ns,
                         **_attrs(n))
            if n.parent is not None:
                out.add_edge(n.parent.path, n.path)
    return out


def aggregate_by_path(g: nx.DiGraph) -> nx.DiGraph:
    """Merge spans that share a call path (root name / ... / name) into one node per path.

    Takes a :func:`call_graph` (whose nodes carry their spans) and returns a DiGraph keyed by path tuples;
    nodes carry ``agg`` (the merged :class:`tokprof.profiler.tree.Node`) plus ``calls``, ``excl_<metric>`` and
    ``incl_<metric>``."""
    import networkx as nx
    roots: list[Node] = []
    nodes: dict[Any, Node] = {}
    for v in nx.topological_sort(g):
        a = g.nodes[v]
        preds = list(g.predecessors(v))
        parent = nodes.get(preds[0]) if preds else None
        own = {k: a[f"excl_{k}"] for k in (*METRICS, *CARRIED)}
        node = Node(a["name"], a["kind"], a["path"], [v], 1, a["duration_ns"], own, parent=parent)
        nodes[v] = node
        (parent.children if parent is not None else roots).append(node)
    return tree_to_graph(merge_by_path([roots]))
