"""Parent-id cycles in a loaded or imported run (part of :mod:`tokprof.profiler.integrity`, which re-exports
it).

A parent-id cycle (``a -> b -> a``, or a span that is its own parent) makes every walk up the tree loop
forever (``Run.span_tags``, roll-ups) and a topological sort fail. Files from elsewhere can hold one, so
every loader calls :func:`break_parent_cycles`: the span of each cycle that was found first becomes a root,
and the run's metadata says which parent links were dropped (nothing is silently changed).
"""

from __future__ import annotations

from tokprof.profiler.model import Run, Span

CYCLES_KEY = "parent_cycles_broken"
"""Run metadata: ``[{"span_id": ..., "parent_id": ...}, ...]`` — the parent links removed."""


def break_parent_cycles(run: Run) -> list[dict[str, str]]:
    """Remove one parent link per parent-id cycle (iteratively, O(spans)); return the links removed."""
    by_id = {s.span_id: s for s in run.spans}
    state: dict[str, int] = {}  # 1 = on the current walk, 2 = known to reach a root
    broken: list[dict[str, str]] = []
    for start in run.spans:
        path = []
        cur: Span | None = start
        while cur is not None and state.get(cur.span_id) is None:
            state[cur.span_id] = 1
            path.append(cur)
            parent = by_id.get(cur.parent_id) if cur.parent_id is not None else None
            if parent is not None and state.get(parent.span_id) == 1:
                # the walk came back to itself: cut the link that closes the cycle
                broken.append({"span_id": str(cur.span_id), "parent_id": str(cur.parent_id)})
                cur.parent_id = None
                parent = None
            cur = parent
        for s in path:
            state[s.span_id] = 2
    if broken:
        run.metadata[CYCLES_KEY] = run.metadata.get(CYCLES_KEY, []) + broken if isinstance(
            run.metadata.get(CYCLES_KEY), list) else broken
    return broken
