"""Stage rates of a cold fleet ingest (``bench_fleet.py --stages``, and printed in its default run).

On the corpus files (5,745 distinct calls: nothing repeats, every memo misses), each stage on its own:

(a) the per-run work (import, counting, pricing, as-paid cache simulation, prefix-break replay, hashing,
    row building: ``tokprof.fleet.parts.file_rows``) in one fresh worker process, in calls per CPU second of
    that worker, after its start-up (spawn + imports, given separately): what one more worker adds;
(b) the serial ledger load (the workers' Parquet parts -> DuckDB, ``tokprof.fleet.parts.load_parts``) in
    calls per wall second and per CPU second (all DuckDB threads): the part that does not scale out;
(c) ``tokprof ingest`` end to end (a fresh CLI process: start-up, planning, workers, load) with --jobs 1,
    --jobs 2 and ``--engine ray --jobs 2``, in calls per wall second, with the CPU seconds of the process and
    its worker processes (Ray's workers are not its children: not counted);
(d) the projection: workers needed for 50,000 calls/s = 50,000 / (a), and the ceiling (b) puts on any
    number of workers.

The machine is shared: each figure is printed with the load average; CPU-second figures are the ones to
compare across runs.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

TARGET = 50_000


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def per_worker_rate(files: list[str], parts: str, diagnose: bool) -> dict[str, Any]:
    """(a): one fresh spawned worker: its start-up, then the per-run work of every file, in its CPU seconds."""
    from tokprof.fleet.parts import timed_file_rows, warm_up

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        t = time.perf_counter()
        imports = pool.submit(warm_up).result()
        start = time.perf_counter() - t
        res = pool.submit(timed_file_rows, files, diagnose, parts).result()
    return {"calls": res["calls"], "cpu_s": res["cpu_s"], "wall_s": res["wall_s"], "start_s": start,
            "imports_s": imports, "rate": res["calls"] / res["cpu_s"]}


def replicate(parts: Path, copies: int, out: Path) -> Path:
    """The parts of (a) ``copies`` times under new names (more parts, as many workers would write: run keys
    are remapped per part; messages and prompts repeat, so they are checked and skipped)."""
    import shutil

    for table in parts.iterdir():
        (out / table.name).mkdir(parents=True)
        for f in table.glob("*.parquet"):
            for k in range(copies):
                shutil.copy(f, out / table.name / f"{f.stem}-{k:03d}.parquet")
    return out


def load_rate(parts: Path, reps: int = 3) -> dict[str, Any]:
    """(b): the parts of (a) loaded into a fresh ledger, ``reps`` times; medians."""
    from tokprof.fleet.ledger import connect
    from tokprof.fleet.parts import load_parts

    walls, cpus, calls = [], [], 0
    for i in range(reps):
        with tempfile.TemporaryDirectory() as tmp:
            con = connect(Path(tmp) / "ledger.duckdb")
            t, c = time.perf_counter(), time.process_time()
            calls = load_parts(con, parts, [], [])
            con.execute("CHECKPOINT")
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            con.close()
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {"calls": calls, "wall_s": wall, "cpu_s": cpu, "rate": calls / wall, "cpu_rate": calls / cpu}


def end_to_end(files: list[str], extra: list[str]) -> dict[str, Any]:
    """(c): ``python -m tokprof.cli ingest FILES --json EXTRA`` into a fresh ledger."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "tokprof.cli", "ingest", *files, "--ledger", f"{tmp}/l.duckdb", "--json", *extra]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)}: exit {out.returncode}: {out.stderr[-500:]}")
    doc = json.loads(out.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"calls": doc["calls"], "wall_s": wall, "cpu_s": cpu, "rate": doc["calls"] / wall}


