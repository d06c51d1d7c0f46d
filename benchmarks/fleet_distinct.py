"""The ledger ingest at 1M calls that do not repeat (``bench_fleet.py --distinct``).

The resampled fleet of ``bench_fleet.py`` repeats the corpus's 5,745 calls: their messages are stored once
and the per-run work is done once per distinct run. Here nothing repeats at the ledger: the per-run work is
done for real on the corpus files (one worker, the same ``tokprof.fleet.parts.file_rows`` that ``tokprof
ingest --jobs``/Ray run), and its Parquet part is then copied into about 1,000,000 calls where every copy's
runs get new ids and run keys, its messages and prompts new content hashes (so each copy's messages are
inserted, never skipped as already stored), and its calls a start day shifted over 90 days. The copies are
grouped into parts of about 100,000 calls (a worker's part in a large fleet) and loaded by
``tokprof.fleet.parts.load_parts``, the one serial stage of an ingest: what a fleet of distinct runs costs
the ledger once its per-run work is done (by as many workers as the fleet needs; their rate is stage (a) of
``fleet_stages.py``). Then the common ``tokprof stats`` questions are timed on that ledger, and its size per
call printed.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

HASHED = {  # table -> its columns that hold content hashes (made distinct per copy)
    "call_facts": ("prompt_hash", "output_hash"),
    "prompts": ("prompt_hash",),
}
IDS = {"runs": ("run_id",), "diagnostics": ("run_id",)}
DIMENSIONS = ("places", "tag_sets", "call_kinds")


def _suffix(col: Any, k: int) -> Any:
    import pyarrow.compute as pc

    return pc.binary_join_element_wise(col, f"~{k}", "")  # null stays null


def shared_messages(tables: dict[str, Any]) -> Any:
    """The hashes of messages sent in more than one run of the part (an agent's system prompt, a tool's
    fixed reply): a fleet sends them again in its other runs, so the copies keep them shared. A message of
    one run only is that run's own: each copy gets its own."""
    import pyarrow as pa

    prompts = dict(zip(tables["prompts"].column("prompt_hash").to_pylist(),
                       tables["prompts"].column("message_hashes").to_pylist()))
    runs_of: dict[str, set[int]] = {}
    calls = tables["call_facts"]
    for run, ph in zip(calls.column("run_key").to_pylist(), calls.column("prompt_hash").to_pylist()):
        for h in prompts.get(ph) or ():
            runs_of.setdefault(h, set()).add(run)
    return pa.array(sorted(h for h, runs in runs_of.items() if len(runs) > 1), pa.string())


def _own(col: Any, k: int, shared: Any) -> Any:
    """Message hashes of copy ``k``: the run's own messages made distinct, shared ones kept."""
    import pyarrow.compute as pc

    return pc.if_else(pc.is_in(col, value_set=shared), col, _suffix(col, k))


