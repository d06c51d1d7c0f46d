"""Red team 6: what the fleet commands print and write when the data is hostile. A tag value, model or tool
name comes from the agent (or from a foreign trace file): in the `stats` table it reached the terminal as
rich markup and raw ESC sequences; in `stats --csv` a value starting with ``=`` was a spreadsheet formula; a
hostile file name in `ingest`'s error lines reached the terminal raw. A bad ``--limit`` was reported as a
damaged ledger ("delete it"), and the ledger and its Parquet export (which hold the prompts) were readable
by every user while run files and reports are owner-only. Each test failed before its fix."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any

import pytest

from tokprof.cli import main
from tokprof.profiler import profile, record_llm_call, span

duckdb = pytest.importorskip("duckdb")  # the fleet extra; CI installs it (a skip fails under CI=true)

EVIL = "=HYPERLINK(\"http://x\")[red]RED[/red]\x1b]0;pwned\x07\x1b[2J\u202e"
"""A spreadsheet formula, rich markup, an OSC window-title sequence, a clear-screen CSI, a bidi override."""


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    code: Any
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - what these tests count
        code = exc
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def hostile_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """A ledger of one run whose tag, model and tool name are :data:`EVIL` (2 calls, 5 + 5 input tokens)."""
    runs = tmp_path / "runs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile("hostile", save=str(runs), tags={"team": EVIL}):
            with span(EVIL, kind="tool"):
                record_llm_call(model=EVIL, messages=[{"role": "user", "content": "hi"}], output="x",
                                usage={"input_tokens": 5, "output_tokens": 2})
            record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "hi"}], output="x",
                            usage={"input_tokens": 5, "output_tokens": 2})
    code, _, err = _cli(["ingest", "--dir", str(runs)], capsys)
    assert code == 0, err
    return runs / "ledger.duckdb"


@pytest.mark.parametrize("by", ["tag:team", "model", "tool"])
def test_stats_table_prints_hostile_names_as_text(by: str, hostile_ledger: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Before: tokprof/commands/stats_cmd.py rendered with a plain rich Console: ``[red]RED[/red]`` was taken
    as markup (the name shown as ``RED``) and ESC ] 0 (window title) / ESC [ 2J reached the terminal."""
    code, out, err = _cli(["stats", "--ledger", str(hostile_ledger), "--by", by], capsys)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert "[red]" in out  # shown literally: the name is data, not markup


