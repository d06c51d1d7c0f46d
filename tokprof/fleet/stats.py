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
    # key -> (where it lives: f = call_facts, k = call_kinds, p = places, r = runs; SQL over that table);
    # tags live in tag_sets (t)
    "model": ("k", "coalesce(model, '(unknown)')"),
    "provider": ("k", "coalesce(provider, '(unknown)')"),
    "function": ("p", "coalesce(function, '(none)')"),
    "tool": ("p", "coalesce(tool, '(none)')"),
    "agent": ("p", "coalesce(agent, '(none)')"),
    "path": ("p", "path"),
    "run": ("r", "run_id"),
    "status": ("k", "cache_status"),
    # time keys group by a date and are formatted after the aggregation (once per group, not per call)
    "day": ("f", "f.day"),
    "week": ("f", "CAST(date_trunc('week', f.day) AS DATE)"),
    "month": ("f", "CAST(date_trunc('month', f.day) AS DATE)"),
}
_FORMAT = {"day": "CAST({} AS VARCHAR)", "week": "CAST({} AS VARCHAR)", "month": "strftime({}, '%Y-%m')"}
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
        try:
            return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days)
        except OverflowError as exc:  # 100000000000d: before year 1 (or past timedelta's range)
            raise StatsError(f"{flag} {value!r}: {days:,} days ago is before the year 1") from exc
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise StatsError(f"{flag} {value!r}: expected YYYY-MM-DD or a number of days/weeks ago (7d, 2w)") from exc


class _Sql:
    """A stats query over the narrow facts, joined only to the dimensions it needs. Group keys and filters on
    a dimension are computed in a sub-query over that (small) table, so a tag is looked up once per distinct
    tag set, not once per call."""

    def __init__(self, q: Query) -> None:
        self.cols: dict[str, list[str]] = {"k": [], "p": [], "t": [], "r": []}
        self.where: dict[str, list[str]] = {"k": [], "t": [], "f": []}
        self.params: dict[str, list[Any]] = {"k": [], "t": [], "f": []}
        self.groups: list[str] = []
        for i, key in enumerate(q.by):
            if key.startswith("tag:"):
                self.cols["t"].append(f"coalesce(tags[?], '(untagged)') AS g{i}")
                self.params["t"].append(key[4:])
                self.groups.append(f"t.g{i}")
                continue
            table, expr = GROUP_COLUMNS[key]
            if table == "f":
                self.groups.append(expr)
            else:
                self.cols[table].append(f"{expr} AS g{i}")
                self.groups.append(f"{table}.g{i}")
        if q.since is not None:
            self.where["f"].append("f.day >= ?")
            self.params["f"].append(q.since)
        if q.until is not None:
            self.where["f"].append("f.day <= ?")
            self.params["f"].append(q.until)
        for k, v in q.tags.items():
            self.where["t"].append("tags[?] = ?")
            self.params["t"].extend([k, v])
        if q.models:
            self.where["k"].append("model IN (" + ", ".join("?" for _ in q.models) + ")")
            self.params["k"].extend(q.models)

    def from_clause(self) -> tuple[str, str, list[Any]]:
        """``WITH`` dimension sub-queries, ``FROM call_facts f JOIN ... WHERE ...``, and their parameters in
        text order. The sub-queries are MATERIALIZED: inlined, DuckDB would move a tag look-up above the
        join and evaluate it once per call (measured 3x slower at 1M calls)."""
        # the kinds are always joined: counted_calls needs the input token source
        kcols = ", ".join(["kind_id", "(input_source IS NULL OR input_source <> 'provider') AS counted",
                           "cost_source = 'simulated' AS simulated", *self.cols["k"]])
        ctes = [f"k AS MATERIALIZED (SELECT {kcols} FROM call_kinds{_where(self.where['k'])})"]
        joins = ["JOIN k ON k.kind_id = f.kind_id"]
        params = list(self.params["k"])
        if self.cols["p"]:
            ctes.append(f"p AS MATERIALIZED (SELECT place_id, {', '.join(self.cols['p'])} FROM places)")
            joins.append("JOIN p ON p.place_id = f.place_id")
        if self.cols["t"] or self.where["t"]:
            tcols = ", ".join(["tags_id", *self.cols["t"]])
            ctes.append(f"t AS MATERIALIZED (SELECT {tcols} FROM tag_sets{_where(self.where['t'])})")
            joins.append("JOIN t ON t.tags_id = f.tags_id")
            params += self.params["t"]
        if self.cols["r"]:
            ctes.append(f"r AS MATERIALIZED (SELECT run_key, {', '.join(self.cols['r'])} FROM runs)")
            joins.append("JOIN r ON r.run_key = f.run_key")
        return ("WITH " + ", ".join(ctes), "FROM call_facts f " + " ".join(joins) + _where(self.where["f"]),
                params + self.params["f"])


