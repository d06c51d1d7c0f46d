"""`tokprof ingest --jobs N` (issue 18.5): the per-run work in N spawned worker processes gives the same
ledger as the one-process path, table by table, on the corpus with a hostile file among it; a worker that
dies loses nothing already loaded, names the file that killed it, and does not hang."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
from fleet_engines import CRASH_MARK, assert_same_ledger, crashing_file_rows

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@pytest.fixture(scope="module")
def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        pytest.fail(f"corpus not found at {CORPUS}") if os.environ.get("CI") else pytest.skip("no corpus")
    from tokprof.commands.import_cmd import expand

    return expand([str(CORPUS)])


def _ingest(path: Path, files: list[Path], **kw):  # noqa: ANN202
    from tokprof.fleet.ledger import connect, ingest
    from tokprof.fleet.process_engine import process_ingest

    con = connect(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = process_ingest(con, files, **kw) if kw else ingest(con, files)
    return con, rep


def test_jobs_ingest_equals_local_ingest_on_the_corpus_with_a_bad_file(corpus_files, tmp_path):
    bad = tmp_path / "truncated.json"
    bad.write_text('{"tasks": [')  # a trace cut short: no importer reads it
    files = [*corpus_files[:3], bad, *corpus_files[3:]]
    local, rep_local = _ingest(tmp_path / "local.duckdb", files)
    jobs, rep_jobs = _ingest(tmp_path / "jobs.duckdb", files, jobs=2)
    assert rep_jobs.to_dict() == rep_local.to_dict()  # the same counts, the same error, in the same words
    assert rep_jobs.runs == 383 and rep_jobs.calls == 5745 and rep_jobs.files_ingested == len(corpus_files)
    assert len(rep_jobs.errors) == 1 and rep_jobs.errors[0].startswith(f"{bad}: ")
    assert_same_ledger(local, jobs)
    assert not (tmp_path / "jobs.duckdb.parts").exists()  # the workers' parts are loaded and removed
    # incremental: nothing changed -> nothing re-ingested (only the bad file is tried again)
    from tokprof.fleet.process_engine import process_ingest

    again = process_ingest(jobs, files, jobs=2)
    assert again.files_ingested == 0 and again.files_skipped == len(corpus_files) and len(again.errors) == 1
    assert_same_ledger(local, jobs)
    local.close()
    jobs.close()


def test_a_worker_that_dies_loses_nothing_and_names_the_file(corpus_files, tmp_path, monkeypatch):
    import tokprof.fleet.process_engine as pe

    # one group per worker: the killer file takes innocent files down with its group; they must be recovered
    monkeypatch.setattr(pe, "GROUPS_PER_WORKER", 1)
    small = sorted(corpus_files, key=lambda p: p.stat().st_size)[:6]
    killer = tmp_path / f"run-{CRASH_MARK}.jsonl"
    killer.write_text("{}\n")
    already, rest = small[:2], small[2:]
    con, _ = _ingest(tmp_path / "jobs.duckdb", already)  # in the ledger before the crash
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = pe.process_ingest(con, [*already, killer, *rest], jobs=2, worker=crashing_file_rows)
    assert rep.errors == [f"{killer}: the worker process died while reading it; not ingested (a later ingest "
                          "tries it again)"]
    assert rep.files_skipped == 2 and rep.files_ingested == len(rest)
    # the ledger holds everything but the killer file, as a one-process ingest of those files gives it
    ref, _ = _ingest(tmp_path / "ref.duckdb", small)
    assert_same_ledger(ref, con)
    assert not (tmp_path / "jobs.duckdb.parts").exists()
    # the killer is not recorded as ingested: the next ingest reads it again (here: it is not a run file)
    again = pe.process_ingest(con, [*already, killer, *rest], jobs=2)
    assert again.files_skipped == len(small) and again.files_ingested == 0
    assert len(again.errors) == 1 and again.errors[0].startswith(f"{killer}: ") and "died" not in again.errors[0]
    assert_same_ledger(ref, con)
    con.close()
    ref.close()


def test_cli_jobs_json_adds_fields_only_and_fails_on_a_bad_file(corpus_files, tmp_path, capsys, monkeypatch):
    import sys

    from tokprof.cli import main

    small = sorted(corpus_files, key=lambda p: p.stat().st_size)[:3]
    bad = tmp_path / "empty.json.gz"
    bad.write_bytes(b"not gzip")
    ledger = tmp_path / "l.duckdb"
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)  # a terminal: progress is shown
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["ingest", *map(str, small), str(bad), "--ledger", str(ledger), "--jobs", "2", "--json"])
    out = capsys.readouterr()
    assert "\r\x1b[2Ktokprof ingest: 4/4 new or changed files, 188 calls loaded" in out.err  # the status line
    assert "\r" not in out.out
    doc = json.loads(out.out)
    assert code == 1 and str(bad) in out.err
    assert {"files_seen", "files_skipped", "files_ingested", "runs", "calls", "errors", "ledger"} <= set(doc)
    assert doc["engine"] == "processes" and doc["jobs"] == 2
    assert doc["files_seen"] == 4 and doc["files_ingested"] == 3 and len(doc["errors"]) == 1
    assert main(["ingest", str(small[0]), "--ledger", str(ledger), "--jobs", "-1"]) == 2
    assert "--jobs must be 0" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "l.duckdb.parts", ignore_errors=True)


def test_jobs_zero_is_one_per_core():
    from tokprof.fleet.process_engine import resolve_jobs

    assert resolve_jobs(0) == (os.cpu_count() or 1)
    assert resolve_jobs(3) == 3
    with pytest.raises(ValueError, match="--jobs"):
        resolve_jobs(-2)


def test_workers_that_cannot_start_give_one_clear_error_not_a_hang(corpus_files, tmp_path, monkeypatch):
    """Every worker process dies as it starts (here: a sitecustomize on the path only the spawned processes
    see; in life, a broken environment): one error saying so, not each file blamed in turn."""
    from tokprof.fleet.ledger import connect
    from tokprof.fleet.process_engine import WorkerStartError, process_ingest

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import os\nos._exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", f"{site}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    small = sorted(corpus_files, key=lambda p: p.stat().st_size)[:2]
    con = connect(tmp_path / "l.duckdb")
    with pytest.raises(WorkerStartError, match="die as they start.*--jobs 1"):
        process_ingest(con, small, jobs=2)
    assert con.execute("SELECT count(*) FROM files").fetchone()[0] == 0
    con.close()


def test_groups_balance_by_size_heaviest_first_and_count_is_bounded(tmp_path):
    from tokprof.fleet.parts import group_count, groups

    sizes = {"a": 900, "b": 500, "c": 400, "d": 300, "e": 100}
    paths = []
    for name, size in sizes.items():
        (tmp_path / name).write_bytes(b"x" * size)
        paths.append(tmp_path / name)
    got = groups(paths, 2)
    # by hand: largest first, each to the lightest group (ties: the group listed first after a stable sort
    # by size): a -> G1 (900); b -> G2 (500); c -> G2 (900); d -> G2 (tie, G2 sorts first: 1200); e -> G1
    # (1000). Heaviest group first
    assert [[Path(p).name for p in g] for g in got] == [["b", "c", "d"], ["a", "e"]]
    assert sorted(Path(p).name for g in got for p in g) == sorted(sizes)  # every file exactly once
    assert group_count(paths, workers=2, per_worker=4, max_bytes=1 << 30) == 5  # never more groups than files
    assert group_count(paths, workers=1, per_worker=1, max_bytes=1 << 30) == 1
    assert group_count(paths, workers=1, per_worker=1, max_bytes=1000) == 3  # 2,200 bytes in <= 1,000-byte groups