def test_stats_csv_cells_are_never_formulas(hostile_ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: the group cell was written as ``=HYPERLINK(...)``: a spreadsheet opening the CSV runs it
    (OWASP "CSV injection"). A cell starting with = + - @ (or tab/CR) now starts with a quote ``'``; the
    numbers are untouched and control characters are gone."""
    code, out, err = _cli(["stats", "--ledger", str(hostile_ledger), "--by", "model", "--csv"], capsys)
    assert code == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][0] == "model" and rows[-1][0] == "(total)"
    cells = [c for r in rows for c in r]
    assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for c in cells)
    assert "\x1b" not in out and "\x07" not in out
    hostile = next(r for r in rows if "HYPERLINK" in r[0])
    assert hostile[0].startswith("'=HYPERLINK")
    assert (hostile[1], hostile[3]) == ("1", "5")  # calls, input tokens: numbers stay numbers
    assert rows[-1][3] == "10"


def test_csv_keeps_negative_numbers_as_numbers() -> None:
    from tokprof.commands.stats_cmd import write_csv

    doc = {"by": ["tag:x"], "currency": "USD",
           "rows": [{"group": {"tag:x": "-2+3"}, "calls": 1, "runs": 1, "input_tokens": 1, "output_tokens": 0,
                     "cache_read_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0, "total_tokens": 1,
                     "cache_hit_rate": None, "cost": None, "unpriced_calls": 1, "counted_calls": 0,
                     "simulated_cost_calls": 0}]}
    doc["total"] = {k: v for k, v in doc["rows"][0].items() if k != "group"}  # type: ignore[index]
    buf = io.StringIO()
    write_csv(doc, buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    assert rows[1][0] == "'-2+3"  # a text cell that a spreadsheet would compute


def test_budget_table_prints_hostile_names_as_text(hostile_ledger: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Before: tokprof/commands/budget_cmd.py used a plain rich Console; a budget named (or scoped to a tag
    value) with markup or ESC sequences reached the terminal."""
    f = tmp_path / "budgets.json"
    f.write_text(json.dumps({"budget": [{"name": "[blink]x[/blink]\x1b]0;t\x07", "scope": "all", "period": "month",
                                         "limit": "1000", "unit": "tokens"}]}))
    code, out, err = _cli(["budget", "check", "--ledger", str(hostile_ledger), str(f)], capsys)
    assert code == 0, err
    assert "\x1b" not in out and "\x07" not in out and "[blink]" in out


def test_ingest_errors_name_hostile_files_without_control_characters(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Before: tokprof/commands/ingest_cmd.py printed each unreadable file's error line as it was: a file
    named ``ESC]0;pwned BEL.jsonl`` in a shared folder set the terminal's title."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "\x1b]0;pwned\x07\x1b[31mred.jsonl").write_text("garbage\n")
    code, out, err = _cli(["ingest", str(folder), "--ledger", str(tmp_path / "l.duckdb")], capsys)
    assert code == 1
    assert "tokprof: error:" in err and "red.jsonl" in err and "Traceback" not in err
    assert "\x1b" not in err + out and "\x07" not in err + out


@pytest.mark.parametrize("limit", ["-5", "99999999999999999999999"])
def test_bad_limit_is_a_usage_error_not_a_damaged_ledger(limit: str, hostile_ledger: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Before: DuckDB's "LIMIT/OFFSET cannot be negative" (or INT64 out of range) came out as "the ledger
    cannot be read ...; delete it and run `tokprof ingest` again": advice to delete a good ledger."""
    code, out, err = _cli(["stats", "--ledger", str(hostile_ledger), "--by", "model", "--limit", limit], capsys)
    assert code == 1 and "--limit" in err and "delete" not in err and "Traceback" not in err
    assert hostile_ledger.exists()


def test_a_query_error_is_not_called_damage(hostile_ledger: Path) -> None:
    """Any DuckDB error that is not about the file (a binder or conversion error: tokprof's own query or a
    flag it let through) says the query failed; only I/O or corruption errors advise rebuilding."""
    from tokprof.fleet.ledger import LedgerError, opened

    with pytest.raises(LedgerError) as info:
        with opened(hostile_ledger, read_only=True) as con:
            con.execute("SELECT * FROM call_facts LIMIT -1").fetchall()
    assert "delete" not in str(info.value) and str(hostile_ledger) in str(info.value)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_ledger_outside_the_runs_folder_is_owner_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ledger holds every prompt (its messages table). Before: ``--ledger /shared/l.duckdb`` made a
    0644 file (umask 022) while run files, reports and OTLP exports are 0600."""
    old = os.umask(0o022)
    try:
        runs = tmp_path / "runs"
        with profile("p", save=str(runs)):
            record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": "private prompt"}], output="x",
                            usage={"input_tokens": 3, "output_tokens": 1})
        ledger = tmp_path / "shared" / "l.duckdb"
        code, _, err = _cli(["ingest", "--dir", str(runs), "--ledger", str(ledger)], capsys)
        assert code == 0, err
        assert _mode(ledger) & 0o077 == 0
        code, _, err = _cli(["ingest", "--dir", str(runs)], capsys)  # the runs folder's own ledger
        assert code == 0, err
        out = tmp_path / "export"
        code, _, err = _cli(["export", "--format", "parquet", str(out), "--dir", str(runs)], capsys)
        assert code == 0, err
        written = [out, *out.rglob("*")]
        assert written and all(_mode(p) & 0o077 == 0 for p in written), [(p, oct(_mode(p))) for p in written]
    finally:
        os.umask(old)


_FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from tokprof.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
@pytest.mark.parametrize("jobs", [[], ["--jobs", "2"]], ids=["one-process", "jobs-2"])
def test_ingest_on_a_full_disk_names_the_write_and_loses_nothing(jobs: list[str], tmp_path: Path) -> None:
    """A write that fails mid-ingest (disk full, file size limit). Before: the failed COMMIT had ended the
    transaction, ``_flush``'s ROLLBACK raised "cannot rollback - no transaction is active", and that hid
    the cause. Now the line names the failed write; the ledger keeps what was committed and a re-ingest
    once there is room gives every call, once."""
    import subprocess
    import sys

    runs = tmp_path / "runs"
    for i in range(12):
        with profile(f"r{i}", save=str(runs)):
            for j in range(30):
                record_llm_call(model="gpt-4o", messages=[{"role": "user", "content": f"{i} {j} " + "w" * 2000}],
                                output="x", usage={"input_tokens": 100, "output_tokens": 10})
    ledger = tmp_path / "l.duckdb"
    argv = ["ingest", "--dir", str(runs), "--ledger", str(ledger), *jobs]
    r = subprocess.run([sys.executable, "-c", _FULL_DISK, "300000", *argv], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot rollback" not in r.stderr and "too large" in r.stderr and "delete" not in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "tokprof.cli", *argv], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "tokprof.cli", "stats", "--ledger", str(ledger), "--json"],
                       capture_output=True, text=True, timeout=300)
    total = json.loads(r.stdout)["total"]
    assert (total["calls"], total["runs"], total["input_tokens"]) == (360, 12, 36000)


def test_whatif_prints_recorded_model_names_without_control_characters(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Before: tokprof/commands/whatif_cmd.py printed the recorded model names (from the run file) with
    plain print: ESC ] 0 (window title) and ESC [ 2J (clear screen) reached the terminal."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile("w", save=str(tmp_path / "runs")) as p:
            record_llm_call(model=EVIL, messages=[{"role": "user", "content": "hi"}], output="x",
                            usage={"input_tokens": 5, "output_tokens": 2})
    code, out, err = _cli(["whatif", str(p.path), "--model", "gpt-4o-mini"], capsys)
    assert code == 0, err
    assert "HYPERLINK" in out and "\x1b" not in out + err and "\x07" not in out + err


@pytest.mark.parametrize("cut", [4096, 262144], ids=["last-4k", "last-block"])
def test_a_ledger_cut_short_is_refused_before_any_answer(cut: int, hostile_ledger: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The known gap of red team 5: DuckDB reads blocks lazily, so a ledger cut short answered the queries
    whose tables lie before the cut (``stats`` gave its totals while ``stats --by tag:team`` failed on the
    same file). The header's block count says how long the file must be: a shorter file is refused by
    name before any query, by every command (ingest would have written onto it)."""
    import shutil

    budgets = tmp_path / "budgets.json"
    budgets.write_text(json.dumps({"budget": [{"scope": "all", "period": "month", "limit": "1", "unit": "USD"}]}))
    damaged = tmp_path / "cut.duckdb"
    shutil.copy(hostile_ledger, damaged)
    with open(damaged, "r+b") as fh:
        fh.truncate(damaged.stat().st_size - cut)
    for argv in (["stats", "--ledger", str(damaged), "--json"], ["stats", "--ledger", str(damaged), "--by", "model"],
                 ["ingest", "--dir", str(hostile_ledger.parent), "--ledger", str(damaged)],
                 ["budget", "check", "--ledger", str(damaged), str(budgets)]):
        code, out, err = _cli(argv, capsys)
        assert code == 1 and "cut short" in err and str(damaged) in err, (argv, code, out, err)
        assert "Traceback" not in err and '"calls"' not in out


def test_a_whole_ledger_is_not_called_cut_short(hostile_ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["stats", "--ledger", str(hostile_ledger), "--json"], capsys)
    assert code == 0 and json.loads(out)["total"]["calls"] == 2, err


@pytest.mark.parametrize("what", ["device", "fifo", "folder", "missing"])
def test_count_names_what_is_wrong_with_a_path(what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``tokprof count /dev/zero`` said "no such file" (it exists); a FIFO the same. Each gets its reason, in
    one line, and never hangs reading a stream that does not end."""
    import os

    from tokprof.cli import main

    path = {"device": Path("/dev/zero"), "fifo": tmp_path / "pipe", "folder": tmp_path,
            "missing": tmp_path / "nope.txt"}[what]
    if what == "fifo":
        os.mkfifo(path)
    assert main(["count", "--model", "gpt-4o", str(path)]) == 1
    err = capsys.readouterr().err
    want = {"device": "not a regular file", "fifo": "not a regular file", "folder": "is a folder",
            "missing": "no such file"}[what]
    assert err.startswith(f"tokprof: error: {path}: {want}") and "Traceback" not in err, err
