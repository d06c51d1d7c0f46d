"""Crash recovery (issue #9, point 3): SIGKILL mid-run, damaged run files, damaged cache folders.

A child process runs a profiled agent that streams its run to disk (``profile(..., save=dir)``) and, after
every traced call returns, prints ``done <span id>`` (flushed). The parent kills it with SIGKILL in the
middle of the run, then loads the file: every span the child reported finished is there, and the run is
marked incomplete. Variants: one thread with growing LLM histories (payload references), four threads
writing concurrently, streaming-only (``keep_in_memory=False``), capture off.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from tokprof.profiler import load_run, profile, record_llm_call, trace
from tokprof.profiler.hooks import reset_internal_errors as _reset_internal_errors
from tokprof.profiler.store import RunFileError, TruncatedRunWarning, iter_run_files
from tests.reliability_support import EchoChatModel, internal_error_records

REPO = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from tokprof.profiler import profile, record_llm_call, trace, current_span

    folder, threads, keep, capture = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"
    out_lock = threading.Lock()

    @trace(kind="tool")
    def tool(i):
        return current_span().span_id

    @trace
    def step(worker, i, history):
        sid = current_span().span_id
        tool(i)
        history.append({"role": "user", "content": f"worker {worker} step {i} " + "context " * 20})
        record_llm_call(model="gpt-4o", messages=history, output=f"answer {i}",
                        usage={"input_tokens": 10 + i, "output_tokens": 2})
        history.append({"role": "assistant", "content": f"answer {i}"})
        return sid

    def worker(w):
        history = [{"role": "system", "content": "You are agent %d. " % w * 10}]
        i = 0
        while True:  # until killed
            sid = step(w, i, history)
            with out_lock:
                sys.stdout.write(f"done {sid}\\n")
                sys.stdout.flush()
            i += 1

    with profile("crash", save=folder, keep_in_memory=keep, capture=capture) as run:
        sys.stdout.write(f"run {run.run_id}\\n")
        sys.stdout.flush()
        if threads == 1:
            worker(0)
        else:
            with ThreadPoolExecutor(threads) as ex:
                list(ex.map(worker, range(threads)))
""")


def kill_mid_run(tmp_path: Path, *, threads: int = 1, keep: bool = True, capture: bool = True,
                 after: int = 300) -> tuple[str, set[str], Path]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    folder = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), str(folder), str(threads), "1" if keep else "0",
                             "1" if capture else "0"], stdout=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    first = proc.stdout.readline().split()
    assert first and first[0] == "run", first
    run_id = first[1]
    done: set[str] = set()
    try:
        for line in proc.stdout:
            done.add(line.split()[1])
            if len(done) >= after:
                os.kill(proc.pid, signal.SIGKILL)
                break
        # Markers already in the pipe were printed after their span was written: they count too.
        for line in proc.stdout:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "done":
                done.add(parts[1])
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    return run_id, done, folder / f"{run_id}.jsonl"


@pytest.mark.slow
@pytest.mark.parametrize("threads,keep,capture", [(1, True, True), (4, True, True), (1, False, True),
                                                  (4, False, False)],
                         ids=["one-thread", "four-threads", "streaming-only", "four-threads-capture-off"])
def test_sigkill_mid_run_keeps_every_finished_span(tmp_path, threads, keep, capture):
    run_id, done, path = kill_mid_run(tmp_path, threads=threads, keep=keep, capture=capture)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedRunWarning)  # the kill may cut the last line
        run = load_run(path)
    assert run.run_id == run_id
    assert not run.complete, "a killed run must be marked incomplete"
    ids = {s.span_id for s in run.spans}
    missing = done - ids
    assert not missing, f"{len(missing)} finished spans lost, e.g. {sorted(missing)[:3]}"
    assert len(done) >= 300
    # The structure that was written is whole: a span's parent is in the file, or is the root (it never
    # finished), or is one of the steps still running when the kill came (one per worker at most); every
    # LLM span has its full message history back.
    steps = [s for s in run.spans if s.name == "step"]
    by_id = run.by_id()
    running = {s.parent_id for s in run.spans if s.parent_id not in by_id and s.parent_id != "1"}
    assert len(running) <= threads, running
    assert all(s.parent_id == "1" for s in steps)
    for s in run.llm_spans():
        if s.parent_id in running:
            continue
        parent = by_id[s.parent_id]
        assert parent.name == "step"
        if capture:
            assert s.llm.messages[0]["role"] == "system" and len(s.llm.messages) % 2 == 0
    assert len(steps) >= len(done)


# ---------------------------------------------------------------------------------------------------
# damaged run files: say what is wrong, keep what can be kept
# ---------------------------------------------------------------------------------------------------
def a_saved_run(folder: Path) -> Path:
    @trace
    def step(i: int) -> int:
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": f"q{i}"}], output=f"a{i}",
                        usage={"input_tokens": 10, "output_tokens": 1})
        return i

    with profile("damaged", save=folder) as run:
        for i in range(10):
            step(i)
    return run.path


def _first_span(lines: list[str]) -> int:
    return next(i for i, ln in enumerate(lines) if ln.startswith('{"span_id"'))


def _attributes_as_list(line: str) -> str:
    rec = json.loads(line)
    rec["attributes"] = ["not", "a", "mapping"]
    return json.dumps(rec)


