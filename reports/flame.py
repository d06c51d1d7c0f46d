"""The token views: icicle (flame) nodes and top-spans table from the roll-up tree, the call-graph layout,
the attribution ledger and the latency timeline."""

from __future__ import annotations

import json
from collections import defaultdict
from decimal import Decimal
from typing import Any

from tokprof.profiler.model import Run, Span
from tokprof.profiler.tree import Node, merge_by_path

FLAME_MIN_SHARE = 0.0005
"""Flame nodes narrower than this share of the total are dropped (invisible anyway)."""
TOP_SPANS = 200
GRAPH_MAX_NODES = 60
CALLS_PER_NODE = 25


def flame(forests: list[list[Node]], index_of: dict[str, int], calls: list[dict[str, Any]],
          multi_root: bool) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Icicle nodes (repeated calls along one path merged, across runs) and the top-spans table, both read
    from the one roll-up tree (:func:`tokprof.profiler.tree.merge_by_path`)."""
    roots = merge_by_path(forests, "all runs" if multi_root else None)
    llm_of: dict[int, list[int]] = {}  # id(node) -> LLM call indices in its subtree
    order = [n for r in roots for _, n in r.walk()]
    for n in reversed(order):
        own = [index_of[s] for s in n.span_ids if s in index_of]
        llm_of[id(n)] = own + [i for c in n.children for i in llm_of[id(c)]]
    total_tokens = sum(r.incl["total_tokens"] for r in roots) or 1
    total_carried = sum(r.carried_total for r in roots) or Decimal(1)

    def visible(n: Node) -> bool:
        return (n.parent is None or n.incl["total_tokens"] / total_tokens >= FLAME_MIN_SHARE
                or n.carried_total / total_carried >= Decimal(str(FLAME_MIN_SHARE))
                or (n.incl["carried_tokens"] + n.incl["output_tokens"]) / total_tokens >= FLAME_MIN_SHARE)

    ids: dict[int, int] = {}
    nodes: list[dict[str, Any]] = []
    # breadth-first by depth, biggest first: parents get ids before their children
    for n in sorted(order, key=lambda n: (n.depth, -n.incl["total_tokens"])):
        if not visible(n) or (n.parent is not None and id(n.parent) not in ids):
            continue
        ids[id(n)] = len(nodes)
        llm = sorted(set(llm_of[id(n)]), key=lambda i: -(calls[i]["in"] + calls[i]["out"]))
        nodes.append(_node_dict(len(nodes), ids.get(id(n.parent)) if n.parent is not None else None, n, llm))
    table: list[dict[str, Any]] = []
    for n in order:
        row = _node_dict(len(table), None, n, [])
        row["flame"] = ids.get(id(n))
        llm = sorted(set(llm_of[id(n)]), key=lambda i: -(calls[i]["in"] + calls[i]["out"]))
        row["call"] = llm[0] if llm else None
        row["path"] = " / ".join(map(str, n.path))  # a loaded span name can be null
        table.append(row)
    table.sort(key=lambda r: (-r["excl_tokens"], -r["tokens"]))
    top = [r for r in table if r["tokens"] or r["ms"] or r["carried_tokens"]][:TOP_SPANS]
    return nodes, top


JS_MAX = 1e300
"""The largest number handed to the report's script. A hostile or broken run's near-1e308 counts would
overflow to ``Infinity`` in the script's sums and widths (JavaScript numbers end at ~1.8e308), and a float
``inf`` is not even JSON; real runs are nowhere near."""

_NODE_SCALARS = ("calls", "ms", "tokens", "excl_tokens", "in", "out", "cached", "excl_in", "excl_out", "cost",
                 "excl_cost", "carried", "excl_carried", "carried_tokens", "excl_carried_tokens", "llm_calls",
                 "unpriced")


def js_number(x: Any) -> int | float:
    """``x`` as a finite number within ``±JS_MAX`` (NaN -> 0): ints stay exact below the bound."""
    try:
        f = float(x)
    except OverflowError:  # an int beyond any float
        return JS_MAX if x > 0 else -JS_MAX
    except (TypeError, ValueError):
        return 0
    if f != f:
        return 0
    if abs(f) > JS_MAX:
        return JS_MAX if f > 0 else -JS_MAX
    return x if isinstance(x, int) else f


def _node_dict(i: int, parent: int | None, n: Node, llm: list[int]) -> dict[str, Any]:
    d = _raw_node_dict(i, parent, n, llm)
    for k in _NODE_SCALARS:
        d[k] = js_number(d[k])
    return d


def _raw_node_dict(i: int, parent: int | None, n: Node, llm: list[int]) -> dict[str, Any]:
    o, t = n.own, n.incl
    return {
        "id": i, "parent": parent, "kind": n.kind, "depth": n.depth,
        "name": display_name(n.name, n.kind, n.parent.name if n.parent is not None else None),
        "calls": n.calls, "ms": round(n.duration_ns / 1e6, 1),
        "tokens": t["total_tokens"], "excl_tokens": o["total_tokens"],
        "in": t["input_tokens"], "out": t["output_tokens"], "cached": t["cache_read_tokens"],
        "excl_in": o["input_tokens"], "excl_out": o["output_tokens"],
        "cost": float(t["cost"]), "excl_cost": float(o["cost"]),
        # carried: input cost of the tokens this node introduced, in every call that re-sent them; the
        # "carried" icicle sizes a box by carried + output cost of its subtree (roots add up to the run cost)
        "carried": float(n.carried_total), "excl_carried": float(o["carried_cost"]),
        "carried_tokens": t["carried_tokens"] + t["output_tokens"], "excl_carried_tokens": o["carried_tokens"],
        "llm_calls": t["llm_calls"], "unpriced": t["unpriced_calls"],
        "calls_idx": llm[:CALLS_PER_NODE],
    }


def _graph_layout(flame: list[dict[str, Any]]) -> dict[str, Any]:
    """A left-to-right tree layout of the biggest flame nodes (and their ancestors), in pixels."""
    if not flame:
        return {"nodes": [], "edges": [], "width": 0, "height": 0}
    by_id = {n["id"]: n for n in flame}
    chosen: set[int] = set()
    for n in sorted(flame, key=lambda n: (-n["carried"], -n["tokens"]))[:GRAPH_MAX_NODES]:
        cur: dict[str, Any] | None = n
        while cur is not None and cur["id"] not in chosen:
            chosen.add(cur["id"])
            cur = by_id.get(cur["parent"]) if cur["parent"] is not None else None
    kids: dict[int | None, list[int]] = defaultdict(list)
    for n in flame:
        if n["id"] in chosen:
            kids[n["parent"]].append(n["id"])
    y_of: dict[int, float] = {}
    counter = [0]

    def place(v: int) -> float:  # tidy tree: leaves in order, parents centred on their children
        ch = kids.get(v, [])
        if not ch:
            y: float = counter[0]
            counter[0] += 1
        else:
            ys = [place(c) for c in ch]
            y = (ys[0] + ys[-1]) / 2
        y_of[v] = y
        return y

    for r in kids.get(None, []):
        place(r)
    # nodes sized by carried cost (who put the tokens there) when the run is priced, else by tokens
    size = "carried" if any(n["carried"] for n in flame) else "tokens"
    max_tokens = max((by_id[v][size] for v in chosen), default=1) or 1
    max_depth = max(by_id[v]["depth"] for v in chosen)
    col, row, pad = 190, 34, 30
    nodes = []
    for v in sorted(chosen):
        n = by_id[v]
        radius = 4 + 18 * (n[size] / max_tokens) ** 0.5
        nodes.append({"id": v, "x": pad + n["depth"] * col, "y": pad + y_of[v] * row, "r": round(radius, 1),
                      "name": n["name"], "kind": n["kind"], "tokens": n["tokens"], "calls": n["calls"],
                      "carried": n["carried"]})
    pos = {n["id"]: n for n in nodes}
    edges = [{"x1": pos[n["parent"]]["x"], "y1": pos[n["parent"]]["y"], "x2": pos[v]["x"], "y2": pos[v]["y"]}
             for v in chosen for n in [by_id[v]] if n["parent"] is not None and n["parent"] in pos]
    return {"nodes": nodes, "edges": edges, "width": pad * 2 + max_depth * col + 160,
            "height": pad * 2 + max(counter[0] - 1, 0) * row}


def _attribution(runs: list[Run], costs: dict[str, dict[str, Decimal | None]]) -> dict[str, list[dict[str, Any]]]:
    by_tag: dict[tuple[str, str], dict[str, Any]] = {}
    by_model: dict[str, dict[str, Any]] = {}

    def bump(d: dict[str, Any], s: Span, c: Decimal | None) -> None:
        u = s.llm.usage  # type: ignore[union-attr]
        d["calls"] += 1
        d["in"] += u.input_tokens
        d["out"] += u.output_tokens
        d["cached"] += u.cache_read_tokens
        if c is None:
            d["unpriced"] += 1
        else:
            d["cost"] += c

    def new(**kw: Any) -> dict[str, Any]:
        return {**kw, "calls": 0, "in": 0, "out": 0, "cached": 0, "cost": Decimal(0), "unpriced": 0}

    for run in runs:
        index = run.by_id()
        rc = costs.get(run.run_id, {})
        for s in run.llm_spans():
            c = rc.get(s.span_id)
            tags = run.span_tags(s, index) or {"(untagged)": ""}
            for k, v in tags.items():
                # a tag value from a file can be a list/dict (unhashable): grouped by its JSON text
                v = v if isinstance(v, (str, int, float, bool)) or v is None else json.dumps(v, default=str)
                bump(by_tag.setdefault((str(k), v), new(key=str(k), value=v)), s, c)
            m = s.llm.model or "unknown"  # type: ignore[union-attr]
            bump(by_model.setdefault(m, new(model=m)), s, c)
    tag_rows = sorted(by_tag.values(), key=lambda d: (d["key"], -d["cost"], -d["in"]))
    model_rows = sorted(by_model.values(), key=lambda d: (-d["cost"], -d["in"]))
    return {"by_tag": tag_rows, "by_model": model_rows}


TIMELINE_MAX_SPANS = 1500
"""Spans drawn on the latency timeline (the longest ones when a run has more)."""


def timeline(runs: list[Run], costs: dict[str, dict[str, Decimal | None]]) -> dict[str, Any]:
    """The costliest run's spans on a time axis (start offset and duration in ms), as trace viewers show."""
    if not runs:
        return {}

    def run_cost(r: Run) -> Decimal:
        return sum((c for c in costs.get(r.run_id, {}).values() if c is not None), Decimal(0))

    run = max(runs, key=lambda r: (run_cost(r), r.duration_ns))
    spans = [(d, s) for d, s in run.walk() if s.end_ns is not None]
    if not spans:
        return {}
    t0 = min(s.start_ns for _, s in spans)
    t1 = max(s.end_ns or s.start_ns for _, s in spans)
    if len(spans) > TIMELINE_MAX_SPANS:
        keep = {id(s) for _, s in sorted(spans, key=lambda ds: -ds[1].duration_ns)[:TIMELINE_MAX_SPANS]}
        spans = [(d, s) for d, s in spans if id(s) in keep]
    index = run.by_id()
    rows = []
    for d, s in spans:
        parent = index.get(s.parent_id) if s.parent_id else None
        rows.append({"name": display_name(s.name, s.kind, parent.name if parent is not None else None),
                     "kind": s.kind, "depth": d, "start": round((s.start_ns - t0) / 1e6, 3),
                     "ms": round(s.duration_ns / 1e6, 3), "status": s.status,
                     "tokens": (s.llm.usage.input_tokens + s.llm.usage.output_tokens) if s.llm else 0})
    return {"run": run.name, "run_id": run.run_id, "total_ms": round((t1 - t0) / 1e6, 3), "spans": rows,
            "dropped": max(0, sum(1 for _ in run.walk()) - len(rows))}


def display_name(name: str, kind: str, parent: str | None) -> str:
    """An LLM span is named by what called it (``resolve_ticket → gpt-4.1``): integrations name it after the
    model, which says nothing the model column does not."""
    name = "" if name is None else str(name)  # a loaded span name can be null or a number
    if kind == "llm" and parent and parent != name:
        return f"{parent} → {name}"
    return name
