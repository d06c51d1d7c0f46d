"""Console renderers (rich): the span tree of ``tokprof show`` and the report summary of ``tokprof report``.

Tables fit 80 columns: numbers are compact (``24.6k``, ``$0.0123``) and only the span-name column gives way
(ellipsis), never a number. The tree shows the "carried" view by default (what the tokens a span introduced
cost in every call that re-sent them) or the "own" view (a time profiler's self/total).
"""

from __future__ import annotations

import io
from decimal import Decimal
from typing import Any

from tokprof.profiler.model import Run
from tokprof.profiler.policy import internal_error
from tokprof.profiler.tree import Node, span_tree
from tokprof.reports.costs import run_carried, run_costs
from tokprof.reports.format import compact, money
from tokprof.reports.renderers import Renderer, register
from tokprof.reports.types import ReportModel

VIEWS = ("carried", "own")
CONSOLE_WIDTH = 80


def _label(n: Node) -> str:
    """LLM spans are named by their caller (``resolve_ticket → gpt-4.1``): the model is the span's name."""
    if n.kind == "llm" and n.parent is not None and n.parent.name != n.name:
        return f"{n.parent.name} → {n.name}"
    return n.name


def run_tree(run: Run, currency: str = "USD") -> list[Node]:
    """The run's roll-up tree with billed costs and carried cost (reports.costs), ``currency`` throughout."""
    costs = run_costs(run, currency)
    try:
        carried = run_carried(run, costs)
        cc, ct = carried.cost, carried.tokens
    except Exception as exc:  # noqa: BLE001 - an attribution bug must not lose the tree
        internal_error("tokprof.reports.console.carried", exc)
        cc, ct = {}, {}
    return span_tree(run, lambda s: costs.cost.get(s.span_id), output_cost_of=lambda s: costs.output_cost.get(s.span_id),
                     carried=cc, carried_tokens=ct)


def tree_rows(run: Run, max_depth: int | None = None, min_tokens: int = 0,
              currency: str = "USD") -> list[dict[str, Any]]:
    """The call tree as rows (depth-first), each with inclusive, exclusive and carried tokens and cost."""
    rows = []
    for root in run_tree(run, currency):
        for depth, n in root.walk():
            if max_depth is not None and depth > max_depth:
                continue
            if n.incl["total_tokens"] < min_tokens and depth > 0:
                continue
            i, e = n.incl, n.own
            rows.append({
                "span_id": n.span_ids[0], "parent_id": n.parent.span_ids[0] if n.parent else None, "depth": depth,
                "name": n.name, "label": _label(n), "kind": n.kind, "status": n.status, "model": n.model,
                "duration_ms": round(n.duration_ns / 1e6, 3),
                "incl": {"input": i["input_tokens"], "output": i["output_tokens"],
                         "cached": i["cache_read_tokens"], "cost": str(i["cost"])},
                "excl": {"input": e["input_tokens"], "output": e["output_tokens"],
                         "cached": e["cache_read_tokens"], "cost": str(e["cost"])},
                # carried: input cost of the tokens this span introduced, in all calls that re-sent them
                "carried": {"cost": str(e["carried_cost"]), "tokens": e["carried_tokens"],
                            "incl_cost": str(n.carried_total)},
            })
    return rows


def _m(x: str | Decimal | None, currency: str) -> str:
    if x is None:
        return "—"
    d = Decimal(str(x))
    return "" if d == 0 else money(d, currency)


def _table(console: Any, title: str | None = None) -> Any:
    from rich.table import Table

    return Table(show_header=True, header_style="bold", box=None, pad_edge=False, title=title,
                 title_justify="left", title_style="bold", collapse_padding=True)


def _num_col(t: Any, name: str) -> None:
    t.add_column(name, justify="right", no_wrap=True, overflow="fold")


