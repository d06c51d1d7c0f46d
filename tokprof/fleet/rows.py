"""Runs -> columnar rows of the fleet ledger (see :mod:`tokprof.fleet.schema`).

The hot path of ``tokprof ingest``: a fleet of a million calls goes through :meth:`RowBuilder.add_run` span
by span, so it does as little per span as Python allows and leaves the rest to Arrow and DuckDB:

* a run seen before (same spans and call objects: a repeated or resampled run) gets its rows from a
  template, column by column (:mod:`tokprof.fleet.copies`); a new run's rows are tuples, transposed per run
  in C into the batch's columns;
* what repeats is an integer: the run (``run_key``), the span's place in the tree (``place_id``: path, the
  agent/function/tool above it, tags in force) and the call's kind (``kind_id``: model, provider, token
  sources, currency, cost source, cache status, status), ids handed out by :class:`tokprof.fleet.dims.Dims`;
* a place is found by one dict look-up keyed on (parent's place, name, kind, span tags): the path string is
  built once per distinct place, not once per span;
* costs come from the one cost function, memoised (:mod:`tokprof.fleet.costs`); per batch each distinct
  cost is converted to Arrow once and expanded with ``take``;
* message hashes are the run store's content address (sha1 of canonical JSON), computed once per message
  object and stored once per hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from tokprof.fleet.copies import MAX_TEMPLATES, RunTemplate, add_copy, matches, template_key
from tokprof.fleet.costs import CostMemo, PaidOverrides, cache_status, native_currency
from tokprof.fleet.dims import Dims
from tokprof.fleet.places import PlaceTree
from tokprof.fleet.schema import (CALL_FACTS, MONEY, RUNS, SPAN_FACTS, TABLES, USAGE_COLUMNS, arrow_array, facts_table,
                                  time_cols, times)
from tokprof.profiler.accounting import cost_source
from tokprof.profiler.model import Run, Span
from tokprof.profiler.run_lines import canonical_json  # the run store's canonical JSON: hashes match payload_id

MEMO_CHARS = 32_000_000
"""The message-hash memo is dropped at a batch boundary past this much message JSON (bounded memory)."""
MEMO_PROMPTS = 100_000
_EPOCH_DAY = dt.date(1970, 1, 1)
_PAYLOAD_POOL = pa.system_memory_pool()
_ZERO = Decimal(0)
_SOURCE_FIELDS = tuple(f"{u}_tokens" for u in USAGE_COLUMNS)


def _day(ns: int | None) -> dt.date | None:
    return None if ns is None else _EPOCH_DAY + dt.timedelta(days=ns // 86_400_000_000_000)


class RowBuilder(PlaceTree):
    """Accumulates the rows of many runs; :meth:`tables` hands them over as Arrow tables and resets.

    ``dims``: where place/kind ids and run keys come from (the ledger's, or a Ray worker's own);
    ``diagnose``: also run the prompt-cache prefix-break analysis per run (the ``diagnostics`` table);
    ``payloads``: also store messages and prompts (off for a usage-only ledger)."""

    def __init__(self, *, diagnose: bool = True, payloads: bool = True, dims: Dims | None = None) -> None:
        self.diagnose = diagnose
        self.payloads = payloads
        self.dims = dims if dims is not None else Dims()
        self.costs = CostMemo()
        self.paid = PaidOverrides()
        self.n_calls = 0
        self._batch = 0
        PlaceTree.__init__(self, self.dims)
        self._seen_messages: set[str] = set()
        self._seen_prompts: set[str] = set()
        self._msg_memo: dict[int, tuple[Any, str]] = {}
        self._prompt_memo: dict[int, tuple[Any, str, int]] = {}
        self._memo_chars = 0
        self._templates: dict[tuple[int, ...], RunTemplate] = {}  # repeated runs (tokprof.fleet.copies)
        self._reset()

    def _reset(self) -> None:
        """Empty the rows (after :meth:`tables`). Memos by object id keep their objects alive (which is what
        makes an id a safe key), so the call memo lives for one batch and the message/prompt memos until they
        hold :data:`MEMO_CHARS` of message text: a fleet's payloads must not pile up in memory, but hashing a
        message again (canonical JSON + sha1) costs more than the row it is for."""
        self.cols: dict[str, dict[str, list[Any]]] = {
            name: {f.name: [] for f in TABLES[name]} for name in ("messages", "prompts", "diagnostics")}
        self.run_rows: list[tuple[Any, ...]] = []
        self.span_cols: list[list[Any]] = [[] for _ in range(11)]  # span_facts, column by column
        self.call_cols: list[list[Any]] = [[] for _ in range(18)]  # call_facts, column by column
        self._batch_costs: list[list[Any]] = []
        # prompt and output hashes of the batch: each distinct one converted to Arrow once, expanded by take
        self._hash_slot: dict[str, int] = {}
        self._batch_hashes: list[str] = []
        self._batch += 1
        if len(self._seen_messages) > 1_000_000:
            # forgetting what was emitted is safe at a batch boundary: the ledger inserts only new hashes
            self._seen_messages.clear()
            self._seen_prompts.clear()
        if self._memo_chars > MEMO_CHARS or len(self._prompt_memo) > MEMO_PROMPTS:
            self._msg_memo.clear()
            self._prompt_memo.clear()
            self._memo_chars = 0
        self._call_memo: dict[int, tuple[Any, str, int, list[Any]]] = {}  # id(call) -> (call, status, kind, cost)
        self._paid_memo: dict[int, tuple[Any, str, int, list[Any]]] = {}  # id(paid pair) -> (pair, status, kind, cost)

    # ---- payloads ---------------------------------------------------------------------------------------
    def _message_hash(self, m: Any) -> str:
        memo = self._msg_memo.get(id(m))
        if memo is not None and memo[0] is m:
            return memo[1]
        # the run store's content address (tokprof.profiler.store.payload_id): sha1 of the canonical JSON,
        # which is also what is stored
        text = canonical_json(m)
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (JSON allows "\ud800"): hashed as the store does, kept escaped
            data = text.encode("utf-8", "surrogatepass")
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
        h = hashlib.sha1(data).hexdigest()
        self._msg_memo[id(m)] = (m, h)
        self._memo_chars += len(text)
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
        get, message_hash = self._msg_memo.get, self._message_hash
        hashes = [mm[1] if (mm := get(id(m))) is not None and mm[0] is m else message_hash(m) for m in messages]
        ph = hashlib.sha1("\n".join(hashes).encode()).hexdigest()
        if ph not in self._seen_prompts:
            self._seen_prompts.add(ph)
            self.cols["prompts"]["prompt_hash"].append(ph)
            self.cols["prompts"]["message_hashes"].append(hashes)
        self._prompt_memo[id(messages)] = (messages, ph, len(messages))
        return ph

    def _new_slot(self, h: str) -> int:
        i = self._hash_slot[h] = len(self._batch_hashes)
        self._batch_hashes.append(h)
        return i

    # ---- per call ---------------------------------------------------------------------------------------
    def _kind_and_cost(self, sp: Span) -> tuple[int, list[Any]]:
        """The call's kind id and its cost memo entry."""
        call = sp.llm
        assert call is not None
        memo = self._call_memo.get(id(call))
        if memo is not None and memo[0] is call and memo[1] == sp.status:
            return memo[2], memo[3]
        ce = self.costs.get(sp)
        kind = self._kind(sp, ce[2], ce[3])
        self._call_memo[id(call)] = (call, sp.status, kind, ce)
        return kind, ce

    def _kind(self, sp: Span, currency: str, source: str) -> int:
        call = sp.llm
        assert call is not None
        get = call.usage.sources.get
        return self.dims.kind_id((call.model, call.provider, *(get(f) for f in _SOURCE_FIELDS),
                                  currency, source, cache_status(sp), sp.status))

    def _paid_cost(self, sp: Span, paid: tuple[Decimal | None, Decimal | None]) -> tuple[int, list[Any]]:
        """A call billed by simulated automatic caching: its own kind (source ``simulated``) and cost entry,
        memoised on the paid pair (the same object for every resampled copy of the run). Its own priced cost
        is not needed, only its currency."""
        memo = self._paid_memo.get(id(paid))
        if memo is not None and memo[0] is paid and memo[1] == sp.status:
            return memo[2], memo[3]
        native = native_currency(sp.llm)
        # the kind the call would have had priced on its own is registered first, as it always was: the
        # ledger's kind ids (and rows) do not depend on whether a call's own cost was needed
        self._kind(sp, native, cost_source(sp, "USD") or "unknown")
        kind, entry = self._kind(sp, native, "simulated"), [paid[0], paid[1], native, "simulated", -1, -1]
        self._paid_memo[id(paid)] = (paid, sp.status, kind, entry)
        return kind, entry

    # ---- per run ----------------------------------------------------------------------------------------
    def add_run(self, run: Run, ledger_file: str | None = None) -> None:
        """Add every row of ``run``."""
        spans = run.spans
        tkey = template_key(spans)
        t = self._templates.get(tkey)
        if t is not None and matches(t, spans):  # a copy of a run seen before: its rows column by column
            add_copy(self, run, t, ledger_file)
            return
        index: dict[str, Span] | None = None
        # span id -> (its base, tags id, own-tags chain id): what its children hang under
        info: dict[str, tuple[int, int, int]] = {}
        root = (0, self._tags(tuple(run.tags.items())), 0)
        rk = self.dims.run_keys(1)
        steps, step = self._steps, self._step
        span_rows: list[tuple[Any, ...]] = []
        call_rows: list[tuple[Any, ...]] = []
        span_row, call_row = span_rows.append, call_rows.append
        call_idx: list[int] = []
        span_idx: list[int] = []
        call_chains: list[int] = []
        span_chains: list[int] = []
        durs: list[int | None] = []
        costs: list[list[Any]] = []
        prompts: list[str | None] = []
        outputs: list[str | None] = []
        kind_and_cost, call_memo = self._kind_and_cost, self._call_memo.get
        prompt_hash, prompt_memo, message_hash = self._prompt_hash, self._prompt_memo.get, self._message_hash
        msg_memo, tag_steps = self._msg_memo.get, self._tag_steps.get
        batch, batch_costs = self._batch, self._batch_costs
        payloads = self.payloads
        slots = self._hash_slot
        hash_slot, new_slot = slots.get, self._new_slot
        paid = self.paid.get(run)
        paid_memo = self._paid_memo.get
        n_calls = unpriced = inp = out = 0
        usd_total: Decimal = _ZERO
        cny_total: Decimal = _ZERO
        run_start: int | None = None
        run_end: int | None = None
        for si, sp in enumerate(spans):  # any order: a parent seen later is found by climbing
            pid = sp.parent_id
            if pid is None:
                base, tid, cid = root
            else:
                got = info.get(pid)
                if got is None:
                    if index is None:
                        index = {s.span_id: s for s in spans}
                    got = self._climb(sp, index, info, root) if pid in index else root
                base, tid, cid = got
            key = (base, sp.name, sp.kind)
            place, base = steps.get(key) or step(key)
            st = sp.tags
            if st:  # its own tags: the parent's overridden by them (memoised on both)
                tid = tag_steps(((tid, tuple(st.items())))) or self._span_tags(tid, st)
                cid = self.chain_step(cid, st)
            info[sp.span_id] = (base, tid, cid)
            start = sp.wall_start_ns
            if run_start is None or start < run_start:
                run_start = start
            if sp.end_ns is None:
                end = None
                dur = 0
                durs.append(None)
            else:
                dur = sp.end_ns - sp.start_ns
                end = start + dur
                durs.append(dur)
                if run_end is None or end > run_end:
                    run_end = end
            call = sp.llm
            if call is None:
                # LLM spans are the rows of call_facts; span_facts holds the rest (not stored twice)
                span_row((rk, sp.span_id, pid, place, tid, sp.kind, sp.name, sp.status, start, end, dur))
                span_idx.append(si)
                span_chains.append(cid)
                continue
            call_idx.append(si)
            call_chains.append(cid)
            n_calls += 1
            if paid is not None and (pv := paid.get(sp.span_id)) is not None:  # billed as paid: simulated caching
                pd = paid_memo(id(pv))
                if pd is not None and pd[0] is pv and pd[1] == sp.status:
                    kind, ce = pd[2], pd[3]
                else:
                    kind, ce = self._paid_cost(sp, pv)
            elif (memo := call_memo(id(call))) is not None and memo[0] is call and memo[1] == sp.status:
                kind, ce = memo[2], memo[3]  # the same call object seen again (a resampled or re-read run)
            else:
                kind, ce = kind_and_cost(sp)
            if ce[4] != batch:  # first use of this cost in the batch: one Arrow value, expanded by take
                ce[4], ce[5] = batch, len(batch_costs)
                batch_costs.append(ce)
            costs.append(ce)
            if ce[0] is None:
                unpriced += 1
            else:
                usd_total += ce[0]
                if ce[1] is not None:
                    cny_total += ce[1]
            u = call.usage
            inp += u.input_tokens
            out += u.output_tokens
            if payloads:
                msgs = call.messages
                pm = prompt_memo(id(msgs)) if msgs else None
                ph = pm[1] if pm is not None and pm[0] is msgs and pm[2] == len(msgs) else prompt_hash(msgs)
                o = call.output
                mm = None if o is None else msg_memo(id(o))
                oh = None if o is None else mm[1] if mm is not None and mm[0] is o else message_hash(o)
                # the batch's slot of each hash (see tables)
                pi = None if ph is None else i if (i := hash_slot(ph)) is not None else new_slot(ph)
                oi = None if oh is None else i if (i := hash_slot(oh)) is not None else new_slot(oh)
            else:
                ph = oh = pi = oi = None
            prompts.append(ph)
            outputs.append(oh)
            call_row((rk, sp.span_id, pid, place, tid, kind, u.input_tokens, u.output_tokens, u.cache_read_tokens,
                      u.cache_write_tokens, u.cache_write_1h_tokens, u.reasoning_tokens, ce[5], pi, oi,
                      start, end, dur))
        self.n_calls += n_calls
        ccols = list(zip(*call_rows)) if call_rows else [()] * 18
        scols = list(zip(*span_rows)) if span_rows else [()] * 11
        for col, vals in zip(self.call_cols, ccols):
            col.extend(vals)
        for col, vals in zip(self.span_cols, scols):
            col.extend(vals)
        if len(self._templates) > MAX_TEMPLATES:
            self._templates.clear()
        self._templates[tkey] = RunTemplate(spans, durs, call_idx, span_idx, ccols, scols, call_chains, span_chains,
                                            costs, prompts, outputs, batch,
                                            (n_calls, unpriced, inp, out, usd_total, cny_total))
        self.run_row(run, rk, ledger_file, n_calls, unpriced, inp, out, usd_total, cny_total,
                     run.started_wall_ns if run_start is None else run_start,
                     run.ended_wall_ns if run_end is None else run_end)

    def run_row(self, run: Run, rk: int, ledger_file: str | None, n_calls: int, unpriced: int, inp: int, out: int,
                usd: Decimal, cny: Decimal, run_start: int | None, run_end: int | None) -> None:
        """The run's row of ``runs`` (and its diagnostics)."""
        meta = run.metadata
        # like the run summary: the cost is unknown only when no call could be priced at all
        priced = n_calls - unpriced or not unpriced
        self.run_rows.append((rk, run.run_id, run.name, str(meta.get("source") or "") or None,
                              None if meta.get("source_file") is None else str(meta.get("source_file")),
                              ledger_file, bool(run.complete), list(run.tags.items()), len(run.spans), n_calls, inp,
                              out, usd if priced else None, cny if priced else None, unpriced,
                              run_start, run_end))
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

    # ---- to Arrow ---------------------------------------------------------------------------------------
    def tables(self) -> dict[str, pa.Table]:
        """The accumulated rows as Arrow tables (the ledger's stored tables, new dimension rows included);
        the builder starts empty again."""
        # payloads (megabytes of message text) go through the system allocator: a batch's arrays live only
        # until DuckDB has copied them, and malloc reuses the pages Python just freed where Arrow's default
        # pool maps fresh ones (measured on the corpus's batch: 0.10 s every time vs 0.14-0.45 s)
        out = {name: pa.Table.from_arrays([arrow_array(cols[f.name], f.type, _PAYLOAD_POOL)
                                           for f in TABLES[name]], schema=TABLES[name])
               for name, cols in self.cols.items()}
        out.update(self.dims.new_rows())
        runs = list(zip(*self.run_rows)) if self.run_rows else [()] * 17
        start = times(runs[15])
        out["runs"] = pa.Table.from_arrays([arrow_array(runs[i], RUNS.field(i).type) for i in range(15)]
                                           + [start, times(runs[16]), pc.cast(start, pa.date32())], schema=RUNS)
        out["span_facts"] = facts_table(self.span_cols, SPAN_FACTS, 8)
        calls = self.call_cols
        cost_i = pa.array(calls[12], pa.int32())
        usd = pa.array([c[0] for c in self._batch_costs], MONEY).take(cost_i)
        cny = pa.array([c[1] for c in self._batch_costs], MONEY).take(cost_i)
        cols = [arrow_array(calls[i], CALL_FACTS.field(i).type) for i in range(6)]
        cols += [pa.array(calls[6 + j], pa.int64()) for j in range(len(USAGE_COLUMNS))]
        hashes = arrow_array(self._batch_hashes, pa.string())
        cols += [usd, cny, hashes.take(pa.array(calls[13], pa.int32())), hashes.take(pa.array(calls[14], pa.int32()))]
        cols += time_cols(calls[15], calls[16], calls[17])
        out["call_facts"] = pa.Table.from_arrays(cols, schema=CALL_FACTS)
        self._reset()
        return out

    def pending_calls(self) -> int:
        return len(self.call_cols[0])