def _copy(tables: dict[str, Any], k: int, run_keys: int, shared: Any) -> dict[str, Any]:
    """Copy ``k`` of one part's fact and content tables: distinct ids, run keys, hashes and days."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    shift = dt.timedelta(days=k % 90)
    for name, t in tables.items():
        if name in DIMENSIONS:
            continue
        if name == "messages":
            t = t.filter(pc.invert(pc.is_in(t.column("hash"), value_set=shared)))  # stored once, by copy 0
            t = t.set_column(0, "hash", _suffix(t.column("hash"), k))
        for col in HASHED.get(name, ()) + IDS.get(name, ()):
            t = t.set_column(t.schema.get_field_index(col), col, _suffix(t.column(col), k))
        if name == "prompts":
            lists = t.column("message_hashes").combine_chunks()
            t = t.set_column(t.schema.get_field_index("message_hashes"), "message_hashes",
                             pa.ListArray.from_arrays(lists.offsets, _own(lists.flatten(), k, shared)))
        if "run_key" in t.schema.names:
            t = t.set_column(t.schema.get_field_index("run_key"), "run_key",
                             pc.add(t.column("run_key"), pa.scalar(k * run_keys, pa.int32())))
        for col in ("start_time", "end_time"):
            if col in t.schema.names:
                t = t.set_column(t.schema.get_field_index(col), col,
                                 pc.add(t.column(col), pa.scalar(shift, pa.duration("us"))).cast(t.schema.field(col).type))
        if "day" in t.schema.names:
            days = pc.add(t.column("day").cast(pa.int32()), pa.scalar(k % 90, pa.int32()))
            t = t.set_column(t.schema.get_field_index("day"), "day", days.cast(pa.date32()))
        out[name] = t
    return out


def distinct_parts(part_dir: Path, calls: int, per_part: int, out: Path) -> tuple[int, int]:
    """Copies of the one part under ``part_dir`` (stage (a)'s output) until ``calls`` calls, ``per_part``
    calls to a part file; returns (calls, parts)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    src: dict[str, Any] = {}
    for d in part_dir.iterdir():
        files = sorted(d.glob("*.parquet"))
        assert len(files) == 1, f"{d}: expected one part (dimension ids are local to a part)"
        src[d.name] = pq.read_table(files[0])
    per_copy = src["call_facts"].num_rows
    run_keys = max(src["runs"].column("run_key").to_pylist()) + 1
    copies = max(1, calls // per_copy)
    per_file = max(1, per_part // per_copy)
    shared = shared_messages(src)
    made = parts = 0
    for first in range(0, copies, per_file):
        group = [_copy(src, k, run_keys, shared) for k in range(first, min(copies, first + per_file))]
        name = f"part-{parts:05d}.parquet"
        for table in src:
            if table in DIMENSIONS:
                t = src[table]  # one copy: the copies share the part's dimension ids
            elif table == "messages" and first == 0:  # the shared messages, once
                t = pa.concat_tables([src[table].filter(pc.is_in(src[table].column("hash"), value_set=shared))]
                                     + [g[table] for g in group])
            else:
                t = pa.concat_tables([g[table] for g in group])
            (out / table).mkdir(parents=True, exist_ok=True)
            pq.write_table(t, out / table / name, compression="zstd")
        made += per_copy * len(group)
        parts += 1
    return made, parts


def distinct_load(parts: Path, ledger: Path) -> dict[str, Any]:
    """Load the parts into a fresh ledger (one transaction, as ``tokprof ingest`` does); wall and CPU time."""
    from tokprof.fleet.ledger import connect
    from tokprof.fleet.parts import load_parts, part_names

    con = connect(ledger)
    t, c = time.perf_counter(), time.process_time()
    n = sum(load_parts(con, parts, [], [], [name]) for name in part_names(parts))  # a transaction per part
    con.execute("CHECKPOINT")
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {"con": con, "calls": n, "wall_s": wall, "cpu_s": cpu, "rate": n / wall, "cpu_rate": n / cpu}


def run(corpus: Path, calls: int, per_part: int = 100_000) -> dict[str, Any]:
    """Stage (a) on the corpus, the distinct copies, their load, then the questions; printed as measured."""
    import os

    from bench_fleet import time_queries  # type: ignore[import-not-found]  # noqa: E402 - next to this script
    from fleet_stages import per_worker_rate  # type: ignore[import-not-found]

    from tokprof.commands.import_cmd import expand

    files = [str(f) for f in expand([str(corpus)])]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        a = per_worker_rate(files, f"{tmp}/a", True)
        print(f"per-run work (one worker, with diagnostics): {a['calls']:,} calls in {a['cpu_s']:.2f} CPU s = "
              f"{a['rate']:,.0f} calls per CPU second; load {os.getloadavg()[0]:.1f}")
        t = time.perf_counter()
        # in a child process: this process's peak memory is then the load's and the queries' alone
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            n, nparts = pool.submit(distinct_parts, Path(tmp) / "a", calls, per_part, Path(tmp) / "parts").result()
        print(f"copies made distinct: {n:,} calls in {nparts} parts ({time.perf_counter() - t:.1f} s, not timed below)")
        ledger = Path(tmp) / "ledger.duckdb"
        res = distinct_load(Path(tmp) / "parts", ledger)
        con = res.pop("con")
        out["load"] = res
        size = ledger.stat().st_size + sum(p.stat().st_size for p in ledger.parent.glob("ledger.duckdb.wal"))
        msgs = con.execute("SELECT count(*) FROM messages").fetchone()[0]
        print(f"ledger load of {res['calls']:,} distinct calls ({msgs:,} distinct messages stored): "
              f"{res['wall_s']:.2f} s wall = {res['rate']:,.0f} calls/s; {res['cpu_rate']:,.0f} per CPU second "
              f"(all DuckDB threads); load {os.getloadavg()[0]:.1f}")
        print(f"on disk: {size / res['calls']:,.0f} B/call (messages included)")
        out["queries"] = q = time_queries(con)
        for what, (wall, cpu) in q.items():
            print(f"  stats {what:<46} {wall * 1000:7.1f} ms wall  {cpu * 1000:7.1f} ms CPU")
        con.close()
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory of this process: {out['peak_mb']:,.0f} MB")
    return out