def render_tree(run: Run, max_depth: int | None = None, min_tokens: int = 0, currency: str = "USD",
                console: Any = None, view: str = "carried") -> None:
    """The span tree; ``view`` ``carried`` (default) or ``own``."""
    from rich.console import Console

    console = console or Console()
    console.print(str(run.summary(currency=currency, top=0)))
    rows: list[tuple[str, ...]] = []
    for r in tree_rows(run, max_depth, min_tokens, currency):
        label = "  " * r["depth"] + str(r["label"]) + (f" [dim]{r['kind']}[/dim]" if r["kind"] != "llm" else "")
        if r["status"] == "error":
            label += " [red]error[/red]"
        i, e, c = r["incl"], r["excl"], r["carried"]
        tokens = compact(i["input"] + i["output"])
        if view == "own":
            rows.append((label, tokens, compact(i["cached"]) if i["cached"] else "", _m(i["cost"], currency),
                         _m(e["cost"], currency), f"{r['duration_ms']:,.0f}"))
        else:
            rows.append((label, tokens, _m(c["cost"], currency), _m(c["incl_cost"], currency),
                         _m(e["cost"], currency), f"{r['duration_ms']:,.0f}"))
    cols: tuple[str, ...] = ("tokens", "cached", "cost", "own cost", "ms") if view == "own" else \
        ("tokens", "carried", "incl.", "own cost", "ms")
    if int(getattr(console, "width", 80) or 80) < 100:  # narrow terminal: drop the time column first
        cols, rows = cols[:-1], [row[:-1] for row in rows]
    # numbers are never cut: the span names give way (ellipsis) when the terminal is narrow
    widths = [max([len(c)] + [len(row[k]) for row in rows]) for k, c in enumerate(cols, start=1)]
    span_width = max(16, int(getattr(console, "width", 80) or 80) - sum(widths) - len(widths) - 1)
    t = _table(console)
    t.add_column("span", no_wrap=True, overflow="ellipsis", min_width=16, max_width=span_width)
    for c, width in zip(cols, widths):
        t.add_column(c, justify="right", no_wrap=True, min_width=width)
    for row in rows:
        t.add_row(*row)
    console.print(t)
    if view != "own":
        console.print("[dim]carried: what the tokens a span put into the conversation cost in every call that "
                      "re-sent them; incl.: carried + output of its subtree. `--view own` for self/total.[/dim]")


# ---- report renderers (fixes, headline, waterfall, top spans) ---------------------------------------
def render_fixes(model: ReportModel, console: Any = None) -> None:
    """The (at most three) fixes the report leads with."""
    from rich.console import Console

    console = console or Console()
    if not model.fixes:
        console.print("[dim]top fixes: none found[/dim]")
        return
    console.print("[bold]Top fixes[/bold] (by money at stake)")
    for k, f in enumerate(model.fixes, 1):
        rng = money(f.saving, model.currency) if f.low is None or f.low == f.saving else \
            f"{money(f.low, model.currency)}–{money(f.saving, model.currency)}"
        console.print(f"{k}. {f.what}", markup=False)
        console.print(f"   where: {f.where}", markup=False, style="dim")
        console.print(f"   saves: {rng} [{f.evidence}] · risk: {f.risk}", markup=False, style="dim")


