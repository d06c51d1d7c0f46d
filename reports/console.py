"""Console renderers (rich): the span tree of ``tokprof show``."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tokprof.profiler.model import Run
from tokprof.reports.format import money


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


# ---- report renderers (headline, top spans, waterfall) ----------------------------------------------
def _fmt_money(amount: Decimal | None, currency: str) -> str:
    return money(amount, currency)


def render_headline(model: Any, console: Any = None) -> None:
    """The headline of a :class:`tokprof.reports.model.ReportModel`: tokens and cost before → after, sources, fidelity."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    h = model.headline
    t = Table(show_header=False, box=None, pad_edge=False, title=f"tokprof report · {model.title}",
              title_justify="left", title_style="bold")
    t.add_column(style="dim")
    t.add_column()
    if h.optimized:
        saved = "—" if h.tokens_saved_pct is None else f"{h.tokens_saved_pct:.1f}% saved"
        t.add_row("tokens", f"{h.tokens_before:,} → {h.tokens_after:,}  [green]{saved}[/green]")
        cost_saved = ("unknown" if h.cost_saved is None else
                      f"{_fmt_money(h.cost_saved, h.currency)} saved ({h.cost_saved_pct or 0:.1f}%)")
        t.add_row("billed cost", f"{_fmt_money(h.cost_before, h.currency)} → {_fmt_money(h.cost_after, h.currency)}"
                                 f"  [green]{cost_saved}[/green]")
        t.add_row("fidelity", "not measured" if h.fidelity is None else f"{100 * h.fidelity:.1f}% reference retention")
    else:
        t.add_row("tokens", f"{h.tokens_before:,} (in {h.input_before:,}, cached {h.cache_read_before:,}, "
                            f"out {h.output_before:,})")
        t.add_row("cost", f"{_fmt_money(h.cost_before, h.currency)} ({h.cost_basis})")
    if h.unpriced_calls:
        t.add_row("unpriced", f"[red]{h.unpriced_calls:,} calls without a known price (not counted)[/red]")
    t.add_row("llm calls", f"{h.llm_calls:,} in {h.runs:,} run{'s' if h.runs != 1 else ''}")
    t.add_row("token sources", ", ".join(f"{k} {100 * v:.0f}%" for k, v in h.token_sources.items() if v) or "none")
    console.print(t)


def render_top_spans(model: Any, n: int = 10, console: Any = None) -> None:
    """The top spans by own tokens (repeated calls along one path merged)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    t = Table(title="top spans (by own tokens)", title_justify="left", title_style="bold", box=None, pad_edge=False)
    t.add_column("span", min_width=24, overflow="fold")
    for col in ("calls", "own tokens", "in (incl)", "out (incl)", "cached", "cost (incl)", "ms"):
        t.add_column(col, justify="right")
    for r in model.top_spans[:n]:
        t.add_row(f"{r['name']} [dim]{r['kind']}[/dim]", f"{r['calls']:,}", f"{r['excl_tokens']:,}", f"{r['in']:,}",
                  f"{r['out']:,}", f"{r['cached']:,}",
                  _fmt_money(Decimal(str(r['cost'])), model.currency) if r["llm_calls"] > r["unpriced"] else "—",
                  f"{r['ms']:,.1f}")
    console.print(t)


def render_waterfall(model: Any, console: Any = None) -> None:
    """One line per pass: what the whole run costs after it, the saving, its evidence class and risk."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not model.waterfall:
        console.print(f"[dim]savings waterfall: not available ({model.waterfall_note})[/dim]")
        return
    h = model.headline
    t = Table(title="savings waterfall", title_justify="left", title_style="bold", box=None, pad_edge=False)
    t.add_column("pass", min_width=18, overflow="fold")
    for col, just in ( ("tokens", "right"), ("saved", "right"), ("billed cost", "right"),
                      ("saved", "right"), ("evidence", "left"), ("risk", "left")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    t.add_row("recorded", f"{h.tokens_before:,}", "", _fmt_money(h.cost_before, h.currency), "", "", "")
    for s in model.waterfall:
        t.add_row(s.pass_name, f"{s.input_tokens + s.output_tokens:,}", f"{s.delta_tokens:,}",
                  _fmt_money(s.billed_cost, h.currency), _fmt_money(s.delta_cost, h.currency), s.evidence, s.risk)
    console.print(t)


def render_report(model: Any, top: int = 10, console: Any = None) -> None:
    """Headline, waterfall and top spans: the console version of the HTML report."""
    render_headline(model, console)
    render_waterfall(model, console)
    render_top_spans(model, top, console)
