"""Which call of one run corresponds to which call of another (``tokprof compare``, fidelity, the report's
before/after drill-down).

Span ids are only comparable when one run was derived from the other (a pass copies the run and keeps
its ids: same ``run_id``, or ``metadata["optimized_from"]``). Two runs recorded separately number their
spans from 1 in each process, so equal ids mean nothing there (issue #21 point 14: two identical runs
scored fidelity 0.0). Those are paired by call order within the same call path: the n-th LLM call under
``agent > plan > chat`` in A with the n-th one under the same path in B; calls whose path has no
counterpart are then paired by overall order among the leftovers.
"""

from __future__ import annotations

from collections import defaultdict

from tokprof.profiler.model import Run, Span


def derived(before: Run, after: Run) -> bool:
    """Whether ``after`` is ``before`` rewritten (ids carried over), not a separate recording."""
    return after.run_id == before.run_id or (after.metadata or {}).get("optimized_from") == before.run_id


def call_path(span: Span, by_id: dict[str, Span]) -> tuple[str, ...]:
    """Names from the root down to ``span`` (bounded and cycle-safe)."""
    names = [span.name]
    seen = {span.span_id}
    cur = by_id.get(span.parent_id) if span.parent_id is not None else None
    while cur is not None and cur.span_id not in seen and len(names) < 256:
        seen.add(cur.span_id)
        names.append(cur.name)
        cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
    return tuple(reversed(names))


def pair_calls(before: Run, after: Run) -> list[tuple[Span, Span]]:
    """(call of ``before``, its counterpart in ``after``), in ``before``'s call order."""
    b_calls, a_calls = before.llm_spans(), after.llm_spans()
    if derived(before, after):
        a_by_id = {s.span_id: s for s in a_calls}
        pairs = [(s, a_by_id[s.span_id]) for s in b_calls if s.span_id in a_by_id]
        if pairs:
            return pairs
    b_ids, a_ids = before.by_id(), after.by_id()
    queues: dict[tuple[str, ...], list[Span]] = defaultdict(list)
    for s in a_calls:
        queues[call_path(s, a_ids)].append(s)
    for q in queues.values():
        q.reverse()  # pop() from the end = first in call order
    matched: dict[str, Span] = {}
    used: set[int] = set()
    for s in b_calls:
        pending = queues.get(call_path(s, b_ids))
        if pending:
            a = pending.pop()
            matched[s.span_id] = a
            used.add(id(a))
    rest_a = [a for a in a_calls if id(a) not in used]
    rest_b = [s for s in b_calls if s.span_id not in matched]
    for s, a in zip(rest_b, rest_a):
        matched[s.span_id] = a
    return [(s, matched[s.span_id]) for s in b_calls if s.span_id in matched]