def large_part_load(make_runs: Callable[[int, int], Iterable[Any]], calls: int = 200_000,
                    nparts: int = 2) -> dict[str, Any]:
    """(b) at the size a worker's part has in a real fleet: ``nparts`` parts of ``calls / nparts`` resampled
    calls each (built as a worker builds them, dimension ids of their own), loaded into a fresh ledger. The
    corpus's one 5,745-call part above pays the per-part costs (reading nine Parquet files, remapping
    dimension ids, one commit) on few calls."""
    import pyarrow.parquet as pq

    from tokprof.fleet.dims import Dims
    from tokprof.fleet.ledger import connect
    from tokprof.fleet.parts import load_parts
    from tokprof.fleet.rows import RowBuilder

    with tempfile.TemporaryDirectory() as tmp:
        parts = Path(tmp) / "parts"
        for k in range(nparts):
            rb = RowBuilder(diagnose=False, dims=Dims())
            rb.add_runs(make_runs(calls // nparts, k))
            for name, table in rb.tables().items():
                if table.num_rows:
                    (parts / name).mkdir(parents=True, exist_ok=True)
                    pq.write_table(table, parts / name / f"part-{k:04d}.parquet", compression="zstd")
        con = connect(Path(tmp) / "ledger.duckdb")
        c0, w0 = time.process_time(), time.perf_counter()
        n = load_parts(con, parts, [], [])
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        con.close()
    return {"calls": n, "parts": nparts, "wall_s": wall, "cpu_s": cpu, "rate": n / wall, "cpu_rate": n / cpu}


def stages(corpus: Path, ray: bool = True,
           make_runs: Callable[[int, int], Iterable[Any]] | None = None) -> dict[str, Any]:
    """Every stage, printed as it is measured; returns the figures. ``make_runs(n, seed)``: resampled runs
    of about ``n`` calls, for the load rate at a realistic part size."""
    from tokprof.commands.import_cmd import expand

    files = [str(f) for f in expand([str(corpus)])]
    out: dict[str, Any] = {}
    print(f"stage rates, cold (the corpus's {len(files)} files, distinct calls, fresh processes); "
          f"load average {_load()} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nodiag = per_worker_rate(files, f"{tmp}/nodiag", False)
        a = out["a"] = per_worker_rate(files, f"{tmp}/parts", True)
        print(f"(a) per-run work, one worker: {a['calls']:,} calls in {a['cpu_s']:.2f} CPU s = {a['rate']:,.0f} "
              f"calls per CPU second ({a['wall_s']:.2f} s wall); without the prefix-break replay "
              f"(--no-diagnostics) {nodiag['rate']:,.0f}; worker start-up {a['start_s']:.2f} s wall "
              f"(imports {a['imports_s']:.2f} s) once per worker; load {_load()}")
        b = out["b"] = load_rate(Path(tmp) / "parts")
        print(f"(b) serial ledger load (Parquet parts -> DuckDB, one transaction, median of 3): {b['calls']:,} "
              f"calls in {b['wall_s'] * 1000:.0f} ms wall = {b['rate']:,.0f} calls/s; {b['cpu_s'] * 1000:.0f} ms "
              f"CPU = {b['cpu_rate']:,.0f} calls per CPU second; load {_load()}")
        b10 = out["b10"] = load_rate(replicate(Path(tmp) / "parts", 10, Path(tmp) / "x10"), reps=1)
        print(f"    the same part loaded 10 times (10 parts, {b10['calls']:,} calls): {b10['wall_s']:.2f} s wall = "
              f"{b10['rate']:,.0f} calls/s; {b10['cpu_rate']:,.0f} calls per CPU second; load {_load()}")
    if make_runs is not None:
        big = out["b_large"] = large_part_load(make_runs)
        print(f"    parts of a realistic size ({big['parts']} parts of {big['calls'] // big['parts']:,} resampled calls): "
              f"{big['calls']:,} calls in {big['wall_s']:.2f} s wall = {big['rate']:,.0f} calls/s; "
              f"{big['cpu_rate']:,.0f} calls per CPU second; load {_load()}")
    runs = [("--jobs 1", ["--jobs", "1"]), ("--jobs 2", ["--jobs", "2"])]
    if ray:
        runs.append(("--engine ray --jobs 2", ["--engine", "ray", "--jobs", "2"]))
    for label, extra in runs:
        c = out[label] = end_to_end(files, extra)
        cpu = "Ray workers not counted" if "ray" in label else f"CPU {c['cpu_s']:.1f} s (process + workers)"
        print(f"(c) tokprof ingest {label:<22} {c['calls']:,} calls in {c['wall_s']:5.1f} s wall = "
              f"{c['rate']:7,.0f} calls/s; {cpu}; load {_load()}")
    need = math.ceil(TARGET / a["rate"])
    loads = [b, out["b10"]] + ([out["b_large"]] if "b_large" in out else [])
    ceiling = max(x["rate"] for x in loads)  # wall: the load is one writer
    ceiling_cpu = max(x["cpu_rate"] for x in loads)  # what it would be on an idle core
    print(f"(d) projection: {TARGET:,} calls/s needs {TARGET:,} / {a['rate']:,.0f} = {need} workers of this speed "
          f"(cold calls, with diagnostics; about half as many with --no-diagnostics); the serial load "
          f"of parts whose messages are already stored ({ceiling:,.0f} calls/s wall at this load, "
          f"{ceiling_cpu:,.0f} per CPU second; for runs that do not repeat, measure it with --distinct) " +
          ("allows it" if ceiling_cpu >= TARGET else "caps any number of workers below it") +
          f"; N workers give about min(N x {a['rate']:,.0f}, {ceiling_cpu:,.0f}) calls/s once started, on N "
          f"free cores (the work is split by file: at most one worker per file; here {len(files)} files)")
    out["need"] = need
    return out
