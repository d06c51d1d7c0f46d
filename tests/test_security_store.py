"""Issue #21 (store): run ids never become paths, failed writes lose nothing, parent cycles are broken,
shared runs folders and planted symlinks are refused, same-named imports keep their runs apart."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tokprof.profiler import load_run, profile, record_llm_call
from tokprof.profiler import private_files
from tokprof.profiler import store as store_mod
from tokprof.profiler.model import Run, Span
from tokprof.profiler.store import RunWriter, UnsafeFolderError, file_stem, iter_run_files, save_run


def _run(run_id: str, calls: int = 2) -> Run:
    run = Run(run_id=run_id, name="r")
    history: list[dict[str, str]] = []
    for i in range(calls):
        history = history + [{"role": "user", "content": f"question {i} " + "x" * 50}]
        s = Span(span_id=str(i + 1), parent_id=None, run_id=run_id, kind="llm", name="call", start_ns=i,
                 wall_start_ns=i, end_ns=i + 1)
        from tokprof.profiler.model import LLMCall, Usage

        s.llm = LLMCall(model="gpt-4o", provider="openai", messages=list(history),
                        usage=Usage.from_provider(input_tokens=1000 + i, output_tokens=50))
        run.spans.append(s)
    return run


# -- 1. run ids -> bounded, sanitised file names ----------------------------------------------------
@pytest.mark.parametrize("rid", ["../../escaped", "/tmp/abs-escape", "a/b/c", "..", ".hidden", "x" * 300,
                                 "nul\x00byte", "ok\\win\\path", "ünïcode id"])
def test_hostile_run_ids_stay_in_the_folder(tmp_path: Path, rid: str) -> None:
    folder = tmp_path / "runs"
    path = save_run(_run(rid), folder)
    assert path.parent == folder
    assert len(path.name) <= store_mod.MAX_STEM + len(".jsonl")
    assert sorted(p.name for p in folder.iterdir()) == [path.name]
    assert load_run(path).run_id == rid  # the id itself is kept, as metadata


def test_plain_ids_keep_their_name_and_distinct_ids_distinct_files() -> None:
    assert file_stem("0123abcd") == "0123abcd"
    assert file_stem("a/b") != file_stem("a_b")
    assert file_stem("x" * 300) != file_stem("x" * 301)


def test_otlp_run_id_cannot_escape(tmp_path: Path) -> None:
    from tokprof.cli import main

    trace = {"resourceSpans": [{"resource": {"attributes": [
        {"key": "tokprof.run.id", "value": {"stringValue": "../../../pwned"}}]},
        "scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat gpt-4o",
                                   "startTimeUnixNano": "1", "endTimeUnixNano": "2",
                                   "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                                  {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "3"}}]}]}]}]}
    src = tmp_path / "t.json"
    src.write_text(json.dumps(trace))
    out = tmp_path / "deep" / "runs"
    assert main(["import", str(src), "--out", str(out), "--json"]) == 0
    assert [p.parent for p in out.iterdir()] == [out]
    assert not list(tmp_path.glob("pwned*")) and not list(tmp_path.parent.glob("pwned*"))


def test_optimize_out_stays_where_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tokprof.cli import main

    src = save_run(_run("../../up-two", calls=3), tmp_path / "in")
    monkeypatch.chdir(tmp_path)
    assert main(["optimize", str(src), "--out", "a/b", "--json"]) == 0
    written = [p for p in tmp_path.rglob("*.jsonl") if p.parent != tmp_path / "in"]
    assert written and all(p.parent == tmp_path / "a" / "b" for p in written)


# -- 3. a failed write loses nothing later ----------------------------------------------------------
class FlakyFile:
    """The run file; writes number ``fail`` fail with ENOSPC after writing half their bytes."""

    def __init__(self, fh: Any, fail: set[int]) -> None:
        self._fh, self.fail, self.n = fh, fail, 0

    def write(self, b: Any) -> int:
        self.n += 1
        if self.n in self.fail:
            self._fh.write(bytes(b)[: len(b) // 2])  # a torn write, as a full disk leaves it
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._fh.write(b)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


def _write_all(tmp_path: Path, fail: set[int], calls: int = 20) -> tuple[Run, Run]:
    run = _run("flaky", calls=calls)
    w = RunWriter.open(run, tmp_path / "runs")
    w._fh = FlakyFile(w._fh, fail)
    for s in run.spans:
        try:
            w.write_span(s)
        except OSError:
            pass  # the collector logs it once; the agent goes on
    w.close(run)
    return run, load_run(w.path)


def test_transient_disk_full_loses_no_span(tmp_path: Path) -> None:
    run, back = _write_all(tmp_path, fail={3, 4, 5})
    assert len(back.llm_spans()) == 20
    assert sum(s.llm.usage.input_tokens for s in back.llm_spans()) == sum(1000 + i for i in range(20)) == 20190
    assert [len(s.llm.messages) for s in sorted(back.llm_spans(), key=lambda s: int(s.span_id))] == list(range(1, 21))
    assert back.complete
    assert "No space left" in back.metadata["write_failures_recovered"]


def test_lasting_failure_marks_run_incomplete_with_reason(tmp_path: Path) -> None:
    # 9 spans written; then every write fails (11 spans, and their retry at close: writes 10..21);
    # the end line (write 22) is written and says why the run is incomplete
    run, back = _write_all(tmp_path, fail=set(range(10, 22)), calls=20)
    assert not back.complete
    assert "spans could not be written" in back.metadata["incomplete_reason"]
    assert "11 spans" in back.metadata["incomplete_reason"]
    assert len(back.llm_spans()) == 9 and all(s.llm.messages for s in back.llm_spans())


def test_lone_surrogate_is_stored_and_loads_complete(tmp_path: Path) -> None:
    name = os.fsdecode(b"file-\xff.txt")  # what os.listdir returns for a non-UTF-8 name
    with profile("s", save=str(tmp_path / "runs")) as p:
        for i in range(3):
            record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": f"ls: {name}"}] * (i + 1),
                            output="ok", usage={"input_tokens": 5, "output_tokens": 1})
    back = load_run(p.path)
    assert back.complete and len(back.llm_spans()) == 3
    assert back.llm_spans()[0].llm.messages[0]["content"] == f"ls: {name}"


# -- 6. parent-id cycles ----------------------------------------------------------------------------
def test_parent_cycle_is_broken_and_reported(tmp_path: Path) -> None:
    f = tmp_path / "cycle.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"type": "run", "schema": 1, "run_id": "c", "name": "c"},
        {"type": "span", "span_id": "1", "parent_id": "2", "kind": "function", "name": "a", "start_ns": 0, "end_ns": 1},
        {"type": "span", "span_id": "2", "parent_id": "1", "kind": "function", "name": "b", "start_ns": 0, "end_ns": 1},
        {"type": "span", "span_id": "3", "parent_id": "3", "kind": "function", "name": "self", "start_ns": 0, "end_ns": 1},
        {"type": "end"}]) + "\n")
    with pytest.warns(store_mod.DamagedRunWarning):
        run = load_run(f)
    assert len(run.metadata["parent_cycles_broken"]) == 2
    for s in run.spans:
        run.span_tags(s)  # terminates
    from tokprof.cli import main

    assert main(["show", str(f)]) == 0


# -- 12. shared runs folders, planted links ---------------------------------------------------------
def test_world_writable_runs_folder_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(UnsafeFolderError, match="writable by other users"):
        save_run(_run("r"), d)


def test_folder_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "theirs"
    d.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(d).st_uid + 1)
    with pytest.raises(UnsafeFolderError, match="owned by another user"):
        save_run(_run("r"), d)


def test_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    d = tmp_path / "runs"
    d.mkdir(mode=0o700)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.chmod(victim, 0o644)
    (d / "r.jsonl").symlink_to(victim)
    for name in ("r.jsonl.tmp", ".r.jsonl.tmp"):
        (d / name).symlink_to(victim)
    save_run(_run("r"), d)
    with profile("live", save=str(d)) as p:
        pass
    os.symlink(victim, d / f"{p.run_id}x.jsonl")
    assert victim.read_text() == "precious" and stat.S_IMODE(victim.stat().st_mode) == 0o644
    assert not (d / "r.jsonl").is_symlink() and load_run(d / "r.jsonl").run_id == "r"


def test_fifo_and_dangling_links_in_runs_folder_are_skipped(tmp_path: Path) -> None:
    d = tmp_path / "runs"
    save_run(_run("good"), d)
    os.mkfifo(d / "fifo.jsonl")
    (d / "zero.jsonl").symlink_to("/dev/zero")
    (d / "dangling.jsonl").symlink_to(tmp_path / "nowhere")
    assert [p.name for p in iter_run_files(d)] == ["good.jsonl"]
    with pytest.raises(store_mod.RunFileError, match="not a regular file"):
        load_run(d / "fifo.jsonl")


# -- 10. same-named files from different folders ----------------------------------------------------
def test_same_named_imports_do_not_overwrite(tmp_path: Path, corpus: Path) -> None:
    from tokprof.cli import main

    src = next(p for p in sorted(corpus.rglob("*.traj*")))
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        data = src.read_bytes()
        (tmp_path / sub / src.name).write_bytes(data)
    out = tmp_path / "out"
    assert main(["import", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out), "--json"]) == 0
    assert len(list(out.glob("*.jsonl"))) == 2


# -- minor: files the loader rejects, negative counts, damaged-file errors, private exports ----------
def test_numeric_names_round_trip(tmp_path: Path) -> None:
    with profile(123, save=str(tmp_path / "runs")) as p:  # type: ignore[arg-type]
        record_llm_call(model=123, messages=[{"role": "user", "content": "x"}], output="y",  # type: ignore[arg-type]
                        usage={"input_tokens": 1, "output_tokens": 1})
    back = load_run(p.path)
    assert back.name == "123" and back.llm_spans()[0].llm.model == "123"


def test_negative_token_counts_are_treated_as_missing(tmp_path: Path) -> None:
    """Issue #21 pt 7: a count that is not a token count is missing (reported per record), never a number;
    the span is kept (it used to fail the whole file)."""
    f = tmp_path / "neg.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"type": "run", "schema": 1, "run_id": "n", "name": "n"},
        {"type": "span", "span_id": "1", "kind": "llm", "name": "c", "start_ns": 0, "end_ns": 1,
         "llm": {"model": "gpt-4o", "messages": [], "usage": {"input_tokens": -5, "output_tokens": 1e308}}},
        {"type": "end"}]) + "\n")
    with pytest.warns(store_mod.DamagedRunWarning, match="not a token count"):
        run = load_run(f)
    usage = run.spans[0].llm.usage
    assert usage.sources.get("input_tokens") is None and usage.sources.get("output_tokens") is None
    assert run.metadata["fields_repaired"] == [
        "line 2 (span 1): input_tokens -5 is not a token count; treated as missing",
        "line 2 (span 1): output_tokens 1e+308 is not a token count; treated as missing"]


def test_report_on_a_damaged_run_file_names_the_real_error(tmp_path: Path, capsys) -> None:
    from tokprof.cli import main

    f = tmp_path / "bad.jsonl"
    f.write_text(json.dumps({"type": "run", "schema": 99, "run_id": "x"}) + "\n")
    assert main(["report", str(f), "-o", str(tmp_path / "r.html")]) == 1
    err = capsys.readouterr().err
    assert "schema version 99" in err and "unknown trace format" not in err


def test_html_report_and_otlp_export_are_owner_only(tmp_path: Path) -> None:
    from tokprof.cli import main

    src = save_run(_run("p"), tmp_path / "runs")
    assert main(["report", str(src), "-o", str(tmp_path / "r.html")]) == 0
    assert main(["export", str(src), "-o", str(tmp_path / "t.json")]) == 0
    for name in ("r.html", "t.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def test_stale_temp_files_are_cleaned(tmp_path: Path) -> None:
    d = tmp_path / "runs"
    d.mkdir(mode=0o700)
    old = d / ".x.jsonl.0123.tmp"
    old.write_text("partial")
    os.utime(old, (0, 0))
    private_files._cleaned_folders.discard(str(d))
    save_run(_run("r"), d)
    assert not old.exists()
