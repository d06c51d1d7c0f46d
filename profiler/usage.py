"""Token usage and cost of one LLM call: :class:`Usage` (every count with its source: ``provider``,
``counted`` or ``estimated``) and :class:`Cost`. Like :mod:`tokprof.profiler.model`, which re-exports
them, it imports nothing else of the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

TokenSource = Literal["provider", "counted", "estimated"]
TOKEN_SOURCES: tuple[str, ...] = ("provider", "counted", "estimated")


USAGE_FIELDS: tuple[str, ...] = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
)


@dataclass(slots=True)
class Usage:
    """Token counts of one LLM call (or a sum of calls), each with where it came from."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_1h_tokens: int = 0
    """The part of ``cache_write_tokens`` written with a 1-hour TTL (Anthropic ``cache_creation.ephemeral_1h_input_tokens``),
    billed at its own rate; ``cache_write_tokens`` stays the total of all cache writes."""
    sources: dict[str, TokenSource] = field(default_factory=dict)
    """field name -> source, for the fields that are known. A field absent here is unknown."""
    tool_requests: dict[str, int] = field(default_factory=dict)
    """Server-side tool requests billed per use, as the provider reported them: kind -> count (e.g.
    ``{"web_search": 2}`` from Anthropic ``usage.server_tool_use.web_search_requests``). Always provider
    truth (nothing is counted locally); priced per request by the one cost function. Empty: none reported."""
    reported_total: int | None = field(default=None, compare=False, repr=False)
    """The ``total_tokens`` the provider's block carried, in tokprof's terms (input + output), kept only while
    the call is checked (``usage_partial.reconcile``: a total below input + output says the block cannot be
    true; a block with nothing but a total is partial). Not a count: never billed, summed or written."""

    @classmethod
    def from_provider(cls, **counts: int | None) -> "Usage":
        """Usage as an API reported it; ``None`` counts stay unknown."""
        u = cls()
        for name, value in counts.items():
            if value is not None:
                u.set(name, int(value), "provider")
        return u

    def set(self, name: str, value: int, source: TokenSource) -> None:
        if name not in USAGE_FIELDS:
            raise ValueError(f"unknown usage field {name!r}; expected one of {USAGE_FIELDS}")
        setattr(self, name, int(value))
        self.sources[name] = source

    def source(self, name: str) -> TokenSource | None:
        return self.sources.get(name)

    def known(self, name: str) -> bool:
        return name in self.sources

    def fill(self, name: str, value: int, source: TokenSource) -> bool:
        """Set ``name`` only if no source has reported it yet (provider-reported usage wins)."""
        if name in self.sources:
            return False
        self.set(name, value, source)
        return True

    @property
    def fresh_input_tokens(self) -> int:
        """Prompt tokens billed at the plain input price (neither read from nor written to a cache)."""
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: "Usage") -> "Usage":
        out = Usage()
        for name in USAGE_FIELDS:
            setattr(out, name, getattr(self, name) + getattr(other, name))
            a, b = self.sources.get(name), other.sources.get(name)
            # A sum is only as good as its weakest part.
            if a is None or b is None:
                src = a or b
            else:
                src = a if TOKEN_SOURCES.index(a) >= TOKEN_SOURCES.index(b) else b
            if src is not None:
                out.sources[name] = src
        for kind in set(self.tool_requests) | set(other.tool_requests):
            out.tool_requests[kind] = self.tool_requests.get(kind, 0) + other.tool_requests.get(kind, 0)
        return out

    def copy(self) -> "Usage":
        return Usage(
            self.input_tokens,
            self.output_tokens,
            self.cache_read_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.cache_write_1h_tokens,  # was dropped (and ``sources`` passed in its place) before mypy ran
            dict(self.sources),
            dict(self.tool_requests),
            self.reported_total,
        )

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {name: getattr(self, name) for name in USAGE_FIELDS if name in self.sources}
        d["sources"] = dict(self.sources)
        if self.tool_requests:  # absent when none: files without server tools stay byte-identical
            d["tool_requests"] = dict(self.tool_requests)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Usage":
        u = cls()
        sources = d.get("sources") or {}
        for name in USAGE_FIELDS:
            if name in d and d[name] is not None:
                u.set(name, int(d[name]), sources.get(name, "provider"))
        requests = d.get("tool_requests")
        if isinstance(requests, dict):
            # only clean counts: a junk entry is dropped (the loader's boundary lists it as repaired)
            u.tool_requests = {str(k): v for k, v in requests.items()
                               if type(v) is int and 0 <= v <= 2 ** 53}
        return u


@dataclass(slots=True, frozen=True)
class Cost:
    """An amount of money. ``amount`` is ``None`` when it is unknown (no price for the model):
    unknown is never shown as zero."""

    amount: Decimal | None
    currency: str = "USD"
    source: Literal["recorded", "computed", "estimated"] = "computed"
    """``recorded``: the trace file carried the cost; ``computed``: tokens x our price table;
    ``estimated``: computed from estimated tokens."""

    @property
    def known(self) -> bool:
        return self.amount is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "amount": None if self.amount is None else str(self.amount),
            "currency": self.currency,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Cost | None":
        if not d:
            return None
        amt = d.get("amount")
        return cls(None if amt is None else Decimal(str(amt)), d.get("currency", "USD"), d.get("source", "computed"))