def render_headline(model: ReportModel, console: Any = None) -> None:
    """The headline: tokens and cost before → after, sources, fidelity."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    h = model.headline
    cur = h.currency
    t = Table(show_header=False, box=None, pad_edge=False, title=f"tokprof report · {model.title}",
              title_justify="left", title_style="bold")
    t.add_column(style="dim", no_wrap=True)
    t.add_column(overflow="fold")
    if h.optimized:
        saved = "—" if h.tokens_saved_pct is None else f"{h.tokens_saved_pct:.1f}% saved"
        t.add_row("tokens", f"{h.tokens_before:,} → {h.tokens_after:,}  [green]{saved}[/green]")
        cost_saved = ("unknown" if h.cost_saved is None else
                      f"{money(h.cost_saved, cur)} saved ({h.cost_saved_pct or 0:.1f}%)")
        t.add_row("billed cost", f"{money(h.cost_before, cur)} → {money(h.cost_after, cur)}"
                                 f"  [green]{cost_saved}[/green]")
        if h.cost_saved_range is not None:
            lo, hi = h.cost_saved_range
            t.add_row("saved range", f"{money(lo, cur)}–{money(hi, cur)} over the cache hit-rate scenarios")
        t.add_row("fidelity", "not measured" if h.fidelity is None else f"{100 * h.fidelity:.1f}% reference retention")
    else:
        t.add_row("tokens", f"{h.tokens_before:,} (in {h.input_before:,}, cached {h.cache_read_before:,}, "
                            f"out {h.output_before:,})")
        t.add_row("cost", f"{money(h.cost_before, cur)} ({h.cost_basis})")
        if h.cost_before_range is not None:
            lo, hi = h.cost_before_range
            t.add_row("cost range", f"{money(lo, cur)}–{money(hi, cur)} (cache hit rate not guaranteed)")
    if h.unpriced_calls:
        t.add_row("unpriced", f"[red]{h.unpriced_calls:,} calls without a known price (not counted)[/red]")
    t.add_row("llm calls", f"{h.llm_calls:,} in {h.runs:,} run{'s' if h.runs != 1 else ''}")
    if h.tools_share is not None:
        t.add_row("tool schemas", f"{100 * h.tools_share:.1f}% of input tokens")
    t.add_row("token sources", ", ".join(f"{k} {100 * v:.0f}%" for k, v in h.token_sources.items() if v) or "none")
    console.print(t)


def render_top_spans(model: ReportModel, n: int = 10, console: Any = None) -> None:
    """The top spans by own tokens (repeated calls along one path merged), with their carried cost."""
    from rich.console import Console

    console = console or Console()
    t = _table(console, "top spans (by own tokens)")
    t.add_column("span", min_width=16, no_wrap=True, overflow="ellipsis", ratio=1)
    for col in ("calls", "own tok", "tokens", "cost", "carried", "ms"):
        _num_col(t, col)
    for r in model.top_spans[:n]:
        t.add_row(r["name"], compact(r["calls"]), compact(r["excl_tokens"]), compact(r["tokens"]),
                  money(Decimal(str(r["cost"])), model.currency) if r["llm_calls"] > r["unpriced"] else "—",
                  _m(Decimal(str(r["excl_carried"])), model.currency), compact(r["ms"]))
    console.print(t)


def render_waterfall(model: ReportModel, console: Any = None) -> None:
    """One line per pass: what the whole run costs after it, the saving, its evidence class and risk."""
    from rich.console import Console

    console = console or Console()
    if not model.waterfall:
        console.print(f"[dim]savings waterfall: not available ({model.waterfall_note})[/dim]")
        return
    h = model.headline
    t = _table(console, "savings waterfall")
    t.add_column("pass", min_width=12, overflow="fold")
    for col in ("saved tok", "billed", "saved"):
        _num_col(t, col)
    t.add_column("evidence", no_wrap=True)
    t.add_column("risk", overflow="fold", ratio=1)
    t.add_row("recorded", "", money(h.cost_before, h.currency), "", "", "")
    for s in model.waterfall:
        t.add_row(s.pass_name, compact(s.delta_tokens), money(s.billed_cost, h.currency),
                  money(s.delta_cost, h.currency), s.evidence, s.risk)
    console.print(t)


def render_report(model: ReportModel, top: int = 10, console: Any = None) -> None:
    """Fixes first, then headline, waterfall and top spans: the console version of the HTML report."""
    render_fixes(model, console)
    render_headline(model, console)
    render_waterfall(model, console)
    render_top_spans(model, top, console)


@register
class ConsoleRenderer(Renderer):
    """The report summary as plain text, ``width`` columns (80 by default)."""

    name = "console"
    file_extension = ".txt"

    def __init__(self, width: int = CONSOLE_WIDTH, top: int = 10) -> None:
        self.width = width
        self.top = top

    def render(self, model: ReportModel) -> str:
        from rich.console import Console

        buf = io.StringIO()
        render_report(model, self.top, Console(file=buf, width=self.width, no_color=True, highlight=False))
        return buf.getvalue()
