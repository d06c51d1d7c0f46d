"""Prices of server-side tools billed per use (Anthropic web search, ...), per provider and request kind.

A server tool runs on the provider's side and is billed per request on top of the tokens its results add
to the prompt. The provider reports the count in its usage block (Anthropic
``usage.server_tool_use.web_search_requests``); tokprof keeps it in ``Usage.tool_requests`` (kind -> count).
The prices are the ``tool_requests`` rows of ``data/prices.json`` (money per 1,000 requests, each row with
its source and ``estimated`` flag like the token rows). They are read here and priced by the one cost
function (:func:`tokprof.profiler.providers.cost.split_cost`).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources

__all__ = ["ToolPrice", "tool_price", "tool_prices"]

THOUSAND = Decimal(1000)


@dataclass(frozen=True)
class ToolPrice:
    """The price of one server-tool request kind at one provider."""

    provider: str
    kind: str
    currency: str
    per_1000: Decimal
    estimated: bool
    source: str = ""
    note: str = ""

    @property
    def per_request(self) -> Decimal:
        return self.per_1000 / THOUSAND


_lock = threading.Lock()
_rows: dict[tuple[str, str], ToolPrice] | None = None


def _load() -> dict[tuple[str, str], ToolPrice]:
    text = resources.files("tokprof.profiler.providers").joinpath("data", "prices.json").read_text(encoding="utf-8")
    rows: dict[tuple[str, str], ToolPrice] = {}
    for row in json.loads(text).get("tool_requests", []):
        p = ToolPrice(provider=str(row["provider"]).lower(), kind=str(row["kind"]), currency=str(row["currency"]).upper(),
                      per_1000=Decimal(str(row["per_1000"])), estimated=bool(row.get("estimated", True)),
                      source=str(row.get("source", "")), note=str(row.get("note", "")))
        rows[(p.provider, p.kind)] = p
    return rows


def tool_prices() -> dict[tuple[str, str], ToolPrice]:
    """Every per-request row, keyed by (provider, kind)."""
    global _rows
    if _rows is None:
        with _lock:
            if _rows is None:
                _rows = _load()
    return _rows


def tool_price(provider: str | None, kind: str) -> ToolPrice | None:
    """The price of one ``kind`` request at ``provider``; ``None`` when the table has none (unknown)."""
    if not provider:
        return None
    return tool_prices().get((provider.lower(), kind))
