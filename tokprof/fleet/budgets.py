"""Budgets: limits on tokens or money per tag value, model or application, per day/week/month.

A budgets file is TOML or JSON holding a list ``budget`` (TOML ``[[budget]]`` tables) of::

    name   = "payments weekly"          # optional; default: scope + period
    scope  = "tag:team=payments"        # tag:KEY=VALUE | model=NAME | app=RUN-NAME | all
    period = "week"                     # day | week (Monday start) | month | run (one run, in-run only)
    limit  = "50"                       # a number (string or number; money is read as Decimal)
    unit   = "USD"                      # USD | CNY | tokens (input + output)
    hard   = false                      # in a run: raise BudgetExceeded at 100% (default: warn only)

Checked over the fleet ledger by ``tokprof budget check`` (this module) and during a run by
``profile(budget=...)`` (:mod:`tokprof.fleet.live_budget`). Periods are calendar periods in UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

PERIODS = ("day", "week", "month", "run")
UNITS = ("USD", "CNY", "tokens")
WARN_AT = Decimal("0.8")
"""A warning when this share of a budget is used."""

_SCOPE = re.compile(r"^(all|tag:(?P<tk>[^=]+)=(?P<tv>.*)|model=(?P<m>.+)|app=(?P<a>.+))$")


class BudgetError(ValueError):
    """A budgets file or budget value that cannot be used (names the file, the entry and the field)."""


@dataclass(frozen=True)
class Budget:
    """One limit. ``limit`` is tokens (int) or money (Decimal, in ``unit``)."""

    limit: Decimal
    unit: str = "USD"
    period: str = "run"
    scope: str = "all"
    hard: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise BudgetError(f"budget {self.label}: unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.period not in PERIODS:
            raise BudgetError(f"budget {self.label}: period must be one of {', '.join(PERIODS)}, not {self.period!r}")
        if not _SCOPE.match(self.scope):
            raise BudgetError(f"budget {self.label}: scope must be all, tag:KEY=VALUE, model=NAME or app=NAME, "
                              f"not {self.scope!r}")
        if self.limit <= 0:
            raise BudgetError(f"budget {self.label}: limit must be positive, not {self.limit}")

    @property
    def label(self) -> str:
        return self.name or f"{self.scope} per {self.period}"

    def scope_parts(self) -> tuple[str, str | None, str | None]:
        """(kind, key, value): ``("all", None, None)``, ``("tag", "team", "payments")``, ``("model", None,
        "gpt-4o")``, ``("app", None, "checkout-agent")``."""
        m = _SCOPE.match(self.scope)
        assert m is not None
        if m.group("tk") is not None:
            return "tag", m.group("tk").strip(), m.group("tv").strip()
        if m.group("m") is not None:
            return "model", None, m.group("m").strip()
        if m.group("a") is not None:
            return "app", None, m.group("a").strip()
        return "all", None, None

    def applies_to_run(self, name: str, tags: dict[str, str]) -> bool:
        """Whether a run with this name and tags is (wholly or partly) in scope; ``model`` scopes match
        per call (:meth:`applies_to_call`)."""
        kind, key, value = self.scope_parts()
        if kind == "tag":
            return tags.get(key or "") == value
        if kind == "app":
            return name == value
        return True

    def applies_to_call(self, model: str | None) -> bool:
        kind, _, value = self.scope_parts()
        return kind != "model" or model == value


def _decimal(value: Any, where: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise BudgetError(f"{where}: limit {value!r} is not a number") from exc
    if not d.is_finite():
        raise BudgetError(f"{where}: limit {value!r} is not a finite number")
    if d > MAX_LIMIT:  # a typo, and past DuckDB's integer/decimal range the comparison itself fails
        raise BudgetError(f"{where}: limit {value!r} is above {MAX_LIMIT:,} (a typo?)")
    if 0 < d < MIN_LIMIT:  # 1e-999999 would show every spend as "inf%" over budget
        raise BudgetError(f"{where}: limit {value!r} is below {MIN_LIMIT} (a typo?)")
    return d


MAX_LIMIT = Decimal(10) ** 15
"""The largest limit accepted, in tokens or money: far above any real budget."""
MIN_LIMIT = Decimal("0.000001")
"""The smallest positive limit accepted (a millionth of a dollar or yuan; tokens are whole)."""


def budget_from_dict(d: Any, where: str = "budget") -> Budget:
    """One budget from a mapping (a budgets-file entry, or ``profile(budget={...})``).

    Shorthands: ``{"usd": 0.5}``, ``{"cny": 3}``, ``{"tokens": 100000}`` set limit and unit together."""
    if not isinstance(d, dict):
        raise BudgetError(f"{where}: expected a table/object, got {type(d).__name__}")
    d = dict(d)
    for short, unit in (("usd", "USD"), ("cny", "CNY"), ("tokens", "tokens")):
        if short in d:
            d.setdefault("limit", d.pop(short))
            d.setdefault("unit", unit)
    unknown = set(d) - {"name", "scope", "period", "limit", "unit", "hard"}
    if unknown:
        raise BudgetError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if "limit" not in d:
        raise BudgetError(f"{where}: no limit (limit = NUMBER, with unit USD, CNY or tokens)")
    unit = str(d.get("unit", "USD"))
    unit = unit if unit == "tokens" else unit.upper()
    hard = d.get("hard", False)
    if not isinstance(hard, bool):
        raise BudgetError(f"{where}: hard must be true or false")
    name = d.get("name")
    if name is not None and not isinstance(name, str):
        raise BudgetError(f"{where}: name must be a string, not {type(name).__name__}")
    limit = _decimal(d["limit"], where)  # its errors name the entry already
    try:
        return Budget(limit=limit, unit=unit, period=str(d.get("period", "run")),
                      scope=str(d.get("scope", "all")), hard=hard, name=name)
    except BudgetError as exc:
        raise BudgetError(f"{where}: {exc}") from None


def load_budgets(path: str | Path) -> list[Budget]:
    """Budgets from a TOML (``.toml``) or JSON file: ``budget = [...]`` (or a bare JSON list)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a BOM some editors write is not part of the TOML
    except OSError as exc:
        raise BudgetError(f"{p}: cannot read the budgets file ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:  # UTF-16, binary: name the file, not only the codec
        raise BudgetError(f"{p}: the budgets file is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            data: Any = tomllib.loads(text)
        else:
            data = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise BudgetError(f"{p}: not valid {'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: "
                          f"{str(exc) or type(exc).__name__}"[:300]) from exc
    items = data.get("budget", data.get("budgets")) if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise BudgetError(f"{p}: expected a list of budgets ([[budget]] in TOML, {{\"budget\": [...]}} in JSON)")
    return [budget_from_dict(b, f"{p}: budget #{i + 1}") for i, b in enumerate(items)]


def coerce_budgets(value: Any) -> list[Budget]:
    """What ``profile(budget=...)`` accepts: a :class:`Budget`, a list of them, a dict, a number (USD per
    run), or a path to a budgets file."""
    if isinstance(value, Budget):
        return [value]
    if isinstance(value, (list, tuple)):
        return [b for v in value for b in coerce_budgets(v)]
    if isinstance(value, dict):
        return [budget_from_dict(value)]
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return [Budget(limit=_decimal(value, "budget"), unit="USD", period="run")]
    if isinstance(value, (str, Path)):
        return load_budgets(value)
    raise BudgetError(f"budget: expected a Budget, dict, number or budgets file, got {type(value).__name__}")


def period_window(period: str, at: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day (inclusive) of the calendar period containing ``at``."""
    if period == "day":
        return at, at
    if period == "week":
        start = at - dt.timedelta(days=at.weekday())
        return start, start + dt.timedelta(days=6)
    if period == "month":
        start = at.replace(day=1)
        nxt = (start + dt.timedelta(days=32)).replace(day=1)
        return start, nxt - dt.timedelta(days=1)
    raise BudgetError(f"period {period!r} has no calendar window (only day, week, month)")


def status_of(used: Decimal, limit: Decimal) -> str:
    if used >= limit:
        return "over"
    if used >= limit * WARN_AT:
        return "warn"
    return "ok"


def check(con: Any, budgets: list[Budget], at: dt.date) -> list[dict[str, Any]]:
    """Each calendar budget's use over the ledger in the period containing ``at`` (``run`` budgets are
    per run and checked in the run; here they report the most expensive run of the period's month)."""
    rows = []
    for b in budgets:
        period = b.period if b.period != "run" else "month"
        start, end = period_window(period, at)
        where = ["day BETWEEN ? AND ?"]
        params: list[Any] = [start, end]
        kind, key, value = b.scope_parts()
        if kind == "tag":
            where.append("tags[?] = ?")
            params += [key, value]
        elif kind == "model":
            where.append("model = ?")
            params.append(value)
        elif kind == "app":
            where.append("run_id IN (SELECT run_id FROM runs WHERE name = ?)")
            params.append(value)
        metric = ("(input_tokens + output_tokens)" if b.unit == "tokens" else f"cost_{b.unit.lower()}")
        agg = f"sum({metric})" if b.period != "run" else "max(per_run)"
        if b.period == "run":
            sql = (f"SELECT max(per_run), count(*) FROM (SELECT run_id, sum({metric}) AS per_run FROM calls "
                   f"WHERE {' AND '.join(where)} GROUP BY run_id)")
        else:
            sql = f"SELECT {agg}, count(*) FROM calls WHERE {' AND '.join(where)}"
        used_raw, n = con.execute(sql, params).fetchone()
        used = Decimal(used_raw or 0)
        rows.append({"budget": b.label, "scope": b.scope, "period": b.period, "from": start.isoformat(),
                     "to": end.isoformat(), "unit": b.unit, "limit": b.limit, "used": used,
                     "share": float(used / b.limit), "status": status_of(used, b.limit), "calls": n,
                     "hard": b.hard})
    return rows
