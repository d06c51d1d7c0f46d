"""Questions over the ledger: usage and spend grouped by tag, model, provider, function, tool, time.

Every ratio is a ratio of sums (cache hit rate = sum(cache-read tokens) / sum(input tokens)), never an
average of per-call or per-run percentages. Money is summed as DECIMAL in the database and returned as
:class:`decimal.Decimal`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

GROUP_COLUMNS = {
    "model": "coalesce(model, '(unknown)')",
    "provider": "coalesce(provider, '(unknown)')",
    "function": "coalesce(function, '(none)')",
    "tool": "coalesce(tool, '(none)')",
    "agent": "coalesce(agent, '(none)')",
    "path": "path",
    "run": "run_id",
    "status": "cache_status",
    "day": "CAST(day AS VARCHAR)",
    "week": "CAST(date_trunc('week', day) AS DATE)::VARCHAR",
    "month": "strftime(day, '%Y-%m')",
}
GROUP_HELP = "tag:KEY, " + ", ".join(GROUP_COLUMNS)
_TAG_KEY = re.compile(r"^[\w.\-:/ ]{1,100}$")


class StatsError(ValueError):
    """A bad --by / --tag / date argument (names it and what is accepted)."""


@dataclass
class Query:
    """A stats question: group keys, filters, currency."""

    by: list[str] = field(default_factory=list)
    since: dt.date | None = None
    until: dt.date | None = None
    tags: dict[str, str] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    currency: str = "USD"
    order: str = "cost"
    limit: int | None = None


def parse_by(items: list[str]) -> list[str]:
    """``--by`` values (repeatable, comma-separated) checked against what can be grouped by."""
    out = []
    for item in items:
        for key in (k.strip() for k in item.split(",")):
            if not key:
                continue
            if key.startswith("tag:"):
                if not _TAG_KEY.match(key[4:]):
                    raise StatsError(f"--by {key}: a tag key is 1-100 letters, digits, '.', '-', ':', '/'")
            elif key not in GROUP_COLUMNS:
                raise StatsError(f"--by {key}: unknown; group by {GROUP_HELP}")
            out.append(key)
    return out


def parse_tags(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise StatsError(f"--tag {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def parse_date(value: str | None, flag: str) -> dt.date | None:
    """``YYYY-MM-DD``, or ``Nd``/``Nw`` meaning that many days/weeks before today (UTC)."""
    if value is None:
        return None
    m = re.fullmatch(r"(\d+)([dw])", value.strip())
    if m:
        days = int(m.group(1)) * (7 if m.group(2) == "w" else 1)
        return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise StatsError(f"{flag} {value!r}: expected YYYY-MM-DD or a number of days/weeks ago (7d, 2w)") from exc


def _group_expr(key: str, params: list[Any]) -> str:
    if key.startswith("tag:"):
        params.append(key[4:])
        return "coalesce(tags[?], '(untagged)')"
    return GROUP_COLUMNS[key]


def where_clause(q: Query, params: list[Any]) -> str:
    conds = []
    if q.since is not None:
        conds.append("day >= ?")
        params.append(q.since)
    if q.until is not None:
        conds.append("day <= ?")
        params.append(q.until)
    for k, v in q.tags.items():
        conds.append("tags[?] = ?")
        params.extend([k, v])
    if q.models:
        conds.append("model IN (" + ", ".join("?" for _ in q.models) + ")")
        params.extend(q.models)
    return ("WHERE " + " AND ".join(conds)) if conds else ""


def metrics_sql(cost_col: str) -> str:
    return (f"count(*) AS calls, count(DISTINCT run_id) AS runs, "
            f"sum(input_tokens)::BIGINT AS input_tokens, sum(output_tokens)::BIGINT AS output_tokens, "
            f"sum(cache_read_tokens)::BIGINT AS cache_read_tokens, "
            f"sum(cache_write_tokens)::BIGINT AS cache_write_tokens, "
            f"sum(reasoning_tokens)::BIGINT AS reasoning_tokens, "
            f"sum({cost_col}) AS cost, count(*) FILTER (WHERE {cost_col} IS NULL) AS unpriced_calls, "
            f"count(*) FILTER (WHERE input_source IS NULL OR input_source <> 'provider') AS counted_calls")


def run_stats(con: Any, q: Query) -> dict[str, Any]:
    """Rows (one per group) and the total, as a JSON-ready dict (money as Decimal)."""
    if q.currency.upper() not in ("USD", "CNY"):
        raise StatsError(f"--currency {q.currency}: use USD or CNY")
    cost_col = f"cost_{q.currency.lower()}"
    params: list[Any] = []
    groups = [_group_expr(k, params) for k in q.by]
    where = where_clause(q, params)
    select_groups = "".join(f"{g} AS g{i}, " for i, g in enumerate(groups))
    sql = f"SELECT {select_groups}{metrics_sql(cost_col)} FROM calls {where}"
    if groups:
        order = {"cost": "cost DESC NULLS LAST", "tokens": "input_tokens + output_tokens DESC",
                 "calls": "calls DESC", "key": ", ".join(f"g{i}" for i in range(len(groups)))}[q.order]
        sql += " GROUP BY ALL ORDER BY " + order + ", " + ", ".join(f"g{i}" for i in range(len(groups)))
        if q.limit:
            sql += f" LIMIT {int(q.limit)}"
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    rows = [_finish(dict(zip(names, r)), q.by) for r in cur.fetchall()]
    if groups:
        tparams: list[Any] = []
        twhere = where_clause(q, tparams)
        total = _finish(dict(zip(names[len(groups):],
                                 con.execute(f"SELECT {metrics_sql(cost_col)} FROM calls {twhere}", tparams)
                                 .fetchone())), [])
    else:
        total, rows = rows[0], []
    return {"schema": "tokprof.stats/1", "by": q.by, "currency": q.currency.upper(),
            "filters": {"since": None if q.since is None else q.since.isoformat(),
                        "until": None if q.until is None else q.until.isoformat(),
                        "tags": q.tags, "models": q.models},
            "rows": rows, "total": total}


def _finish(r: dict[str, Any], by: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"group": {k: r.pop(f"g{i}") for i, k in enumerate(by)}} if by else {}
    for k in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens"):
        r[k] = int(r[k] or 0)
    inp = r["input_tokens"]
    # a ratio of sums, never a mean of ratios
    r["cache_hit_rate"] = None if not inp else r["cache_read_tokens"] / inp
    r["total_tokens"] = inp + r["output_tokens"]
    cost = r["cost"]
    r["cost"] = None if cost is None else Decimal(cost).normalize() if cost == 0 else Decimal(cost)
    out.update(r)
    return out


def to_json_ready(doc: dict[str, Any]) -> dict[str, Any]:
    """Money as strings (exact), the rest unchanged."""
    def fix(r: dict[str, Any]) -> dict[str, Any]:
        return {k: (str(_strip(v)) if isinstance(v, Decimal) else v) for k, v in r.items()}

    return {**doc, "rows": [fix(r) for r in doc["rows"]], "total": fix(doc["total"])}


def _strip(d: Decimal) -> Decimal:
    """Drop trailing zeros of the DECIMAL(38,24) scale without going to exponent notation."""
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return Decimal(s)