def _where(conds: list[str]) -> str:
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def metrics_sql(cost_col: str) -> str:
    return (f"count(*) AS calls, count(DISTINCT f.run_key) AS runs, "
            f"sum(f.input_tokens)::BIGINT AS input_tokens, sum(f.output_tokens)::BIGINT AS output_tokens, "
            f"sum(f.cache_read_tokens)::BIGINT AS cache_read_tokens, "
            f"sum(f.cache_write_tokens)::BIGINT AS cache_write_tokens, "
            f"sum(f.reasoning_tokens)::BIGINT AS reasoning_tokens, "
            f"sum(f.{cost_col}) AS cost, count(*) FILTER (WHERE f.{cost_col} IS NULL) AS unpriced_calls, "
            f"count(*) FILTER (WHERE k.counted) AS counted_calls, "
            f"count(*) FILTER (WHERE k.simulated) AS simulated_cost_calls")


def run_stats(con: Any, q: Query) -> dict[str, Any]:
    """Rows (one per group) and the total, as a JSON-ready dict (money as Decimal). One pass over the facts:
    the groups and the total are grouping sets of the same aggregation."""
    if q.currency.upper() not in ("USD", "CNY"):
        raise StatsError(f"--currency {q.currency}: use USD or CNY")
    cost_col = f"cost_{q.currency.lower()}"
    query = _Sql(q)
    with_sql, from_sql, params = query.from_clause()
    groups = query.groups
    if groups:
        keys = ", ".join(f"g{i}" for i in range(len(groups)))
        inner = (f"SELECT {''.join(f'{g} AS g{i}, ' for i, g in enumerate(groups))}{metrics_sql(cost_col)}, "
                 f"grouping({groups[0]}) AS total_row {from_sql} GROUP BY GROUPING SETS (({', '.join(groups)}), ())")
        outer = ", ".join(_FORMAT.get(k, "{}").format(f"g{i}") + f" AS g{i}" for i, k in enumerate(q.by))
        order = {"cost": "cost DESC NULLS LAST", "tokens": "input_tokens + output_tokens DESC",
                 "calls": "calls DESC", "key": keys}[q.order]
        sql = (f"{with_sql}, agg AS ({inner}) SELECT {outer}, * EXCLUDE ({keys}) FROM agg "
               f"ORDER BY total_row DESC, {order}, {keys}")
        if q.limit:
            sql += f" LIMIT {int(q.limit) + 1}"  # + the total row, first
    else:
        sql = f"{with_sql} SELECT {metrics_sql(cost_col)} {from_sql}"
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    fetched = [dict(zip(names, r)) for r in cur.fetchall()]
    if groups:
        total_raw = fetched[0] if fetched and fetched[0]["total_row"] else None
        rows = [_finish(r, q.by) for r in fetched if not r.pop("total_row")]
        if total_raw is None:  # no calls match: the empty total
            total_raw = {n: None for n in names[len(groups):-1]}
            for n in ("calls", "runs", "unpriced_calls", "counted_calls", "simulated_cost_calls"):
                total_raw[n] = 0
        else:
            for i in range(len(groups)):
                total_raw.pop(f"g{i}")
        total = _finish(total_raw, [])
    else:
        total, rows = _finish(fetched[0], []), []
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
