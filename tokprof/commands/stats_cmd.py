"""`tokprof stats`: usage and spend across every ingested run, grouped and filtered."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any


def register(sub: "argparse._SubParsersAction") -> None:
    from tokprof.fleet.stats import GROUP_HELP

    p = sub.add_parser(
        "stats",
        help="usage and spend across runs, by tag, model, provider, function, tool or time",
        description="Query the fleet ledger (build it with `tokprof ingest`): calls, tokens, cache hit rate "
                    "(sum of cached / sum of input tokens) and cost, grouped by --by and filtered.",
        epilog="--json prints {schema: tokprof.stats/1, by, currency, filters, rows:[{group:{key: value}, calls, "
               "runs, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, "
               "total_tokens, cache_hit_rate, cost, unpriced_calls, counted_calls, simulated_cost_calls}], total}; cost is a decimal "
               "string or null.",
    )
    p.add_argument("--by", action="append", default=[], metavar="KEY",
                   help=f"group by (repeatable or comma-separated): {GROUP_HELP}")
    p.add_argument("--since", help="first day included (YYYY-MM-DD, or 7d / 2w ago)")
    p.add_argument("--until", help="last day included (YYYY-MM-DD)")
    p.add_argument("--tag", action="append", default=[], metavar="K=V", help="only calls with this tag (repeatable)")
    p.add_argument("--model", action="append", default=[], help="only these models (repeatable)")
    p.add_argument("--currency", default="USD", choices=["USD", "CNY"])
    p.add_argument("--order", default="cost", choices=["cost", "tokens", "calls", "key"])
    p.add_argument("--limit", type=int, help="at most this many rows")
    p.add_argument("--dir", help="runs folder holding ledger.duckdb (default .tokprof/runs or $TOKPROF_DIR)")
    p.add_argument("--ledger", metavar="FILE", help="ledger file (default <runs folder>/ledger.duckdb)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON")
    fmt.add_argument("--csv", action="store_true", help="print CSV (one row per group, then a total row)")
    p.set_defaults(func=stats_command)


def query_from_args(args: argparse.Namespace) -> Any:
    from tokprof.fleet.stats import Query, StatsError, parse_by, parse_date, parse_tags

    if args.limit is not None and not 0 <= args.limit < 2**62:  # DuckDB's LIMIT is a BIGINT, never negative
        raise StatsError(f"--limit {args.limit}: expected a number of rows, 0 or more")
    return Query(by=parse_by(args.by), since=parse_date(args.since, "--since"), until=parse_date(args.until, "--until"),
                 tags=parse_tags(args.tag), models=list(args.model), currency=args.currency, order=args.order,
                 limit=args.limit)


def stats_command(args: argparse.Namespace) -> int:
    from tokprof.fleet.ledger import ledger_path, opened
    from tokprof.fleet.stats import run_stats, to_json_ready

    q = query_from_args(args)
    with opened(args.ledger or ledger_path(args.dir), read_only=True) as con:
        doc = run_stats(con, q)
    if args.json:
        print(json.dumps(to_json_ready(doc), indent=2, default=str))
    elif args.csv:
        write_csv(doc, sys.stdout)
    else:
        render(doc)
    return 0


def write_csv(doc: dict[str, Any], out: Any) -> None:
    j = __import__("tokprof.fleet.stats", fromlist=["to_json_ready"]).to_json_ready(doc)
    metrics = ["calls", "runs", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
               "reasoning_tokens", "total_tokens", "cache_hit_rate", "cost", "unpriced_calls", "counted_calls",
               "simulated_cost_calls"]
    w = csv.writer(out)
    w.writerow([*doc["by"], *metrics, "currency"])
    for r in j["rows"]:
        w.writerow([*(csv_text(r["group"][k]) for k in doc["by"]), *(r[m] for m in metrics), doc["currency"]])
    w.writerow([*(["(total)"] + [""] * (len(doc["by"]) - 1) if doc["by"] else []),
                *(j["total"][m] for m in metrics), doc["currency"]])


def csv_text(value: Any) -> Any:
    """A group cell (a tag value, model or tool name: the agent's data) safe to open in a spreadsheet: no
    control characters, and a leading ``= + - @`` (or tab/CR) quoted with ``'`` so it is text, never a
    formula (OWASP, "CSV Injection": https://owasp.org/www-community/attacks/CSV_Injection)."""
    from tokprof.console_safe import clean

    if not isinstance(value, str):
        return value
    text = clean(value).replace("\n", " ")
    return "'" + text if value[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _tok(n: int) -> str:
    """Tokens in at most 6 characters: 1,234 / 12.3k / 4.56M / 1.23B."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div * 10 or (unit != "k" and n >= div):
            v = n / div
            return f"{v:.3g}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{n:,}"


def render(doc: dict[str, Any]) -> None:
    """A table that fits 80 columns: group keys are cut short, numbers never are."""
    from rich.table import Table

    from tokprof.console_safe import SafeConsole, escape
    from tokprof.reports.html import money

    cur = doc["currency"]
    console = SafeConsole(width=min(SafeConsole().width, 100) if sys.stdout.isatty() else 80)
    t = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    width = max(12, 40 // max(1, len(doc["by"])))
    for k in doc["by"] or ["(all calls)"]:
        t.add_column(k, overflow="ellipsis", no_wrap=True, max_width=width)
    for col in ("calls", "runs", "input", "output", "cached", "cost"):
        t.add_column(col, justify="right", no_wrap=True)

    def cells(r: dict[str, Any]) -> list[str]:
        rate = "—" if r["cache_hit_rate"] is None else f"{r['cache_hit_rate']:.1%}"
        cost = money(r["cost"], cur) + ("*" if r["unpriced_calls"] else "") + ("†" if r["simulated_cost_calls"] else "")
        return [f"{r['calls']:,}", f"{r['runs']:,}", _tok(r["input_tokens"]), _tok(r["output_tokens"]), rate, cost]

    for r in doc["rows"]:
        t.add_row(*(escape(r["group"][k]) for k in doc["by"]), *cells(r))  # the agent's names: text, not markup
    total = doc["total"]
    t.add_row(*(["total"] + [""] * (len(doc["by"]) - 1) if doc["by"] else ["total"]), *cells(total),
              style="bold", end_section=True)
    console.print(t)
    if total["simulated_cost_calls"]:
        console.print(f"† {total['simulated_cost_calls']:,} calls are priced as paid with the provider's automatic "
                      "prompt caching simulated (their traces recorded no cache tokens); 'cached' counts recorded "
                      "cache tokens only", highlight=False)
    if total["unpriced_calls"]:
        console.print(f"* {total['unpriced_calls']:,} calls have no price (unknown model); their cost is not in "
                      "the sums", highlight=False)
