"""The ledger's dimension tables in memory: natural key -> small integer id, and the run key sequence.

A fleet repeats a handful of models, providers and token sources, and a bounded set of places in its span
trees (path, agent/function/tool above) and sets of tags, millions of times. Each distinct value is stored
once (``places``, ``tag_sets``, ``call_kinds``) and a fact row carries its integer id. Ids are assigned here:

* in a single-process ingest, a :class:`Dims` loaded from the ledger (:meth:`Dims.load`) hands out the
  ledger's own ids, so the row builder writes final ids and new dimension rows are inserted as they are;
* a Ray worker has no ledger: it builds with an empty :class:`Dims` (ids local to its Parquet part), and
  the driver maps each part's ids to the ledger's by natural key (:meth:`Dims.remap`).

A place's natural key is ``(path, depth, agent, function, tool)``; a tag set's, its tags as a tuple of items
(in order: run tags, then span tags overriding them); a call kind's, its
:data:`tokprof.fleet.schema.KIND_FIELDS` in order.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from tokprof.fleet.schema import CALL_KINDS, KIND_FIELDS, PLACES, TAG_SETS, arrow_array

class _Dim:
    """One dimension: natural key -> id, and the rows assigned since they were last handed over."""

    def __init__(self) -> None:
        self.ids: dict[tuple[Any, ...], int] = {}
        self.new: list[tuple[Any, ...]] = []  # (id, *natural key)
        self.next = 0  # ids are never reused (a deleted run leaves its dimension rows)

    def id(self, key: tuple[Any, ...]) -> int:
        i = self.ids.get(key)
        if i is None:
            i = self.ids[key] = self.next
            self.next += 1
            self.new.append((i, *key))
        return i

    def loaded(self, rows: list[tuple[Any, ...]], key_of: Any) -> None:
        for row in rows:
            self.ids[key_of(row)] = row[0]
        self.next = max(self.ids.values(), default=-1) + 1

    def drain(self, n: int) -> list[Any]:
        cols = list(zip(*self.new)) if self.new else [()] * n
        self.new = []
        return cols


class Dims:
    """Dimension ids and the run key sequence of one ledger (or of one Ray worker's part)."""

    def __init__(self) -> None:
        self.places = _Dim()     # (path, depth, agent, function, tool)
        self.tag_sets = _Dim()   # (tags as a tuple of items,)
        self.kinds = _Dim()      # KIND_FIELDS
        self.next_run_key = 0

    @classmethod
    def load(cls, con: Any) -> "Dims":
        """The ids already in the ledger behind ``con``."""
        d = cls()
        d.places.loaded(con.execute("SELECT place_id, path, depth, agent, function, tool FROM places").fetchall(),
                        lambda r: tuple(r[1:]))
        d.tag_sets.loaded(con.execute("SELECT tags_id, tags FROM tag_sets").fetchall(),
                          lambda r: (_tags_key(r[1]),))
        d.kinds.loaded(con.execute(f"SELECT kind_id, {', '.join(KIND_FIELDS)} FROM call_kinds").fetchall(),
                       lambda r: tuple(r[1:]))
        d.next_run_key = con.execute("SELECT coalesce(max(run_key) + 1, 0) FROM runs").fetchall()[0][0]
        return d

    def place_id(self, key: tuple[Any, ...]) -> int:
        """Id of the place ``(path, depth, agent, function, tool)``, assigned if new."""
        return self.places.id(key)

    def tags_id(self, tags: tuple[tuple[str, str], ...]) -> int:
        """Id of a set of tags (a tuple of items), assigned if new."""
        return self.tag_sets.id((tags,))

    def kind_id(self, key: tuple[Any, ...]) -> int:
        """Id of the call kind ``key`` (:data:`KIND_FIELDS` in order), assigned if new."""
        return self.kinds.id(key)

    def run_keys(self, n: int) -> int:
        """Reserve ``n`` consecutive run keys; returns the first."""
        first = self.next_run_key
        self.next_run_key += n
        return first

    def new_rows(self) -> dict[str, pa.Table]:
        """Dimension rows assigned since the last call, as Arrow tables (then forgotten: they go in the ledger)."""
        p = self.places.drain(6)
        t = self.tag_sets.drain(2)
        k = self.kinds.drain(1 + len(KIND_FIELDS))
        return {
            "places": pa.Table.from_arrays([arrow_array(c, f.type) for c, f in zip(p, PLACES)], schema=PLACES),
            "tag_sets": pa.Table.from_arrays([pa.array(t[0], pa.int32()),
                                              arrow_array([list(x) for x in t[1]], TAG_SETS.field("tags").type)],
                                             schema=TAG_SETS),
            "call_kinds": pa.Table.from_arrays([arrow_array(c, f.type) for c, f in zip(k, CALL_KINDS)],
                                               schema=CALL_KINDS),
        }

    def remap(self, tables: dict[str, pa.Table]) -> dict[str, pa.Table]:
        """One Ray part's tables (ids local to the part) with this ledger's ids: dimension rows by natural
        key (new ones assigned and returned for insertion), run keys offset past the ledger's."""
        out = dict(tables)
        maps = {
            "place_id": _map(tables.get("places"), lambda r: self.place_id(tuple(r[1:]))),
            "tags_id": _map(tables.get("tag_sets"), lambda r: self.tags_id(_tags_key(r[1]))),
            "kind_id": _map(tables.get("call_kinds"), lambda r: self.kind_id(tuple(r[1:]))),
        }
        runs = tables.get("runs")
        offset = self.run_keys(runs.num_rows) if runs is not None else 0
        if runs is not None:
            out["runs"] = _shift(runs, "run_key", offset)
        for name in ("span_facts", "call_facts"):
            t = tables.get(name)
            if t is None:
                continue
            t = _shift(t, "run_key", offset)
            for col, mapping in maps.items():
                if col in t.schema.names:
                    i = t.schema.get_field_index(col)
                    t = t.set_column(i, col, mapping.take(t.column(col)))
            out[name] = t
        out.update(self.new_rows())
        return out


def _map(table: pa.Table | None, assign: Any) -> pa.Array:
    """A part's local id -> the ledger's id, as an array indexed by the local id (part ids are dense from 0)."""
    if table is None or table.num_rows == 0:
        return pa.array([], pa.int32())
    rows = list(zip(*[table.column(i).to_pylist() for i in range(table.num_columns)]))
    ids = [0] * (max(r[0] for r in rows) + 1)
    for r in rows:
        ids[r[0]] = assign(r)
    return pa.array(ids, pa.int32())


def _tags_key(tags: Any) -> tuple[tuple[str, str], ...]:
    """Tags as a hashable key: a MAP comes back from DuckDB as a dict, from Parquet as a list of pairs."""
    if tags is None:
        return ()
    if isinstance(tags, dict):
        return tuple(tags.items())
    return tuple((k, v) for k, v in tags)


def _shift(table: pa.Table, col: str, offset: int) -> pa.Table:
    import pyarrow.compute as pc

    i = table.schema.get_field_index(col)
    return table.set_column(i, col, pc.add(table.column(col), pa.scalar(offset, pa.int32())))
