"""The span tree of runs -> place ids and tag-set ids, memoised across runs (part of :mod:`tokprof.fleet.rows`).

A span's *place* is its path in the tree and the agent/function/tool above it; its *tags* are the run's tags
overridden by those of the spans above it and its own. Both repeat across a fleet, so both become integer ids
(from :class:`tokprof.fleet.dims.Dims`) found by one dict look-up per span: a *base* is what a span's children
hang under, and a *step* (parent base, name, kind) gives a span's place id and its own base.
"""

from __future__ import annotations

from typing import Any

from tokprof.fleet.dims import Dims
from tokprof.profiler.model import Span


class PlaceTree:
    """The memo of places and tag sets (a mixin of :class:`tokprof.fleet.rows.RowBuilder`)."""

    def __init__(self, dims: Dims) -> None:
        self.dims = dims
        # the span tree's memo. A base is what a span's children hang under: (path, depth, agent, function,
        # tool); a step (parent base, name, kind) gives the span's place id and its own base. Tags travel
        # separately as tag-set ids (most spans have none of their own: their children keep the parent's).
        self._bases: list[tuple[Any, ...]] = [("", -1, None, None, None)]  # 0: a run's root
        self._base_index: dict[tuple[Any, ...], int] = {self._bases[0]: 0}
        self._steps: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._tag_keys: dict[int, tuple[tuple[str, str], ...]] = {}  # tags id -> its tags
        self._tag_steps: dict[tuple[Any, ...], int] = {}  # (tags id, span tags) -> tags id
        # chains of own tags from a run's root down to a span, as ids (0: none), so that a repeated run's
        # tag-set ids are found from its own tags without walking its tree again (tokprof.fleet.copies)
        self._chain_ids: dict[tuple[Any, ...], int] = {}
        self._chain_parts: list[tuple[int, dict[str, str]]] = [(0, {})]
        self._chain_tids: dict[tuple[int, int], int] = {}

    def _tags(self, tags: tuple[tuple[str, str], ...]) -> int:
        i = self.dims.tags_id(tags)
        self._tag_keys[i] = tags
        return i

    def _step(self, key: tuple[Any, ...]) -> tuple[int, int]:
        """(place id, own base) of a span named ``key[1]`` of kind ``key[2]`` under base ``key[0]``."""
        path, depth, a, f, t = self._bases[key[0]]
        name, kind = key[1], key[2]
        path = name if depth < 0 else f"{path}/{name}"
        depth += 1
        place = self.dims.place_id((path, depth, a, f, t))  # what the span itself runs under
        if kind == "agent":
            a = name
        elif kind in ("function", "chain", "retriever"):
            f = name
        elif kind == "tool":
            t = name
        base = (path, depth, a, f, t)
        b = self._base_index.get(base)
        if b is None:
            b = self._base_index[base] = len(self._bases)
            self._bases.append(base)
        got = self._steps[key] = (place, b)
        return got

    def _span_tags(self, tid: int, span_tags: dict[str, str]) -> int:
        """Tags id in force at a span with tags of its own: its parent's overridden by them."""
        key = (tid, tuple(span_tags.items()))
        got = self._tag_steps.get(key)
        if got is None:
            got = self._tag_steps[key] = self._tags(tuple({**dict(self._tag_keys[tid]), **span_tags}.items()))
        return got

    def chain_step(self, cid: int, span_tags: dict[str, str]) -> int:
        """Chain id of a span with tags of its own under a parent of chain ``cid``."""
        key = (cid, tuple(span_tags.items()))
        got = self._chain_ids.get(key)
        if got is None:
            got = self._chain_ids[key] = len(self._chain_parts)
            self._chain_parts.append((cid, dict(span_tags)))
        return got

    def chain_tid(self, root: int, cid: int) -> int:
        """Tags id in force at the end of chain ``cid`` in a run whose own tags have id ``root``."""
        got = self._chain_tids.get((root, cid))
        if got is None:
            parent, span_tags = self._chain_parts[cid]
            got = self._span_tags(root if parent == 0 else self.chain_tid(root, parent), span_tags)
            if len(self._chain_tids) > 1_000_000:
                self._chain_tids.clear()
            self._chain_tids[(root, cid)] = got
        return got

    def _climb(self, sp: Span, index: dict[str, Span], info: dict[str, tuple[int, int, int]],
               root: tuple[int, int, int]) -> tuple[int, int, int]:
        """Base of ``sp``'s parent when the parent comes later in the file: climb iteratively (a deep or
        cyclic parent chain in a damaged file cannot recurse without bound) and resolve the chain."""
        chain: list[Span] = []
        seen: set[str] = set()
        cur: Span | None = index.get(sp.parent_id)  # type: ignore[arg-type]
        while cur is not None and cur.span_id not in info and cur.span_id not in seen:
            seen.add(cur.span_id)
            chain.append(cur)
            cur = index.get(cur.parent_id) if cur.parent_id is not None else None
        base, tid, cid = info[cur.span_id] if cur is not None and cur.span_id in info else root
        for x in reversed(chain):
            key = (base, x.name, x.kind)
            base = (self._steps.get(key) or self._step(key))[1]
            if x.tags:
                tid = self._span_tags(tid, x.tags)
                cid = self.chain_step(cid, x.tags)
            info[x.span_id] = (base, tid, cid)
        return base, tid, cid
