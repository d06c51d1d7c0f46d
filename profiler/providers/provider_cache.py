"""The provider's prompt cache as the simulator keeps it: cached unit sequences and their entries.

One :class:`ProviderCache` is one provider account's cache (per model); automatic caching keys every block
boundary of a sequence by its block hash, explicit caching keys only breakpoint positions. The simulator
that feeds it calls in time order is :mod:`tokprof.profiler.providers.cache_sim`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokprof.profiler.providers.prompt_units import BLOCK_UNITS, block_hashes


@dataclass
class _Seq:
    """A unit sequence some call left in the cache, with recorded-token anchors (unit pos, tokens)."""

    units: list[int]
    anchors: list[tuple[int, int]]
    blocks: list[int] | None = None
    """Block hashes of ``units`` when known (computed once per call, see :meth:`Simulator._seq`)."""

    def tokens_at(self, pos: int) -> int:
        """Recorded tokens of ``units[:pos]``: exact at anchors, linear between them."""
        prev_u, prev_t = 0, 0
        for u, t in self.anchors:
            if pos <= u:
                if u == prev_u:
                    return t
                return prev_t + (t - prev_t) * (pos - prev_u) // (u - prev_u)
            prev_u, prev_t = u, t
        # past the last anchor: one token per unit
        return prev_t + (pos - prev_u)


@dataclass
class _Entry:
    seq: _Seq
    pos: int
    last_used_ns: int
    ttl_ns: int

    def alive(self, now_ns: int) -> bool:
        return now_ns - self.last_used_ns <= self.ttl_ns


@dataclass
class ProviderCache:
    """The cache of one provider account, per model (cached prefixes are never shared across models)."""

    blocks: dict[str | None, dict[int, _Entry]] = field(default_factory=dict)
    """model -> block hash -> entry, for automatic caching (every block boundary is cached). One insert
    shares one entry among all its blocks (what a block's entry says: which sequence owns it, when it was
    last used, its TTL; all the same for the blocks of one insert), so an insert is one C-level update."""
    points: dict[tuple[str, int], _Entry] = field(default_factory=dict)
    """(model, prefix key) -> entry, for explicit breakpoints (only breakpoint positions are cached)."""

    # -- automatic --------------------------------------------------------------------------------
    def match_automatic(self, model: str, units: list[int], blocks: list[int], now_ns: int,
                        refresh: bool) -> tuple[int, _Entry | None]:
        """Longest live cached prefix of ``units``: (units matched, entry holding it). ``refresh``: the
        matched blocks (only those) are used again at ``now_ns``."""
        get = (self.blocks.get(model) or {}).get
        best: _Entry | None = None
        n = 0
        for h in blocks[1:]:
            e = get(h)
            if e is None:
                break
            if e is not best:  # blocks of one insert share an entry: check each entry once
                if now_ns - e.last_used_ns > e.ttl_ns:  # _Entry.alive, inlined: the hot loop
                    break
                best = e
            n += 1
        matched = n * BLOCK_UNITS
        # refine inside the next block against the sequence that owns the matched prefix
        cand = best.seq if best is not None else None
        if cand is None:
            return 0, None
        i = matched
        limit = min(len(units), len(cand.units))
        while i < limit and units[i] == cand.units[i]:
            i += 1
        if refresh:
            # the matched blocks get entries of their own with the new time; blocks past the match that
            # shared an entry with them keep theirs, as if every block had its own entry
            store = self.blocks[model]
            fresh: dict[int, tuple[_Entry, _Entry]] = {}
            for h in blocks[1:n + 1]:
                e = store[h]
                got = fresh.get(id(e))
                if got is None:  # (the old entry is kept in the pair: its id stays its own)
                    got = fresh[id(e)] = (e, _Entry(e.seq, e.pos, now_ns, e.ttl_ns))
                store[h] = got[1]
            best = store[blocks[n]]
        return i, best

    def insert_automatic(self, model: str, seq: _Seq, now_ns: int, ttl_ns: int,
                         blocks: list[int] | None = None) -> None:
        """Cache every block boundary of ``seq`` (``blocks``: its block hashes, when the caller has them)."""
        if blocks is None:
            blocks = block_hashes(seq.units)
        entry = _Entry(seq, len(seq.units), now_ns, ttl_ns)
        self.blocks.setdefault(model, {}).update(dict.fromkeys(blocks[1:], entry))
        # the partial last block: keep the sequence reachable for refinement via its last full block

    # -- explicit ---------------------------------------------------------------------------------
    def match_point(self, model: str, key: int, now_ns: int) -> _Entry | None:
        e = self.points.get((model, key))
        return e if e is not None and e.alive(now_ns) else None

    def insert_point(self, model: str, key: int, entry: _Entry) -> None:
        self.points[(model, key)] = entry
