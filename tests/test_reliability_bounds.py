"""Resource bounds (issue #9, point 6): a run of 1,000,000 spans streams to disk in bounded memory; the
run writer's seen-payload set, the counting memo and the other per-run structures have caps.

The big run happens in a child process (``profile(..., save=dir, keep_in_memory=False)``), which samples
its resident set size every 100,000 spans and reports its peak (``VmHWM``). The same child with 50,000
spans gives the baseline: memory must not grow with the run's length. The figures are printed (``-s``)
for the record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from tokprof.profiler import load_run, profile, record_llm_call, trace
from tokprof.profiler import store as store_mod

REPO = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import json, os, sys, time
    from tokprof.profiler import profile, trace

    folder, n = sys.argv[1], int(sys.argv[2])
    page = os.sysconf("SC_PAGE_SIZE")

    def rss_mb():
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page / 2**20

    @trace
    def leaf(i):
        return i

    @trace
    def step(i):
        return leaf(i) + 1

    samples = []
    t0 = time.perf_counter()
    with profile("million", save=folder, keep_in_memory=False) as run:
        for i in range(n // 2):  # two spans per iteration
            step(i)
            if i % 50_000 == 0:
                samples.append(round(rss_mb(), 1))
    elapsed = time.perf_counter() - t0
    # VmHWM: this process's own peak RSS (ru_maxrss would include the forking pytest process's).
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024
    print(json.dumps({"samples_mb": samples, "peak_mb": hwm,
                      "in_memory_spans": len(run.spans), "path": str(run.path), "seconds": round(elapsed, 1)}))
""")


def run_child(tmp_path: Path, n: int) -> dict:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    out = subprocess.run([sys.executable, str(script), str(tmp_path / f"runs{n}"), str(n)], capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def count_span_lines(path: Path) -> tuple[int, bool]:
    spans, ended = 0, False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.startswith('{"span_id"'):
                spans += 1
            elif line.startswith('{"type":"end"'):
                ended = True
    return spans, ended


@pytest.mark.slow
def test_a_million_spans_stream_in_bounded_memory(tmp_path, capsys):
    small = run_child(tmp_path, 50_000)
    big = run_child(tmp_path, 1_000_000)
    spans, ended = count_span_lines(Path(big["path"]))
    assert spans == 1_000_000 + 1 and ended  # every span and the root, and the run closed
    assert big["in_memory_spans"] == 1  # only the root stays in memory
    growth = big["peak_mb"] - small["peak_mb"]
    samples = big["samples_mb"]
    with capsys.disabled():
        print(f"\n[bounds] 50k spans: peak RSS {small['peak_mb']:.1f} MB ({small['seconds']} s); "
              f"1M spans: peak RSS {big['peak_mb']:.1f} MB ({big['seconds']} s); growth {growth:.1f} MB; "
              f"RSS every 100k spans: {samples}; file {Path(big['path']).stat().st_size / 2**20:.0f} MB")
    assert growth < 20, f"memory grew by {growth:.1f} MB from 50k to 1M spans"
    # Flat after warm-up: the last sample is within a few MB of the second one.
    assert samples[-1] - samples[1] < 10, samples


def test_streaming_only_keeps_only_the_root_and_writes_everything(tmp_path):
    @trace
    def f(i: int) -> int:
        return i

    with profile("stream", save=tmp_path, keep_in_memory=False) as run:
        for i in range(2000):
            f(i)
        record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], output="yo",
                        usage={"input_tokens": 5, "output_tokens": 1})
    assert [s.name for s in run.spans] == ["stream"]
    back = load_run(run.path)
    assert back.complete and len(back.spans) == 2002
    assert back.total_usage().input_tokens == 5


def test_streaming_only_needs_a_file_otherwise_spans_stay_in_memory():
    @trace
    def f() -> None:
        return None

    with profile("nofile", keep_in_memory=False) as run:
        f()
    assert sorted(s.name for s in run.spans) == ["f", "nofile"]


def test_tracemalloc_peak_does_not_grow_with_the_run(tmp_path):
    """In-process check with tracemalloc: 20,000 more spans cost no more peak memory than 2,000."""

    @trace
    def f(i: int) -> int:
        return i

    def peak(n: int) -> int:
        tracemalloc.start()
        try:
            with profile("tm", save=tmp_path / str(n), keep_in_memory=False):
                for i in range(n):
                    f(i)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    peak(500)  # warm-up: imports, caches
    small, big = peak(2_000), peak(20_000)
    assert big < small + 256 * 1024, (small, big)


def test_seen_payload_set_is_capped(tmp_path, monkeypatch):
    """The writer remembers which messages it has written (so a history is stored once); that set is an
    LRU with a cap, and a message evicted from it and seen again is simply written again."""
    monkeypatch.setattr(store_mod.RunWriter, "MAX_SEEN_PAYLOADS", 50)
    history = [{"role": "system", "content": "sys"}]
    from tokprof.profiler.hooks import current_span

    with profile("cap", save=tmp_path) as run:
        for i in range(300):
            history.append({"role": "user", "content": f"message {i}"})
            record_llm_call(model="gpt-4o", messages=history[-60:], output="ok",
                            usage={"input_tokens": 1, "output_tokens": 1})
        writer = current_span()._sink.writer
        assert len(writer._seen) <= 50
        assert len(writer._recent) <= writer._RECENT
    back = load_run(run.path)
    assert [s.llm.messages for s in back.llm_spans()] == [s.llm.messages for s in run.llm_spans()]


def test_counting_memo_has_a_cap():
    cf = pytest.importorskip("tokprof.profiler.providers.chat_format")
    assert 0 < cf.default_cache.max_entries <= 1_000_000
    memo = cf.MessageTokenCache(max_entries=100)
    messages = [{"role": "user", "content": f"distinct message number {i} " * 3} for i in range(400)]
    with_memo = cf.count_messages(messages, "gpt-4o", cache=memo)
    assert len(memo) == 100
    assert with_memo == cf.count_messages(messages, "gpt-4o", cache=None)
    again = cf.count_messages(messages, "gpt-4o", cache=memo)  # evicted entries are recounted, same answer
    assert again == with_memo and len(memo) == 100


def test_default_memo_stays_bounded_under_many_distinct_messages(monkeypatch):
    cf = pytest.importorskip("tokprof.profiler.providers.chat_format")
    monkeypatch.setattr(cf.default_cache, "max_entries", 300)
    cf.default_cache.clear()
    for i in range(1000):
        cf.count_messages([{"role": "user", "content": f"m{i}"}], "gpt-4o")
    assert len(cf.default_cache) <= 300
    cf.default_cache.clear()
