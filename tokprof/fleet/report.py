"""`tokprof report --fleet`: one self-contained HTML page over the whole ledger.

Spend over time stacked by a chosen tag, spend by model and provider, the cache hit-rate trend, the
functions and tools that cost most across runs, diagnostics aggregated across runs, and budget status.

The page has no script at all: charts are SVG drawn here, tooltips are SVG ``<title>``s. Its
Content-Security-Policy (``default-src 'none'``, inline styles only) therefore forbids every script and
every request; all trace-derived text goes through jinja2's autoescaping.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).parent / "templates"
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
DEFAULT_OUTPUT = "tokprof-fleet.html"
PALETTE = ["#2e5fd8", "#e08a3c", "#4fa87a", "#a78bfa", "#c2410c", "#64748b", "#d4a017", "#7db5e3"]
MAX_SERIES = 6


def _d(x: Any) -> Decimal:
    return Decimal(0) if x is None else Decimal(x)


def build(con: Any, *, by: str = "tag:team", currency: str = "USD", budgets: list[Any] | None = None,
          at: dt.date | None = None, title: str | None = None) -> dict[str, Any]:
    """The fleet report's numbers (JSON-ready but for Decimals) from the ledger."""
    from tokprof.fleet.stats import Query, parse_by, run_stats

    key = parse_by([by])[0]
    total = run_stats(con, Query(currency=currency))["total"]
    first, last = con.execute("SELECT min(day), max(day) FROM calls").fetchall()[0]
    span_days = 0 if first is None else (last - first).days + 1
    grain = "day" if span_days <= 62 else "week" if span_days <= 400 else "month"
    # spend over time, stacked by the chosen key (top series by spend, the rest as "other")
    series_rows = run_stats(con, Query(by=[key], currency=currency))["rows"]
    top = [r["group"][key] for r in series_rows[:MAX_SERIES]]
    time_rows = run_stats(con, Query(by=[grain, key], currency=currency, order="key"))["rows"]
    periods: dict[str, dict[str, Decimal]] = {}
    for r in time_rows:
        name = r["group"][key] if r["group"][key] in top else "other"
        slot = periods.setdefault(str(r["group"][grain]), {})
        slot[name] = slot.get(name, Decimal(0)) + _d(r["cost"])
    names = top + (["other"] if any("other" in v for v in periods.values()) else [])
    # cache hit-rate trend: a ratio of sums per period
    trend = [{"period": str(r["group"][grain]), "rate": r["cache_hit_rate"], "input": r["input_tokens"],
              "cached": r["cache_read_tokens"]}
             for r in run_stats(con, Query(by=[grain], currency=currency, order="key"))["rows"]]
    models = run_stats(con, Query(by=["model", "provider"], currency=currency))["rows"]
    functions = run_stats(con, Query(by=["function"], currency=currency, limit=15))["rows"]
    tool_calls = run_stats(con, Query(by=["tool"], currency=currency, limit=15))["rows"]
    tools = [dict(zip(("tool", "spans", "runs", "errors", "seconds"), r)) for r in con.execute(
        "SELECT name, count(*), count(DISTINCT run_id), count(*) FILTER (WHERE status = 'error'), "
        "sum(duration_ns) / 1e9 FROM spans WHERE kind = 'tool' GROUP BY name ORDER BY 2 DESC LIMIT 15").fetchall()]
    n_runs = con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
    diags = [dict(zip(("kind", "cause", "runs", "findings", "tokens", "cost"), r)) for r in con.execute(
        "SELECT kind, cause, count(DISTINCT run_id), count(*), sum(tokens_at_stake)::BIGINT, sum(cost_usd) "
        "FROM diagnostics GROUP BY kind, cause ORDER BY sum(cost_usd) DESC NULLS LAST").fetchall()]
    diag_runs = con.execute("SELECT count(DISTINCT run_id), sum(cost_usd) FROM diagnostics").fetchall()[0]
    budget_rows: list[dict[str, Any]] = []
    if budgets:
        from tokprof.fleet.budgets import check

        # the periods containing the ledger's last day: the report describes the ledger, not the clock
        budget_rows = check(con, budgets, at or last or dt.datetime.now(dt.timezone.utc).date())
    return {
        "schema": "tokprof.fleet-report/1", "title": title or "Fleet report", "currency": currency,
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "first_day": None if first is None else first.isoformat(), "last_day": None if last is None else last.isoformat(),
        "grain": grain, "by": key, "total": total, "runs": n_runs,
        "spend": {"names": names, "periods": [{"period": p, "values": v} for p, v in sorted(periods.items())]},
        "trend": trend, "models": models, "functions": functions, "tool_calls": tool_calls, "tools": tools,
        "diagnostics": diags, "diagnosed_runs": diag_runs[0], "diagnostics_cost_usd": diag_runs[1],
        "budgets": budget_rows,
    }


