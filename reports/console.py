"""Console renderers (rich): the span tree of ``tokprof show``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from profiler.model import Run


def tree_rows(run: Run, max_depth: int | None = None, min_tokens: int = 0) -> list[dict[str, Any]]:
    """The call tree as rows (depth-first), each with inclusive and exclusive tokens and cost."""
    g = run.graph()
    rows = []
    for depth, s in run.walk():
        if max_depth is not None and depth > max_depth:
            continue
        a = g.nodes[s.span_id]
        if a["incl_total_tokens"] < min_tokens and depth > 0:
            continue
        rows.append({
            "span_id": s.span_id, "parent_id": s.parent_id, "depth": depth, "name": s.name, "kind": s.kind,
            "status": s.status, "model": s.llm.model if s.llm else None,
            "duration_ms": round(s.duration_ns / 1e6, 3),
            "incl": {"input": a["incl_input_tokens"], "output": a["incl_output_tokens"],
                     "cached": a["incl_cache_read_tokens"], "cost": str(a["incl_cost"])},
            "excl": {"input": a["excl_input_tokens"], "output": a["excl_output_tokens"],
                     "cached": a["excl_cache_read_tokens"], "cost": str(a["excl_cost"])},
        })
    return rows


def _money(x: str | Decimal) -> str:
    d = Decimal(x)
    return "" if d == 0 else f"{d:.4f}"


def render_tree(run: Run, max_depth: int | None = None, min_tokens: int = 0, currency: str = "USD",
                console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    console.print(str(run.summary(currency=currency, top=0)))
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("span", no_wrap=True, overflow="ellipsis", min_width=24, ratio=1)
    for col in ("in (incl)", "out (incl)", "cached", "cost (incl)", "in (self)", "out (self)", "cost (self)",
                "ms"):
        table.add_column(col, justify="right")
    for r in tree_rows(run, max_depth, min_tokens):
        label = "  " * r["depth"] + f"{r['name']} [dim]{r['kind']}{' ' + r['model'] if r['model'] else ''}[/dim]"
        if r["status"] == "error":
            label += " [red]error[/red]"
        i, e = r["incl"], r["excl"]
        table.add_row(label, f"{i['input']:,}", f"{i['output']:,}", f"{i['cached']:,}", _money(i["cost"]),
                      f"{e['input']:,}" if e["input"] else "", f"{e['output']:,}" if e["output"] else "",
                      _money(e["cost"]), f"{r['duration_ms']:.1f}")
    console.print(table)
