"""`tokprof models [PATTERN] [--json]`: what tokprof knows about each model — provider, tokenizer, prices in each
currency the provider lists, tiers, cache rule (with its confidence), source URL and effective date, and whether
each price row was confirmed on the provider's own page (``estimated``; ``confirmed``: when and where)."""

from __future__ import annotations

import argparse
import fnmatch
import json
from typing import Any


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("models", help="list the models tokprof can price and count",
                       description="List known models with provider, tokenizer, prices per currency, tiers, "
                                   "cache rule, source URL and date. PATTERN is a glob or a substring; a name "
                                   "seen in traffic (openai/gpt-4.1-2025-04-14, an ep-… alias) is resolved first.")
    p.add_argument("pattern", nargs="?", default=None, help="glob or substring of model names (default: all)")
    p.add_argument("--json", action="store_true", help="print the models as JSON")
    p.set_defaults(func=models_command)


def model_rows(pattern: str | None = None) -> list[dict[str, Any]]:
    """One JSON-ready row per known model matching ``pattern`` (prices: one entry per list currency)."""
    from tokprof.profiler.providers.cache_rules import cache_rule
    from tokprof.profiler.providers.prices import all_prices, native_prices, resolve_model
    from tokprof.profiler.providers.tokenizers import tokenizer_for

    resolved = resolve_model(pattern) if pattern else None
    rows = []
    for p in all_prices():
        if pattern and p.model != resolved and not _matches(p, pattern.lower()):
            continue
        tok = tokenizer_for(p.model)
        rule = cache_rule(p.provider, p.model)
        rows.append({
            "model": p.model, "provider": p.provider, "aliases": list(p.aliases),
            "tokenizer": {"encoding": tok.encoding, "exact": tok.exact, "approximation": tok.approximation},
            # every price row says whether it is confirmed on the provider's page (estimated: false + confirmed)
            "prices": {cur: {**row.to_dict(), "estimated": row.estimated}
                       for cur, row in sorted(native_prices(p.model).items())},
            "cache_rule": rule.describe() if rule.caches else {"mode": "none", "provider": rule.provider},
        })
    return rows


def _matches(p: Any, pattern: str) -> bool:
    names = [p.model, *p.aliases, p.provider]
    if any(ch in pattern for ch in "*?["):
        return any(fnmatch.fnmatchcase(n, pattern) for n in names)
    return any(pattern in n for n in names)


def models_command(args: argparse.Namespace) -> int:
    from tokprof.profiler.providers.prices import suggestions

    rows = model_rows(args.pattern)
    if args.json:
        print(json.dumps({"models": rows}, indent=2, ensure_ascii=False))
        return 0 if rows else 1
    if not rows:
        close = suggestions(args.pattern or "")
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        print(f"tokprof: no known model matches {args.pattern!r}{hint}")
        return 1
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} models (per 1M tokens: input / output / cache read / cache write 5m / 1h)")
    for col in ("model", "provider", "tokenizer", "prices", "tiers", "cache rule", "source, date"):
        table.add_column(col)
    for r in rows:
        prices, tiers, sources = [], [], []
        for cur, d in r["prices"].items():
            cells = [d.get(k, "-") for k in ("input", "output", "cache_read", "cache_write", "cache_write_1h")]
            prices.append(f"{cur} {' / '.join(cells)}" + (" (estimated)" if d.get("estimated") else ""))
            for t in d.get("tiers", []):
                cond = f">{t['above']:,} in" + (f", >{t['output_above']} out" if "output_above" in t else "")
                tiers.append(f"{cur} {cond}: {t['input']} / {t['output']}")
            seen = f", seen {d['confirmed'].split()[0]}" if d.get("confirmed") and not d["estimated"] else ""
            sources.append(f"{d['source']} {d['effective_date']}{seen}")
        tok = r["tokenizer"]
        rule = r["cache_rule"]
        rule_text = "none" if rule["mode"] == "none" else (
            f"{rule['mode']}, min {rule['min_tokens']:,}, read x{rule['read_multiplier']} ({rule['confidence']})")
        table.add_row(r["model"], r["provider"], f"{tok['encoding']}{'' if tok['exact'] else ' (estimate)'}",
                      "\n".join(prices), "\n".join(tiers) or "-", rule_text, "\n".join(sources))
    Console(width=200).print(table)
    return 0
