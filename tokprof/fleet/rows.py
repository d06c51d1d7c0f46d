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
import pyarrow.compute as pc

from tokprof.fleet.schema import CALLS, SPANS, TABLES, TAGS, USAGE_COLUMNS
from tokprof.profiler.accounting import span_cost
from tokprof.profiler.model import Run, Span
from tokprof.profiler.store import _json_default  # the run store's canonical JSON, so hashes match payload_id

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1)
UNIQUES_BOUND = 200_000
"""Past this many unique places/tags/call keys/costs the lists are dropped at the next batch (bounded memory);
they hold no payloads, so until then they live across batches (a fleet repeats them)."""
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


def _times(ns: list[int | None]) -> pa.Array:
    """Wall-clock nanoseconds -> TIMESTAMP (microseconds), in Arrow."""
    us = pc.divide(pa.array(ns, pa.int64()), 1000)
    return us.cast(pa.timestamp("us"))


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
        """Empty the row columns (after :meth:`tables`). The unique lists the rows index into, and the
        memos, live on across batches (a fleet repeats them), until they grow past a bound."""
        # Per call and per span only what varies is appended; what repeats (the run, the span's place in
        # the tree with its tags, the model/provider/cost/sources of a usage) is an index into a small
        # list of unique tuples, expanded with Arrow ``take`` in :meth:`tables`.
        self.cols: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in schema} for name, schema in TABLES.items() if name not in ("calls", "spans")
        }
        self.span_cols: dict[str, list[Any]] = {k: [] for k in (
            "run", "ctx", "span_id", "parent_id", "kind", "name", "status", "start", "end", "duration")}
        self.call_cols: dict[str, list[Any]] = {k: [] for k in (
            "run", "ctx", "key", "span_id", "parent_id", "input", "output", "cache_read", "cache_write",
            "cache_write_1h", "reasoning", "prompt_hash", "output_hash", "start", "end", "duration")}
        self._run_ids: list[str] = []
        if len(getattr(self, "_seen_messages", ())) > 1_000_000:
            # forgetting what was emitted is safe at a batch boundary: the ledger inserts only new hashes
            self._seen_messages.clear()
            self._seen_prompts.clear()
        # Memos by object id keep their objects alive, so they live for one batch only: a fleet's payloads
        # must not pile up in memory.
        self._msg_memo.clear()  # id(message) -> (message, hash)
        self._prompt_memo: dict[int, tuple[Any, str, int]] = {}
        self._call_memo: dict[int, tuple[Any, int, str]] = {}  # id(LLMCall) -> (call kept alive, key, status)
        if getattr(self, "_uniques", 0) and self._uniques_size() < UNIQUES_BOUND:
            return
        self._uniques = 1
        self._ctxs: list[tuple[Any, ...]] = []       # (path, depth, tags index, agent, function, tool)
        self._ctx_index: dict[tuple[Any, ...], int] = {}
        self._tags: list[dict[str, str]] = []
        self._tags_index: dict[tuple[tuple[str, str], ...], int] = {}
        self._keys: list[tuple[Any, ...]] = []       # (model, provider, cost index, sources..., cache status, status)
        self._key_index: dict[tuple[Any, ...], int] = {}
        self._costs: list[tuple[Any, Any, str, str]] = []
        self._cost_index: dict[tuple[Any, ...], int] = {}

    def _uniques_size(self) -> int:
        return len(self._ctxs) + len(self._tags) + len(self._keys) + len(self._costs)

    def _tags_idx(self, tags: dict[str, str]) -> int:
        key = tuple(tags.items())
        i = self._tags_index.get(key)
        if i is None:
            i = self._tags_index[key] = len(self._tags)
            self._tags.append(dict(tags))
        return i

    def _ctx_idx(self, ctx: tuple[Any, ...]) -> int:
        i = self._ctx_index.get(ctx)
        if i is None:
            i = self._ctx_index[ctx] = len(self._ctxs)
            self._ctxs.append(ctx)
        return i

    # ---- per call ---------------------------------------------------------------------------------
    def _call_key(self, span: Span) -> int:
        """Index of the call's (model, provider, cost index, token sources, cache status, status)."""
        call = span.llm
        assert call is not None
        memo = self._call_memo.get(id(call))
        if memo is not None and memo[0] is call and memo[2] == span.status:
            return memo[1]
        u = call.usage
        rec = call.cost
        srcs = u.sources
        key = (call.model, call.provider, u.input_tokens, u.output_tokens, u.cache_read_tokens,
               u.cache_write_tokens, u.cache_write_1h_tokens, u.reasoning_tokens, tuple(srcs.items()),
               None if rec is None else (rec.amount, rec.currency, rec.source), span.status)
        idx = self._key_index.get(key)
        if idx is None:
            idx = self._key_index[key] = len(self._keys)
            get = srcs.get
            self._keys.append((call.model, call.provider, self._cost(span, key[2:10]),
                               *(get(f) for f in _USAGE_FIELDS), cache_status(span), span.status))
        self._call_memo[id(call)] = (call, idx, span.status)
        return idx

    def _cost(self, span: Span, key: tuple[Any, ...]) -> int:
        """Index of the call's (usd, cny, currency, source) in this batch's unique costs."""
        call = span.llm
        assert call is not None
        rec = call.cost
        key = (call.model, *key)
        idx = self._cost_index.get(key)
        if idx is not None:
            return idx
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
            if len(self._cost_memo) > 200_000:  # a pure-function memo; bounded
                self._cost_memo.clear()
            self._cost_memo[key] = hit
        idx = self._cost_index[key] = len(self._costs)
        self._costs.append(hit)
        return idx

    def _message_hash(self, m: Any) -> str:
        memo = self._msg_memo.get(id(m))
        if memo is not None and memo[0] is m:
            return memo[1]
        # the run store's content address (tokprof.profiler.store.payload_id): sha1 of the canonical JSON,
        # which is also what is stored
        text = json.dumps(m, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default)
        h = hashlib.sha1(text.encode("utf-8")).hexdigest()
        self._msg_memo[id(m)] = (m, h)
        if h not in self._seen_messages:
            self._seen_messages.add(h)
            cols = self.cols["messages"]
            cols["hash"].append(h)
            role = m.get("role") if isinstance(m, dict) else None
            cols["role"].append(None if role is None else str(role))
            cols["content"].append(text)
            cols["chars"].append(len(text))
        return h

    def _prompt_hash(self, messages: list[Any]) -> str | None:
        if not messages:
            return None
        memo = self._prompt_memo.get(id(messages))
        if memo is not None and memo[0] is messages and len(messages) == memo[2]:
            return memo[1]
        ph = self._prompt_hash_of(messages)
        self._prompt_memo[id(messages)] = (messages, ph, len(messages))
        return ph

    def _prompt_hash_of(self, messages: list[Any]) -> str:
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
        index = {sp.span_id: sp for sp in spans}
        # span id -> (path, depth, tags, tags index, agent, function, tool *below* the span, ctx index)
        info: dict[str, tuple[Any, ...]] = {}
        run_tags = dict(run.tags)
        run_tags_idx = self._tags_idx(run_tags)

        def resolve(sp: Span) -> tuple[Any, ...]:
            """The span's place: path (names from the root, '/'-joined), depth, tags in force, and what its
            children run under. Parents are usually resolved first (start order); otherwise climb
            iteratively (a deep or cyclic parent chain in a damaged file cannot recurse without bound)."""
            got = info.get(sp.span_id)
            if got is not None:
                return got
            pid = sp.parent_id
            if pid is None or pid in info or pid not in index:
                chain = [sp]  # the usual case: the parent is known (or absent): no climbing
                base = info.get(pid) if pid is not None else None
                return place(chain, base)
            chain = []
            seen: set[str] = set()
            cur: Span | None = sp
            while cur is not None and cur.span_id not in info and cur.span_id not in seen:
                seen.add(cur.span_id)
                chain.append(cur)
                cur = index.get(cur.parent_id) if cur.parent_id is not None else None
            return place(chain, info.get(cur.span_id) if cur is not None else None)

        def place(chain: list[Span], base: tuple[Any, ...] | None) -> tuple[Any, ...]:
            """Resolve ``chain`` (child first) from ``base``, the place of the first span's parent."""
            for x in reversed(chain):
                if base is None:
                    path, depth, tags, ti, a, f, t = x.name, 0, run_tags, run_tags_idx, None, None, None
                else:
                    path, depth, tags, ti, a, f, t = f"{base[0]}/{x.name}", base[1] + 1, base[2], base[3], \
                        base[4], base[5], base[6]
                if x.tags:
                    tags = {**tags, **x.tags}
                    ti = self._tags_idx(tags)
                ctx = self._ctx_idx((path, depth, ti, a, f, t))  # what x itself runs under
                k = x.kind
                if k == "agent":
                    a = x.name
                elif k in ("function", "chain", "retriever"):
                    f = x.name
                elif k == "tool":
                    t = x.name
                base = info[x.span_id] = (path, depth, tags, ti, a, f, t, ctx)
            return base  # type: ignore[return-value]

        ri = len(self._run_ids)
        self._run_ids.append(run.run_id)
        sc = self.span_cols
        s_run, s_ctx, s_id, s_pid = sc["run"].append, sc["ctx"].append, sc["span_id"].append, sc["parent_id"].append
        s_kind, s_name, s_status = sc["kind"].append, sc["name"].append, sc["status"].append
        s_start, s_end, s_dur = sc["start"].append, sc["end"].append, sc["duration"].append
        cc = self.call_cols
        c_run, c_ctx, c_key, c_id, c_pid = (cc["run"].append, cc["ctx"].append, cc["key"].append,
                                            cc["span_id"].append, cc["parent_id"].append)
        c_in, c_out, c_cr, c_cw, c_cw1, c_rs = (cc["input"].append, cc["output"].append, cc["cache_read"].append,
                                                cc["cache_write"].append, cc["cache_write_1h"].append,
                                                cc["reasoning"].append)
        c_ph, c_oh = cc["prompt_hash"].append, cc["output_hash"].append
        c_start, c_end, c_dur = cc["start"].append, cc["end"].append, cc["duration"].append
        payloads = self.payloads
        costs = self._costs
        n_calls = unpriced = 0
        inp = out = 0
        usd_total: Decimal = _ZERO
        cny_total: Decimal = _ZERO
        run_start: int | None = None
        run_end: int | None = None
        for sp in spans:  # any order: resolve() climbs to parents not yet seen
            ctx = resolve(sp)[7]  # path, tags, and the agent/function/tool the span runs under
            start_ns = sp.wall_start_ns
            if run_start is None or start_ns < run_start:
                run_start = start_ns
            if sp.end_ns is None:
                end_ns = None
                duration = 0
            else:
                duration = sp.end_ns - sp.start_ns
                end_ns = start_ns + duration
                if run_end is None or end_ns > run_end:
                    run_end = end_ns
            call = sp.llm
            if call is None:
                # LLM spans are the rows of ``calls``; ``spans`` holds the rest (not stored twice)
                s_run(ri)
                s_ctx(ctx)
                s_id(sp.span_id)
                s_pid(sp.parent_id)
                s_kind(sp.kind)
                s_name(sp.name)
                s_status(sp.status)
                s_start(start_ns)
                s_end(end_ns)
                s_dur(duration)
                continue
            n_calls += 1
            u = call.usage
            key = self._call_key(sp)
            usd, cny = costs[self._keys[key][2]][:2]
            if usd is None:
                unpriced += 1
            else:
                usd_total += usd
                cny_total += cny if cny is not None else _ZERO
            inp += u.input_tokens
            out += u.output_tokens
            c_run(ri)
            c_ctx(ctx)
            c_key(key)
            c_id(sp.span_id)
            c_pid(sp.parent_id)
            c_in(u.input_tokens)
            c_out(u.output_tokens)
            c_cr(u.cache_read_tokens)
            c_cw(u.cache_write_tokens)
            c_cw1(u.cache_write_1h_tokens)
            c_rs(u.reasoning_tokens)
            if payloads:
                c_ph(self._prompt_hash(call.messages))
                c_oh(None if call.output is None else self._message_hash(call.output))
            else:
                c_ph(None)
                c_oh(None)
            c_start(start_ns)
            c_end(end_ns)
            c_dur(duration)
        self.n_calls += n_calls
        if run_start is None:
            run_start = run.started_wall_ns
        if run_end is None:
            run_end = run.ended_wall_ns
        r = self.cols["runs"]
        r["run_id"].append(run.run_id)
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
        r["end_time"].append(_ts(run_end))
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
        """The accumulated rows as Arrow tables (one per ledger table); the builder starts empty again.

        Repeated values are expanded with Arrow ``take`` from the batch's unique runs, places, tags and
        call keys; times come from integer nanoseconds and the day from the time, all in Arrow."""
        out = {name: pa.table(cols, schema=TABLES[name]) for name, cols in self.cols.items()}
        run_ids = pa.array(self._run_ids, pa.string())
        tags = pa.array([list(t.items()) for t in self._tags], TAGS)
        ctx = list(zip(*self._ctxs)) if self._ctxs else [()] * 6
        ctx_cols = {"path": pa.array(ctx[0], pa.string()), "depth": pa.array(ctx[1], pa.int32()),
                    "tags": tags.take(pa.array(ctx[2], pa.int32())) if self._ctxs else pa.array([], TAGS),
                    "agent": pa.array(ctx[3], pa.string()), "function": pa.array(ctx[4], pa.string()),
                    "tool": pa.array(ctx[5], pa.string())}

        def common(cols: dict[str, list[Any]]) -> dict[str, Any]:
            start = _times(cols["start"])
            ci = pa.array(cols["ctx"], pa.int32())
            return {"run_id": run_ids.take(pa.array(cols["run"], pa.int32())),
                    "span_id": pa.array(cols["span_id"], pa.string()),
                    "parent_id": pa.array(cols["parent_id"], pa.string()),
                    **{k: v.take(ci) for k, v in ctx_cols.items()},
                    "start_time": start, "end_time": _times(cols["end"]), "day": pc.cast(start, pa.date32()),
                    "duration_ns": pa.array(cols["duration"], pa.int64())}

        sc = self.span_cols
        d = common(sc)
        d.update(kind=pa.array(sc["kind"], pa.string()), name=pa.array(sc["name"], pa.string()),
                 status=pa.array(sc["status"], pa.string()))
        out["spans"] = pa.Table.from_arrays([d[f.name] for f in SPANS], schema=SPANS)
        cc = self.call_cols
        d = common(cc)
        ki = pa.array(cc["key"], pa.int32())
        keys = list(zip(*self._keys)) if self._keys else [()] * (3 + len(USAGE_COLUMNS) + 2)
        cost_i = pa.array(keys[2], pa.int32()).take(ki)
        costs = list(zip(*self._costs)) if self._costs else [()] * 4
        for i, col in enumerate(("cost_usd", "cost_cny", "currency", "cost_source")):
            d[col] = pa.array(costs[i], CALLS.field(col).type).take(cost_i)
        d["model"] = pa.array(keys[0], pa.string()).take(ki)
        d["provider"] = pa.array(keys[1], pa.string()).take(ki)
        for j, u in enumerate(USAGE_COLUMNS):
            d[f"{u}_source"] = pa.array(keys[3 + j], pa.string()).take(ki)
            d[f"{u}_tokens"] = pa.array(cc[u], pa.int64())
        d["cache_status"] = pa.array(keys[3 + len(USAGE_COLUMNS)], pa.string()).take(ki)
        d["status"] = pa.array(keys[4 + len(USAGE_COLUMNS)], pa.string()).take(ki)
        d["prompt_hash"] = pa.array(cc["prompt_hash"], pa.string())
        d["output_hash"] = pa.array(cc["output_hash"], pa.string())
        out["calls"] = pa.Table.from_arrays([d[f.name] for f in CALLS], schema=CALLS)
        self._reset()
        return out

    def pending_calls(self) -> int:
        return len(self.call_cols["span_id"])
