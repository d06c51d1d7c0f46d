"""Runs that repeat a run already seen: their rows from a template, column by column (part of
:mod:`tokprof.fleet.rows`).

A fleet repeats runs: the same agent code replays the same calls (a benchmark's tasks, a resampled fleet,
a re-read file), and only the run's id, tags and start time differ. Such a run is recognised by its spans'
*signature* (everything :meth:`tokprof.fleet.rows.RowBuilder.add_run` reads from a span except its
wall-clock start: ids, parents, names, kinds, status, monotonic times, tags, attributes and the LLM call
object itself) and its rows are the template's columns, with the per-run parts filled in by C-level list
operations: run key, tag-set ids (the run's tags under each span's chain of own tags), start/end times.
Costs and payload hashes are the template's, so totals are exactly those of the full path.
"""

from __future__ import annotations

from operator import add, attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokprof.fleet.rows import RowBuilder
    from tokprof.profiler.model import Run

SIGNATURE = attrgetter("span_id", "parent_id", "kind", "name", "status", "start_ns", "end_ns", "tags",
                       "attributes", "llm")
"""What a span contributes to its rows apart from its wall-clock start (compared by identity first, so a
repeated span's check is cheap)."""
LLM = attrgetter("llm")
WALL = attrgetter("wall_start_ns")
MAX_TEMPLATES = 20_000
"""The templates are dropped past this many distinct runs (bounded memory for a fleet of distinct runs)."""


def template_key(spans: list[Any]) -> tuple[int, ...]:
    """The dict key of a run's template: the identities of its spans' call objects (None for other spans);
    the template keeps those objects alive, and :func:`matches` checks the rest."""
    return tuple(map(id, map(LLM, spans)))


class RunTemplate:
    """The rows of one run, as columns, minus what differs between copies."""

    __slots__ = ("sig", "durs", "all_end", "call_idx", "span_idx", "pick_calls", "pick_spans", "chain_set", "call_const", "span_const", "call_chains",
                 "span_chains", "costs", "prompts", "outputs", "batch", "slots", "totals", "tids")

    def __init__(self, spans: list[Any], durs: list[int | None], call_idx: list[int], span_idx: list[int],
                 ccols: list[Any], scols: list[Any], call_chains: list[int], span_chains: list[int],
                 costs: list[list[Any]], prompts: list[str | None], outputs: list[str | None], batch: int,
                 totals: tuple[Any, ...]) -> None:
        self.sig = list(map(SIGNATURE, spans))
        self.durs = durs  # per span, None where it has no end
        self.all_end = None not in durs
        self.call_idx, self.span_idx = call_idx, span_idx
        self.pick_calls, self.pick_spans = _picker(call_idx), _picker(span_idx)
        self.chain_set = sorted((set(call_chains) | set(span_chains)) - {0})
        # constant call columns: span_id, parent, place, kind, 6 usage columns, duration
        self.call_const = [list(ccols[i]) for i in (1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 17)]
        # constant span columns: span_id, parent, place, kind, name, status, duration
        self.span_const = [list(scols[i]) for i in (1, 2, 3, 5, 6, 7, 10)]
        self.call_chains, self.span_chains = call_chains, span_chains
        self.costs, self.prompts, self.outputs = costs, prompts, outputs
        self.batch = batch
        self.slots = (list(ccols[12]), list(ccols[13]), list(ccols[14]))  # this batch's cost / hash slots
        self.totals = totals  # (n_calls, unpriced, input, output, usd, cny)
        self.tids: dict[int, tuple[list[int], list[int]]] = {}  # root tags id -> (call tids, span tids)


def _picker(idx: list[int]) -> Any:
    """``f(seq)`` -> the items of ``seq`` at ``idx``, as a sequence (itemgetter, in C)."""
    if len(idx) == 1:
        i = idx[0]
        return lambda seq: (seq[i],)
    if not idx:
        return lambda seq: ()
    return itemgetter(*idx)


def matches(t: RunTemplate, spans: list[Any]) -> bool:
    return list(map(SIGNATURE, spans)) == t.sig


def _batch_slots(b: RowBuilder, t: RunTemplate) -> tuple[list[Any], list[Any], list[Any]]:
    """The template's cost and hash slots in the current batch (recomputed once per batch)."""
    batch = b._batch
    if t.batch != batch:
        costs = b._batch_costs
        for ce in t.costs:
            if ce[4] != batch:
                ce[4], ce[5] = batch, len(costs)
                costs.append(ce)
        get, new = b._hash_slot.get, b._new_slot
        t.slots = ([ce[5] for ce in t.costs],
                   [None if h is None else i if (i := get(h)) is not None else new(h) for h in t.prompts],
                   [None if h is None else i if (i := get(h)) is not None else new(h) for h in t.outputs])
        t.batch = batch
    return t.slots


def _tids(b: RowBuilder, t: RunTemplate, root: int) -> tuple[list[int], list[int]]:
    got = t.tids.get(root)
    if got is None:
        if len(t.tids) > 1000:
            t.tids.clear()
        tid = b.chain_tid
        of = {c: tid(root, c) for c in t.chain_set}
        of[0] = root
        get = of.__getitem__
        got = t.tids[root] = (list(map(get, t.call_chains)), list(map(get, t.span_chains)))
    return got


def add_copy(b: RowBuilder, run: Run, t: RunTemplate, ledger_file: str | None) -> None:
    """Add the rows of ``run``, a copy of the template's run."""
    spans = run.spans
    rk = b.dims.run_keys(1)
    root = b._tags(tuple(run.tags.items()))
    ws = list(map(WALL, spans))
    if t.all_end:
        ends: list[Any] = list(map(add, ws, t.durs))
    else:
        ends = [None if d is None else w + d for w, d in zip(ws, t.durs)]
    cost_i, pi, oi = _batch_slots(b, t)
    call_tids, span_tids = _tids(b, t, root)
    ci, si = t.call_idx, t.span_idx
    sid, pid, place, kind, u0, u1, u2, u3, u4, u5, dur = t.call_const
    n = len(ci)
    for col, vals in zip(b.call_cols, ([rk] * n, sid, pid, place, call_tids, kind, u0, u1, u2, u3, u4, u5, cost_i,
                                       pi, oi, t.pick_calls(ws), t.pick_calls(ends), dur)):
        col.extend(vals)
    if si:
        ssid, spid, splace, skind, sname, sstatus, sdur = t.span_const
        for col, vals in zip(b.span_cols, ([rk] * len(si), ssid, spid, splace, span_tids, skind, sname, sstatus,
                                           t.pick_spans(ws), t.pick_spans(ends), sdur)):
            col.extend(vals)
    n_calls, unpriced, inp, out, usd, cny = t.totals
    b.n_calls += n_calls
    run_start = min(ws) if ws else run.started_wall_ns
    real_ends = [e for e in ends if e is not None] if not t.all_end else ends
    run_end = max(real_ends) if real_ends else run.ended_wall_ns
    b.run_row(run, rk, ledger_file, n_calls, unpriced, inp, out, usd, cny, run_start, run_end)
