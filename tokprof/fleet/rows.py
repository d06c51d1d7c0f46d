"""Runs -> columnar rows of the fleet ledger (see :mod:`tokprof.fleet.schema`).

Rows are accumulated column by column in Python lists and turned into Arrow tables in bulk, so DuckDB
ingests whole batches (never row-by-row inserts). Every number comes from the profiler's own functions:
usage as recorded (with its source), cost from :func:`tokprof.profiler.accounting.span_cost` (the one cost
function: recorded cost when the trace has it, else tokens x the price table). Costs are memoised by
(model, usage, recorded cost) because the cost of a call is a pure function of them and fleets repeat them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from decimal import Decimal
from typing import Any, Iterable

import pyarrow as pa

from tokprof.fleet.schema import TABLES, USAGE_COLUMNS
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.model import Run, Span
from tokprof.profiler.store import payload_id

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1)
_USAGE_FIELDS = tuple(f"{u}_tokens" for u in USAGE_COLUMNS)
_ZERO = Decimal(0)


def _ts(ns: int | None) -> dt.datetime | None:
    if ns is None:
        return None
    return _EPOCH + dt.timedelta(microseconds=ns // 1000)


def _day(ns: int | None) -> dt.date | None:
    if ns is None:
        return None
    return _EPOCH_DAY + dt.timedelta(days=ns // 86_400_000_000_000)


_PLACES = Decimal(1).scaleb(-24)


def _money(x: Decimal | None) -> Decimal | None:
    """``x`` as stored (DECIMAL(38,24)): unchanged unless it has more than 24 decimal places."""
    if x is None or x.as_tuple().exponent >= -24:  # type: ignore[operator]
        return x
    return x.quantize(_PLACES)


def cache_status(span: Span) -> str:
    """``hit`` (some prompt tokens read from the provider cache), ``write`` (written, none read), ``miss``
    (the provider said nothing was cached) or ``unknown`` (the trace does not say)."""
    u = span.llm.usage  # type: ignore[union-attr]
    if u.cache_read_tokens > 0:
        return "hit"
    if u.cache_write_tokens > 0:
        return "write"
    return "miss" if u.known("cache_read_tokens") else "unknown"


class RowBuilder:
    """Accumulates the rows of many runs; :meth:`tables` hands them over as Arrow tables and resets.

    ``diagnose``: also run the prompt-cache prefix-break analysis per run (the ``diagnostics`` table);
    ``payloads``: also store messages and prompts (off for a usage-only ledger)."""

    def __init__(self, *, diagnose: bool = True, payloads: bool = True) -> None:
        self.diagnose = diagnose
        self.payloads = payloads
        self._cost_memo: dict[tuple[Any, ...], tuple[Any, Any, str, str]] = {}
        self._msg_memo: dict[int, tuple[Any, str]] = {}  # id(message) -> (message kept alive, hash)
        self._seen_messages: set[str] = set()
        self._seen_prompts: set[str] = set()
        self.n_calls = 0
        self._reset()

    def _reset(self) -> None:
        self.cols: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in schema} for name, schema in TABLES.items()
        }

    # ---- per call ---------------------------------------------------------------------------------
    def _cost(self, span: Span) -> tuple[Any, Any, str, str]:
        call = span.llm
        assert call is not None
        u = call.usage
        rec = call.cost
        key = (call.model, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
               u.cache_write_1h_tokens, u.reasoning_tokens, tuple(sorted(u.sources.items())),
               None if rec is None else (rec.amount, rec.currency, rec.source))
        hit = self._cost_memo.get(key)
        if hit is None:
            usd = span_cost(span, "USD")
            cny = span_cost(span, "CNY")
            native = "USD"
            if rec is not None and rec.source == "recorded" and rec.amount is not None:
                native = rec.currency.upper()
            else:
                from tokprof.profiler.providers.prices import get_price

                price = get_price(call.model, warn=False)
                if price is not None:
                    native = price.currency
            source = "unknown" if usd is None or usd.amount is None else usd.source
            hit = (_money(None if usd is None else usd.amount), _money(None if cny is None else cny.amount),
                   native, source)
            self._cost_memo[key] = hit
        return hit

    def _message_hash(self, m: Any) -> str:
        memo = self._msg_memo.get(id(m))
        if memo is not None and memo[0] is m:
            return memo[1]
        h = payload_id(m)
        self._msg_memo[id(m)] = (m, h)
        if h not in self._seen_messages:
            self._seen_messages.add(h)
            cols = self.cols["messages"]
            cols["hash"].append(h)
            role = m.get("role") if isinstance(m, dict) else None
            text = json.dumps(m, ensure_ascii=False, default=str)
            cols["role"].append(None if role is None else str(role))
            cols["content"].append(text)
            cols["chars"].append(len(text))
        return h

    def _prompt_hash(self, messages: list[Any]) -> str | None:
        if not messages:
            return None
        hashes = [self._message_hash(m) for m in messages]
        ph = hashlib.sha1("\n".join(hashes).encode()).hexdigest()
        if ph not in self._seen_prompts:
            self._seen_prompts.add(ph)
            self.cols["prompts"]["prompt_hash"].append(ph)
            self.cols["prompts"]["message_hashes"].append(hashes)
        return ph

    # ---- per run ----------------------------------------------------------------------------------
    def add_run(self, run: Run, ledger_file: str | None = None) -> None:
        """Add every row of ``run``."""
        spans = run.spans
        index = {s.span_id: s for s in spans}
        info: dict[str, tuple[str, int, dict[str, str]]] = {}  # span id -> (path, depth, tags in force)

        def resolve(s: Span) -> tuple[str, int, dict[str, str]]:
            """Path (names from the root, joined by '/'), depth and tags of ``s``, memoised; climbs
            iteratively so a deep or damaged (cyclic) parent chain cannot recurse without bound."""
            got = info.get(s.span_id)
            if got is not None:
                return got
            chain: list[Span] = []
            seen: set[str] = set()
            cur: Span | None = s
            while cur is not None and cur.span_id not in info and cur.span_id not in seen:
                seen.add(cur.span_id)
                chain.append(cur)
                cur = index.get(cur.parent_id) if cur.parent_id is not None else None
            base = info.get(cur.span_id) if cur is not None else None
            for sp in reversed(chain):
                if base is None:
                    path, depth, tags = sp.name, 0, dict(run.tags)
                else:
                    path, depth, tags = f"{base[0]}/{sp.name}", base[1] + 1, base[2]
                if sp.tags:
                    tags = {**tags, **sp.tags}
                base = info[sp.span_id] = (path, depth, tags)
            return info[s.span_id]

        ctx: dict[str, tuple[str | None, str | None, str | None]] = {}

        def below(s: Span) -> tuple[str | None, str | None, str | None]:
            """(agent, function, tool) that ``s``'s children run under: the nearest span of each kind
            from ``s`` up (memoised; iterative like ``resolve``)."""
            chain: list[Span] = []
            seen: set[str] = set()
            cur: Span | None = s
            while cur is not None and cur.span_id not in ctx and cur.span_id not in seen:
                seen.add(cur.span_id)
                chain.append(cur)
                cur = index.get(cur.parent_id) if cur.parent_id is not None else None
            a, f, t = ctx[cur.span_id] if cur is not None and cur.span_id in ctx else (None, None, None)
            for sp in reversed(chain):
                k = sp.kind
                a = sp.name if k == "agent" else a
                f = sp.name if k in ("function", "chain", "retriever") else f
                t = sp.name if k == "tool" else t
                ctx[sp.span_id] = (a, f, t)
            return ctx[s.span_id]

        def under(s: Span) -> tuple[str | None, str | None, str | None]:
            """(agent, function, tool) ``s`` ran under: its nearest ancestor of each kind."""
            parent = index.get(s.parent_id) if s.parent_id is not None else None
            return (None, None, None) if parent is None or parent is s else below(parent)

        sp_cols = self.cols["spans"]
        c = self.cols["calls"]
        n_calls = unpriced = 0
        inp = out = 0
        usd_total: Decimal = _ZERO
        cny_total: Decimal = _ZERO
        run_id = run.run_id
        for s in sorted(spans, key=lambda x: (x.start_ns, x.span_id)):
            path, depth, tags = resolve(s)
            start_ns = s.wall_start_ns
            end_ns = s.wall_end_ns
            day = _day(start_ns)
            start, end = _ts(start_ns), _ts(end_ns)
            tag_items = list(tags.items())
            sp_cols["run_id"].append(run_id)
            sp_cols["span_id"].append(s.span_id)
            sp_cols["parent_id"].append(s.parent_id)
            sp_cols["kind"].append(s.kind)
            sp_cols["name"].append(s.name)
            sp_cols["path"].append(path)
            sp_cols["depth"].append(depth)
            sp_cols["status"].append(s.status)
            sp_cols["tags"].append(tag_items)
            sp_cols["start_time"].append(start)
            sp_cols["end_time"].append(end)
            sp_cols["duration_ns"].append(s.duration_ns)
            sp_cols["day"].append(day)
            call = s.llm
            if call is None:
                continue
            n_calls += 1
            agent, fn, tool = under(s)
            u = call.usage
            usd, cny, native, cost_source = self._cost(s)
            if usd is None:
                unpriced += 1
            else:
                usd_total += usd
                cny_total += cny if cny is not None else _ZERO
            inp += u.input_tokens
            out += u.output_tokens
            c["run_id"].append(run_id)
            c["span_id"].append(s.span_id)
            c["parent_id"].append(s.parent_id)
            c["path"].append(path)
            c["agent"].append(agent)
            c["function"].append(fn)
            c["tool"].append(tool)
            c["model"].append(call.model)
            c["provider"].append(call.provider)
            srcs = u.sources
            for col, field in zip(USAGE_COLUMNS, _USAGE_FIELDS):
                c[f"{col}_tokens"].append(getattr(u, field))
                c[f"{col}_source"].append(srcs.get(field))
            c["cost_usd"].append(usd)
            c["cost_cny"].append(cny)
            c["currency"].append(native)
            c["cost_source"].append(cost_source)
            c["cache_status"].append(cache_status(s))
            c["status"].append(s.status)
            c["tags"].append(tag_items)
            if self.payloads:
                c["prompt_hash"].append(self._prompt_hash(call.messages))
                c["output_hash"].append(None if call.output is None else self._message_hash(call.output))
            else:
                c["prompt_hash"].append(None)
                c["output_hash"].append(None)
            c["start_time"].append(start)
            c["end_time"].append(end)
            c["duration_ns"].append(s.duration_ns)
            c["day"].append(day)
        self.n_calls += n_calls
        r = self.cols["runs"]
        starts = [s.wall_start_ns for s in spans]
        run_start = min(starts) if starts else run.started_wall_ns
        ends = [e for e in (s.wall_end_ns for s in spans) if e is not None]
        r["run_id"].append(run_id)
        r["name"].append(run.name)
        r["source"].append(str(run.metadata.get("source") or "") or None)
        r["source_file"].append(None if run.metadata.get("source_file") is None
                                else str(run.metadata.get("source_file")))
        r["ledger_file"].append(ledger_file)
        r["complete"].append(bool(run.complete))
        r["tags"].append(list(run.tags.items()))
        r["spans"].append(len(spans))
        r["llm_calls"].append(n_calls)
        r["input_tokens"].append(inp)
        r["output_tokens"].append(out)
        # like the run summary: unknown only when no call could be priced at all
        r["cost_usd"].append(usd_total if (n_calls - unpriced or not unpriced) else None)
        r["cost_cny"].append(cny_total if (n_calls - unpriced or not unpriced) else None)
        r["unpriced_calls"].append(unpriced)
        r["start_time"].append(_ts(run_start))
        r["end_time"].append(_ts(max(ends)) if ends else _ts(run.ended_wall_ns))
        r["day"].append(_day(run_start))
        if self.diagnose and n_calls:
            self._diagnose(run, _day(run_start))

    def _diagnose(self, run: Run, day: dt.date | None) -> None:
        """Prefix breaks of the run (the prompt-cache analysis the run report uses), one row each."""
        from tokprof.optimizers.prompt_cache import prefix_breaks

        try:
            breaks = prefix_breaks(run, "USD")
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not stop the ingest
            from tokprof.profiler.hooks import internal_error

            internal_error(f"fleet: prefix breaks of run {run.run_id}", exc)
            return
        d = self.cols["diagnostics"]
        for b in breaks:
            d["run_id"].append(run.run_id)
            d["kind"].append("prefix-break")
            d["cause"].append(b.cause)
            d["span_id"].append(b.span_id)
            d["model"].append(b.model)
            d["tokens_at_stake"].append(b.lost_tokens)
            d["cost_usd"].append(b.cost)
            d["day"].append(day)

    def add_runs(self, runs: Iterable[Run]) -> None:
        for run in runs:
            self.add_run(run)

    def tables(self) -> dict[str, pa.Table]:
        """The accumulated rows as Arrow tables (one per ledger table); the builder starts empty again."""
        out = {name: pa.table(cols, schema=TABLES[name]) for name, cols in self.cols.items()}
        self._reset()
        return out

    def pending_calls(self) -> int:
        return len(self.cols["calls"]["run_id"])