DAMAGE = {
    "garbage-line": lambda lines: lines[:5] + ["#!@ not json at all"] + lines[5:],
    "half-a-line": lambda lines: lines[:5] + [lines[5][: len(lines[5]) // 2]] + lines[6:],
    "nul-bytes": lambda lines: lines[:7] + ["\x00" * 64] + lines[7:],
    "lost-payload": lambda lines: [ln for ln in lines if not (ln.startswith('{"type":"payload"') and '"q3"' in ln)],
    "wrong-type-field": lambda lines: [_attributes_as_list(ln) if i == _first_span(lines) else ln
                                       for i, ln in enumerate(lines)],
    "unknown-record": lambda lines: lines[:3] + ['{"type":"mystery","x":1}'] + lines[3:],
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_run_file_says_what_is_wrong_and_keeps_the_rest(tmp_path, damage):
    path = a_saved_run(tmp_path)
    good = load_run(path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(DAMAGE[damage](lines)) + "\n")
    # Strict load: an error naming the file and the line.
    with pytest.raises(RunFileError) as err:
        load_run(path)
    assert err.value.path == str(path) and err.value.line is not None and f"{path}:{err.value.line}" in str(err.value)
    # Recovering load: every other span is kept, the problems are listed, the run is marked incomplete.
    problems: list[RunFileError] = []
    run = load_run(path, on_error=problems.append)
    assert problems and all(p.line is not None for p in problems)
    assert not run.complete
    assert len(run.spans) >= len(good.spans) - 1
    assert {s.span_id for s in run.spans} <= {s.span_id for s in good.spans}


def test_agent_runs_with_damaged_files_in_its_runs_folder(tmp_path, monkeypatch):
    folder = tmp_path / "runs"
    folder.mkdir()
    (folder / "aaaa.jsonl").write_bytes(b"\x00\xff garbage")
    (folder / "bbbb.jsonl.gz").write_bytes(b"\x1f\x8b not gzip")
    (folder / "cccc.jsonl").mkdir()  # a folder where a file is expected

    @trace
    def agent(x: int) -> int:
        return x * 3

    with profile("ok", save=folder) as run:
        assert agent(14) == 42
    assert load_run(run.path).complete
    # Listing the folder still works and a bad file is named when it is read.
    listed = list(iter_run_files(folder))
    assert run.path in listed
    with pytest.raises(RunFileError, match="aaaa.jsonl"):
        load_run(folder / "aaaa.jsonl")


# ---------------------------------------------------------------------------------------------------
# damaged response-cache folders (tokprof.optimizers.response_cache, diskcache/SQLite)
# ---------------------------------------------------------------------------------------------------
response_cache = pytest.importorskip("tokprof.optimizers.response_cache")


def lc_cache(folder: Path):
    from tokprof.optimizers.response_cache import ResponseCache, TokprofLLMCache

    return TokprofLLMCache(ResponseCache(folder, namespace="t", deterministic_only=False))


@pytest.fixture
def llm_cache_reset():
    from langchain_core.globals import get_llm_cache, set_llm_cache

    old = get_llm_cache()
    yield set_llm_cache
    set_llm_cache(old)


def test_live_profile_with_response_cache_survives_a_broken_cache_module(tmp_path, monkeypatch, caplog):
    """``profile(optimize=["response-cache"])``: if the cache cannot be opened, the agent runs uncached."""
    import tokprof.optimizers.live as live
    import tokprof.optimizers.response_cache as rc

    def broken(*a, **k):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(rc, "ResponseCache", broken)
    _reset_internal_errors()
    with caplog.at_level(logging.WARNING, logger="tokprof"), profile("cached", optimize=["response-cache"]):
        assert EchoChatModel().invoke("hello").content == "echo:hello"
        assert EchoChatModel().invoke("hello").content == "echo:hello"
    assert len(internal_error_records(caplog.records)) <= 1
    assert live is not None


def test_damaged_cache_entry_is_a_miss_not_a_crash(tmp_path, llm_cache_reset):
    import sqlite3

    folder = tmp_path / "cache"
    llm_cache_reset(lc_cache(folder))
    model = EchoChatModel()
    assert model.invoke("hi").content == "echo:hi"
    con = sqlite3.connect(folder / "cache.db")
    con.execute("UPDATE tokprof_entries SET value = ?", ("{not json",))
    con.commit()
    con.close()
    assert model.invoke("hi").content == "echo:hi"


def test_unreadable_cache_folder_is_named(tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "cache.db").write_bytes(b"garbage" * 100)
    with pytest.raises(Exception) as err:
        response_cache.ResponseCache(folder)
    assert str(folder) in str(err.value)


def test_cache_files_are_private(tmp_path):
    import stat

    folder = tmp_path / "cache"
    c = response_cache.ResponseCache(folder, deterministic_only=False)
    c.set("k", {"v": 1})
    c.close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for f in folder.rglob("*"):
        if f.is_file():
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f


# ---------------------------------------------------------------------------------------------------
# whole-run saves are atomic: no partial file, the previous file untouched
# ---------------------------------------------------------------------------------------------------
def test_a_failed_save_leaves_no_partial_file(tmp_path):
    from tokprof.profiler import save_run, span

    with profile("atomic") as run:
        with span("ok"):
            pass
        with span("bad", attributes={(1, 2): "a tuple key JSON cannot hold"}):
            pass
    folder = tmp_path / "saved"
    with pytest.raises(TypeError):
        save_run(run, folder)
    assert list(folder.iterdir()) == []
    # Over an existing good file: the failure leaves the old file as it was.
    good = tmp_path / "good.jsonl"
    with profile("good") as ok_run:
        pass
    save_run(ok_run, path=good)
    before = good.read_bytes()
    with pytest.raises(TypeError):
        save_run(run, path=good)
    assert good.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.jsonl", "saved"]