# ---- SVG charts ----------------------------------------------------------------------------------
def stacked_bars(spend: dict[str, Any], money: Any, width: int = 1000, height: int = 260) -> dict[str, Any]:
    """Bar geometry for the stacked spend chart (the template draws it)."""
    periods = spend["periods"]
    names = spend["names"]
    totals = [sum(p["values"].values(), Decimal(0)) for p in periods]
    top = max(totals, default=Decimal(0)) or Decimal(1)
    n = max(1, len(periods))
    left, bottom = 60, 24
    plot_w, plot_h = width - left - 10, height - bottom - 10
    bw = plot_w / n
    bars = []
    for i, p in enumerate(periods):
        y = float(height - bottom)
        for j, name in enumerate(names):
            v = p["values"].get(name, Decimal(0))
            h = float(v / top) * plot_h
            if h <= 0:
                continue
            y -= h
            bars.append({"x": round(left + i * bw + bw * 0.1, 2), "y": round(y, 2), "w": round(max(bw * 0.8, 1), 2),
                         "h": round(h, 2), "color": PALETTE[j % len(PALETTE)],
                         "tip": f"{p['period']} · {name}: {money(v)}"})
    ticks = [{"y": round(height - bottom - plot_h * f, 2), "label": money(top * Decimal(str(f)))}
             for f in (0, 0.5, 1)]
    step = max(1, n // 8)
    # len(periods), not n: a ledger with no calls (runs of agent spans only) has no period to label
    labels = [{"x": round(left + i * bw + bw / 2, 2), "text": periods[i]["period"]}
              for i in range(0, len(periods), step)]
    legend = [{"name": name, "color": PALETTE[j % len(PALETTE)]} for j, name in enumerate(names)]
    return {"w": width, "h": height, "bars": bars, "ticks": ticks, "labels": labels, "legend": legend,
            "base": height - bottom, "left": left}


def trend_line(trend: list[dict[str, Any]], width: int = 1000, height: int = 180) -> dict[str, Any]:
    pts = [(i, t["rate"]) for i, t in enumerate(trend) if t["rate"] is not None]
    left, bottom = 60, 24
    plot_w, plot_h = width - left - 40, height - bottom - 10  # room for the last label
    n = max(1, len(trend) - 1)
    coords = [(round(left + i / n * plot_w, 2), round(height - bottom - r * plot_h, 2)) for i, r in pts]
    dots = [{"x": x, "y": y, "tip": f"{trend[i]['period']}: {trend[i]['rate']:.1%} of "
                                     f"{trend[i]['input']:,} input tokens read from cache"}
            for (x, y), (i, _) in zip(coords, pts)]
    step = max(1, len(trend) // 8)
    labels = [{"x": round(left + i / n * plot_w, 2), "text": trend[i]["period"]} for i in range(0, len(trend), step)]
    return {"w": width, "h": height, "points": " ".join(f"{x},{y}" for x, y in coords), "dots": dots,
            "labels": labels, "base": height - bottom, "left": left,
            "ticks": [{"y": round(height - bottom - plot_h * f, 2), "label": f"{f:.0%}"} for f in (0, 0.5, 1)]}


def render_html(doc: dict[str, Any]) -> str:
    from tokprof.reports.html import money as fmt_money

    def money(x: Any) -> str:
        return fmt_money(x, doc["currency"])

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(money=money, amount=fmt_money, num=lambda n: "—" if n is None else f"{n:,}",
                       pct=lambda x: "—" if x is None else f"{x:.1%}")
    return env.get_template("fleet.html.j2").render(
        d=doc, csp=CSP, spend=stacked_bars(doc["spend"], money), trend=trend_line(doc["trend"]))


def to_json(doc: dict[str, Any]) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, Decimal):
            s = format(o, "f")
            return s.rstrip("0").rstrip(".") if "." in s else s
        if isinstance(o, (dt.date, dt.datetime)):
            return o.isoformat()
        return str(o)

    return json.dumps(doc, indent=2, default=default)


def fleet_command(args: argparse.Namespace) -> int:
    """`tokprof report --fleet` (flags from report_cmd: -o, --currency, --json, --title, --dir, --ledger,
    --no-html)."""
    from tokprof.fleet.budgets import load_budgets
    from tokprof.fleet.ledger import ledger_path, opened

    budgets = None
    path = getattr(args, "budgets", None)
    if path is None:
        from tokprof.profiler.store import runs_dir

        for name in ("budgets.toml", "budgets.json"):
            if (runs_dir(args.dir) / name).exists():
                path = runs_dir(args.dir) / name
                break
    if path is not None:
        budgets = load_budgets(path)
    with opened(getattr(args, "ledger", None) or ledger_path(args.dir), read_only=True) as con:
        doc = build(con, by=getattr(args, "fleet_by", None) or "tag:team", currency=args.currency or "USD",
                    budgets=budgets, title=args.title)
    output = args.output
    if output == "tokprof-report.html":
        output = DEFAULT_OUTPUT
    if args.json:
        print(to_json(doc))
    if not args.no_html and not (args.json and args.output == "tokprof-report.html"):
        out = Path(output)
        out.write_text(render_html(doc), encoding="utf-8")
        if not args.json:
            t = doc["total"]
            from tokprof.reports.html import money

            print(f"fleet: {doc['runs']:,} runs, {t['calls']:,} calls, {money(t['cost'], doc['currency'])}, "
                  f"cache hit rate {'—' if t['cache_hit_rate'] is None else format(t['cache_hit_rate'], '.1%')}")
            print(f"fleet report written to {out} ({out.stat().st_size / 1e3:.0f} kB)", file=sys.stderr)
    return 0
