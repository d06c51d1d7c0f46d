"""One row of the price table: :class:`ModelPrice` (money per 1M tokens of one model, in USD or CNY), its
long-context :class:`PriceTier` s, its :class:`TimeOfDay` rule (peak / off-peak hours), and
:func:`price_from_dict`, which parses and validates a row of a price file.

The table itself (loading, lookups, overrides, currencies) is :mod:`tokprof.profiler.providers.prices`, which
re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

PER_TOKENS = 1_000_000


class PriceFileError(ValueError):
    """A price file (shipped or user override) is malformed."""


@dataclass(frozen=True)
class PriceTier:
    """Prices that replace the base ones for the whole request when its prompt exceeds ``above`` tokens."""

    above: int
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    cache_write_1h: Decimal | None = None
    output_above: int | None = None
    """Also require more than this many output tokens (GLM bills short replies at a lower tier)."""

    def applies(self, input_tokens: int, output_tokens: int = 0) -> bool:
        return input_tokens > self.above and (self.output_above is None or output_tokens > self.output_above)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Period = Literal["peak", "off-peak", "before", "unknown"]


@dataclass(frozen=True)
class TimeOfDay:
    """A price that depends on the hour a call starts (data, not code: any row may carry one).

    From ``since`` on, a call that *starts* inside a peak window (``peak_utc``, UTC, start inclusive, end
    exclusive, on ``peak_weekdays`` of the UTC calendar) pays the row's prices; every other hour is off-peak
    and pays every price of the row (input, cache read/write, output, reasoning, long-context tiers) times
    ``off_peak_factor``. The row's own prices are therefore the *peak* prices. A call whose start is unknown,
    or which started before ``since``, is priced at the row's prices, as an estimate (see :meth:`known_at`).

    DeepSeek (https://api-docs.deepseek.com/quick_start/pricing): from 2026-08-16 16:00 UTC, peak
    01:00-04:00 and 06:00-10:00 UTC Monday-Friday, off-peak at half price. Its peak excludes Chinese
    public holidays, which tokprof cannot know offline: on those days a call in a peak window is priced at
    peak, an upper bound (up to 2x what was paid).
    """

    since: str
    """The instant the rule starts, as written (``2026-08-16T16:00Z``)."""
    since_ns: int
    peak_utc: tuple[tuple[int, int], ...]
    """Peak windows as (start minute, end minute) of the UTC day, end exclusive."""
    peak_weekdays: frozenset[int]
    """UTC weekdays the peak windows apply on (0 = Monday)."""
    off_peak_factor: Decimal
    source: str = ""

    def period(self, wall_ns: int | None) -> Period:
        """Which price applies to a call started at ``wall_ns`` (UTC ns since the epoch; ``None`` or <= 0:
        unknown): ``peak``, ``off-peak``, ``before`` the rule, or ``unknown``."""
        if wall_ns is None or wall_ns <= 0:
            return "unknown"
        if wall_ns < self.since_ns:
            return "before"
        t = datetime.fromtimestamp(wall_ns // 1_000_000_000, tz=timezone.utc)
        minute = t.hour * 60 + t.minute
        if t.weekday() in self.peak_weekdays and any(a <= minute < b for a, b in self.peak_utc):
            return "peak"
        return "off-peak"

    def factor_at(self, wall_ns: int | None) -> Decimal:
        """The multiplier of every price of the row for a call started at ``wall_ns`` (1 unless off-peak)."""
        return self.off_peak_factor if self.period(wall_ns) == "off-peak" else Decimal(1)

    def known_at(self, wall_ns: int | None) -> bool:
        """Whether the rule prices a call started at ``wall_ns`` exactly (start known, not before ``since``);
        otherwise the row's (peak) prices stand in as an upper bound, labelled ``estimated``."""
        return self.period(wall_ns) in ("peak", "off-peak")

    def to_dict(self) -> dict[str, Any]:
        runs: list[list[int]] = []  # consecutive days as ranges: {0..4} -> "Mon-Fri"
        for d in sorted(self.peak_weekdays):
            if runs and runs[-1][1] == d - 1:
                runs[-1][1] = d
            else:
                runs.append([d, d])
        days = ",".join(WEEKDAYS[a].capitalize() + ("" if a == b else "-" + WEEKDAYS[b].capitalize())
                        for a, b in runs)
        return {"from": self.since,
                "peak_utc": [f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:{b % 60:02d}" for a, b in self.peak_utc],
                "peak_weekdays": days,
                "off_peak_factor": str(self.off_peak_factor), "source": self.source}


@dataclass(frozen=True)
class ModelPrice:
    """Prices per 1M tokens of one model."""

    model: str
    provider: str
    currency: str  # "USD" | "CNY"
    input: Decimal
    output: Decimal
    cache_read: Decimal | None = None
    cache_write: Decimal | None = None
    """Cache write with the default (5-minute) TTL."""
    cache_write_1h: Decimal | None = None
    reasoning: Decimal | None = None
    """Price of reasoning tokens when billed differently from other output (else ``None``)."""
    tiers: tuple[PriceTier, ...] = ()
    """Long-context tiers (:class:`PriceTier`), ascending by ``above``."""
    effective_date: str = ""
    source: str = ""
    estimated: bool = False
    """True when the row is not backed by a published price page (see ``note``)."""
    aliases: tuple[str, ...] = field(default=(), compare=False)
    note: str | None = field(default=None, compare=False)
    confirmed: str | None = field(default=None, compare=False)
    """Where and when the row was last checked against the provider's own page (``"2026-12-01 <url>"``)."""
    time_of_day: TimeOfDay | None = field(default=None, compare=False)
    """Peak / off-peak rule (:class:`TimeOfDay`): the row's prices are then the peak prices."""

    def for_prompt(self, input_tokens: int, output_tokens: int = 0) -> "ModelPrice":
        """The prices that apply to a request of ``input_tokens`` prompt tokens (and ``output_tokens`` output
        tokens, for output-length tiers): the last tier, in table order, whose conditions hold."""
        chosen: PriceTier | None = None
        for tier in self.tiers:
            if tier.applies(input_tokens, output_tokens):
                chosen = tier
        if chosen is None:
            return self
        return ModelPrice(
            self.model, self.provider, self.currency, chosen.input, chosen.output,
            chosen.cache_read if chosen.cache_read is not None else self.cache_read,
            chosen.cache_write if chosen.cache_write is not None else self.cache_write,
            chosen.cache_write_1h if chosen.cache_write_1h is not None else self.cache_write_1h,
            self.reasoning, (), self.effective_date, self.source, self.estimated, self.aliases, self.note,
            self.confirmed, time_of_day=self.time_of_day)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"model": self.model, "provider": self.provider, "currency": self.currency,
                             "input": str(self.input), "output": str(self.output)}
        for name in ("cache_read", "cache_write", "cache_write_1h", "reasoning"):
            v = getattr(self, name)
            if v is not None:
                d[name] = str(v)
        if self.tiers:
            d["tiers"] = [{k: (v if k in ("above", "output_above") else str(v)) for k, v in t.__dict__.items()
                           if v is not None} for t in self.tiers]
        d["effective_date"] = self.effective_date
        d["source"] = self.source
        if self.estimated:
            d["estimated"] = True
        if self.aliases:
            d["aliases"] = list(self.aliases)
        if self.note:
            d["note"] = self.note
        if self.confirmed:
            d["confirmed"] = self.confirmed
        if self.time_of_day is not None:
            d["time_of_day"] = self.time_of_day.to_dict()
        return d


# ---------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------
def _dec(value: Any, where: str, name: str) -> Decimal | None:
    if value is None:
        return None
    try:
        d = Decimal(str(value))
    except Exception:
        raise PriceFileError(f"{where}: {name}={value!r} is not a number") from None
    # is_finite first: comparing a NaN raises decimal.InvalidOperation, which named neither row nor field
    if not d.is_finite() or d < 0 or d > MAX_PRICE:
        raise PriceFileError(f"{where}: {name}={value!r} must be a finite number in [0, {MAX_PRICE}]")
    return d


MAX_PRICE = Decimal(10) ** 9
"""Per 1M tokens; anything above is a typo, and near Decimal's exponent limit the cost arithmetic overflows."""


def _int(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise PriceFileError(f"{where}: {name}={value!r} is not a whole number")
    try:
        n = int(value)
    except ValueError:
        raise PriceFileError(f"{where}: {name}={value!r} is not a whole number") from None
    if not 0 <= n <= 2**53:
        raise PriceFileError(f"{where}: {name}={value!r} must be in [0, 2**53]")
    return n


def _required_dec(value: Any, where: str, name: str) -> Decimal:
    d = _dec(value, where, name)
    if d is None:  # callers check presence first; this keeps the type honest
        raise PriceFileError(f"{where}: missing {name!r} (price per 1M tokens)")
    return d


def _minute(hhmm: str, where: str) -> int:
    try:
        h, m = (int(x) for x in hhmm.strip().split(":"))
    except ValueError:
        raise PriceFileError(f"{where}: {hhmm!r} is not HH:MM") from None
    if not (0 <= h <= 24 and 0 <= m < 60) or h * 60 + m > 24 * 60:
        raise PriceFileError(f"{where}: {hhmm!r} is not a time of day")
    return h * 60 + m


def _weekdays(spec: Any, where: str) -> frozenset[int]:
    """``"Mon-Fri"``, ``"Mon,Wed,Sat"`` or a list of day names -> weekday numbers (0 = Monday)."""
    parts = spec if isinstance(spec, list) else str(spec).split(",")
    days: set[int] = set()
    for part in parts:
        ends = [e.strip().lower()[:3] for e in str(part).split("-")]
        if len(ends) > 2 or any(e not in WEEKDAYS for e in ends):
            raise PriceFileError(f"{where}: peak_weekdays {spec!r}: use day names like 'Mon-Fri' or 'Sat,Sun'")
        a, b = WEEKDAYS.index(ends[0]), WEEKDAYS.index(ends[-1])
        if b < a:
            raise PriceFileError(f"{where}: peak_weekdays {spec!r}: a range runs forward (Mon-Fri)")
        days.update(range(a, b + 1))
    return frozenset(days)


def time_of_day_from_dict(d: Any, where: str) -> TimeOfDay:
    """Parse and validate a row's ``time_of_day`` (see :class:`TimeOfDay`)::

        {"from": "2026-08-16T16:00Z", "peak_utc": ["01:00-04:00", "06:00-10:00"],
         "peak_weekdays": "Mon-Fri", "off_peak_factor": "0.5", "source": "https://..."}
    """
    where = f"{where} time_of_day"
    if not isinstance(d, dict):
        raise PriceFileError(f"{where}: expected an object with 'from', 'peak_utc' and 'off_peak_factor'")
    try:
        since = datetime.fromisoformat(str(d.get("from", "")).replace("Z", "+00:00"))
    except ValueError:
        raise PriceFileError(f"{where}: 'from' must be an ISO instant like 2026-08-16T16:00Z") from None
    if since.tzinfo is None:
        raise PriceFileError(f"{where}: 'from' needs a time zone (2026-08-16T16:00Z)")
    windows = []
    for w in d.get("peak_utc") or []:
        a, sep, b = str(w).partition("-")
        start, end = _minute(a, where), _minute(b, where) if sep else -1
        if not sep or end <= start:
            # a window over midnight would need a rule for which day's weekday counts: write two windows
            raise PriceFileError(f"{where}: peak window {w!r} must be 'HH:MM-HH:MM' with start < end (split a "
                                 f"window over midnight in two)")
        windows.append((start, end))
    if not windows:
        raise PriceFileError(f"{where}: 'peak_utc' needs at least one window ('01:00-04:00')")
    factor = _dec(d.get("off_peak_factor"), where, "off_peak_factor")
    if factor is None or factor > 1:
        raise PriceFileError(f"{where}: 'off_peak_factor' must be a number in 0..1 (0.5: half price)")
    return TimeOfDay(since=str(d["from"]), since_ns=int(since.timestamp()) * 1_000_000_000,
                     peak_utc=tuple(sorted(windows)),
                     peak_weekdays=_weekdays(d.get("peak_weekdays", "Mon-Sun"), where),
                     off_peak_factor=factor, source=str(d.get("source") or ""))


def price_from_dict(d: dict[str, Any], where: str = "price") -> ModelPrice:
    """Build a :class:`ModelPrice` from a row of a price file (money as strings or numbers)."""
    if not isinstance(d, dict) or not d.get("model"):
        raise PriceFileError(f"{where}: each price needs at least 'model', 'input' and 'output'")
    where = f"{where} ({d['model']})"
    for required in ("input", "output"):
        if d.get(required) is None:
            raise PriceFileError(f"{where}: missing {required!r} (price per 1M tokens)")
    currency = str(d.get("currency", "USD")).upper()
    if currency not in ("USD", "CNY"):
        raise PriceFileError(f"{where}: currency must be USD or CNY, not {currency!r}")
    tiers = []
    for i, t in enumerate(d.get("tiers") or []):
        tw = f"{where} tier {i}"
        if not isinstance(t, dict):
            raise PriceFileError(f"{tw}: a tier is an object with 'above' and prices")
        if "above" not in t:
            raise PriceFileError(f"{tw}: missing 'above' (prompt tokens)")
        tiers.append(PriceTier(_int(t["above"], tw, "above"), _dec(t.get("input"), tw, "input") or Decimal(0),
                               _dec(t.get("output"), tw, "output") or Decimal(0),
                               _dec(t.get("cache_read"), tw, "cache_read"),
                               _dec(t.get("cache_write"), tw, "cache_write"),
                               _dec(t.get("cache_write_1h"), tw, "cache_write_1h"),
                               None if t.get("output_above") is None
                               else _int(t["output_above"], tw, "output_above")))
    tiers.sort(key=lambda t: (t.above, -1 if t.output_above is None else t.output_above))
    return ModelPrice(
        model=str(d["model"]).lower(),
        provider=str(d.get("provider") or "unknown"),
        currency=currency,
        input=_required_dec(d["input"], where, "input"),
        output=_required_dec(d["output"], where, "output"),
        cache_read=_dec(d.get("cache_read"), where, "cache_read"),
        cache_write=_dec(d.get("cache_write"), where, "cache_write"),
        cache_write_1h=_dec(d.get("cache_write_1h"), where, "cache_write_1h"),
        reasoning=_dec(d.get("reasoning"), where, "reasoning"),
        tiers=tuple(tiers),
        effective_date=str(d.get("effective_date") or ""),
        source=str(d.get("source") or ""),
        estimated=bool(d.get("estimated", False)),
        aliases=tuple(str(a).lower() for a in d.get("aliases") or ()),
        note=d.get("note"),
        confirmed=d.get("confirmed"),
        time_of_day=None if d.get("time_of_day") is None else time_of_day_from_dict(d["time_of_day"], where),
    )
