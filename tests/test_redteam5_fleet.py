"""Red team 5: the fleet commands (`ingest`, `stats`, `budget check`, `report --fleet`, `export --format
parquet`) against hostile run files, hostile ledgers, hostile budgets files and hostile flags. Each test
was written failing (a traceback or a wrong count) before the fix it names; the sweep at the end counts
inputs x commands, tracebacks and hangs (``redteam5: ...`` lines, shown with ``-s``)."""

from __future__ import annotations

import copy
import json
import signal
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.hostile_runs import _HEADER, _llm, _span, base, dump
from tokprof.cli import main

duckdb = pytest.importorskip("duckdb")  # the fleet extra; CI installs it (a skip fails under CI=true)


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[Any, str, str]:
    """(exit code or the uncaught exception, stdout, stderr); a hang is a TimeoutError after 120 s."""

    def hang(*_: Any) -> None:
        raise TimeoutError("no answer in 120 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)  # only to turn a hang into a failure; no test asserts on time
    code: Any
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            code = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # noqa: BLE001 - what these tests count
        code = exc
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    return code, out, err


def _clean(code: Any, err: str) -> bool:
    return isinstance(code, (int, type(None))) and "Traceback" not in err


def _write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)  # type: ignore[operator]
    return path


def _stats(ledger: Path, capsys: pytest.CaptureFixture[str], *by: str) -> dict[str, Any]:
    code, out, err = _cli(["stats", "--ledger", str(ledger), "--json", *(["--by", ",".join(by)] if by else [])], capsys)
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


# ---- runs whose times fit 64 bits one by one but not once added up ----------------------------------------
def _far_end() -> str:
    """Every span starts at wall clock 9e18 ns (fits int64) and lasts 9e18 ns: its end is beyond int64."""
    recs = [dict(r, wall_start_ns=9 * 10 ** 18, start_ns=0, end_ns=9 * 10 ** 18) if r.get("type") == "span" else r
            for r in base()]
    return dump(recs)


def test_span_end_beyond_int64_is_repaired_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `tokprof ingest` died in tokprof/fleet/rows.py `_times` (pyarrow OverflowError: the end
    wall clock start + duration does not fit int64). The loader now treats such an end as unknown and
    lists the repair; both calls reach the ledger."""
    from tokprof.profiler import load_run
    from tokprof.profiler.integrity import REPAIRS_KEY

    run_file = _write(tmp_path / "in" / "run.jsonl", _far_end())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = load_run(run_file)
    assert all(s.end_ns is None for s in run.spans)
    assert any("end_ns" in r for r in run.metadata[REPAIRS_KEY])
    ledger = tmp_path / "l.duckdb"
    code, _, err = _cli(["ingest", str(run_file), "--ledger", str(ledger)], capsys)
    assert code == 0 and _clean(code, err), err
    assert _stats(ledger, capsys)["total"]["calls"] == 2


# ---- a ledger with runs but no LLM call ---------------------------------------------------------------------
def _deep_agents(depth: int) -> str:
    """A run of ``depth`` nested agent spans and no LLM call (a 10,000-deep tree)."""
    recs: list[dict[str, Any]] = [dict(_HEADER)]
    recs += [_span(str(i), str(i - 1) if i > 1 else None, "agent", f"a{i % 7}") for i in range(1, depth + 1)]
    return dump(recs + [{"type": "end"}])


def test_fleet_report_of_a_ledger_without_calls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: IndexError in tokprof/fleet/report.py `stacked_bars` (one axis label asked of zero periods)."""
    runs = tmp_path / "runs"
    _write(runs / "deep.jsonl", _deep_agents(10_000))
    code, _, err = _cli(["ingest", "--dir", str(runs)], capsys)
    assert code == 0, err
    code, out, err = _cli(["report", "--fleet", "--dir", str(runs), "-o", str(tmp_path / "f.html")], capsys)
    assert code == 0 and _clean(code, err), err
    assert "1 runs, 0 calls" in out and (tmp_path / "f.html").stat().st_size > 0


# ---- the same run id in two files of one ingest -------------------------------------------------------------
def test_same_run_id_in_two_files_of_one_ingest_is_counted_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/fleet.md: "A run id seen again from another file replaces the earlier rows". Before: two files
    of one batch holding run ``hostile`` both went in (4 calls, 140 input tokens: the run counted twice);
    across two ingests it was replaced. Oracle: the run alone is 2 calls, 30 + 40 = 70 input tokens."""
    folder = tmp_path / "dups"
    _write(folder / "a.jsonl", dump(base()))
    _write(folder / "b.jsonl", dump([dict(_HEADER, name="again")] + base()[1:]))
    ledger = tmp_path / "l.duckdb"
    code, _, err = _cli(["ingest", str(folder), "--ledger", str(ledger)], capsys)
    assert code == 0, err
    total = _stats(ledger, capsys)["total"]
    assert (total["calls"], total["runs"], total["input_tokens"]) == (2, 1, 70)
    con = duckdb.connect(str(ledger), read_only=True)
    try:
        assert con.execute("SELECT name FROM runs").fetchall() == [("again",)]  # the newest file wins
    finally:
        con.close()


# ---- hostile ledgers ----------------------------------------------------------------------------------------
def test_truncated_ledger_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `ingest`, `report --fleet` and `export --format parquet` printed DuckDB's IOException
    traceback ("Could not read enough bytes") for a ledger cut in half (a full disk, a bad copy)."""
    runs = tmp_path / "runs"
    _write(runs / "run.jsonl", dump(base()))
    assert _cli(["ingest", "--dir", str(runs)], capsys)[0] == 0
    ledger = runs / "ledger.duckdb"
    data = ledger.read_bytes()
    ledger.write_bytes(data[: len(data) // 2])
    for argv in (["ingest", "--dir", str(runs)],
                 ["report", "--fleet", "--dir", str(runs), "-o", str(tmp_path / "f.html")],
                 ["export", "--format", "parquet", str(tmp_path / "pq"), "--dir", str(runs)]):
        code, _, err = _cli(argv, capsys)
        assert code == 1 and _clean(code, err), (argv[0], code, err)
        assert str(ledger) in err and "tokprof ingest" in err, err


def test_another_programs_duckdb_is_not_taken_for_a_ledger(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: `stats --ledger app.duckdb` was a CatalogException traceback, and `ingest --ledger
    app.duckdb` silently created the ledger's ~15 tables inside the other program's database."""
    app = tmp_path / "app.duckdb"
    con = duckdb.connect(str(app))
    con.execute("CREATE TABLE orders (id INTEGER)")
    con.close()
    run_file = _write(tmp_path / "in" / "run.jsonl", dump(base()))
    for argv in (["stats", "--ledger", str(app)], ["ingest", str(run_file), "--ledger", str(app)]):
        code, _, err = _cli(argv, capsys)
        assert code == 1 and _clean(code, err), err
        assert str(app) in err and "not a tokprof ledger" in err
    con = duckdb.connect(str(app), read_only=True)
    try:
        assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("orders",)]
    finally:
        con.close()


# ---- hostile flags and budgets files ------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["100000000000d", "9999999999999999999w", "300000000w"])
def test_since_before_year_one_is_an_error(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Before: OverflowError traceback in tokprof/fleet/stats.py `parse_date` (timedelta / date range)."""
    code, _, err = _cli(["stats", "--ledger", str(tmp_path / "none.duckdb"), "--since", value], capsys)
    assert code == 1 and _clean(code, err), err
    assert "--since" in err and value in err


_BUDGET = '[[budget]]\nname = "a"\nscope = "all"\nperiod = "week"\nlimit = "5"\nunit = "USD"\n'


@pytest.mark.parametrize("name,content", [
    ("deep.json", '{"budget": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ("deep.toml", "a = " + "[" * 5_000 + "]" * 5_000),
    ("utf16.toml", _BUDGET.encode("utf-16")),
    ("binary.json", bytes(range(256)) * 4),
], ids=["deep-json", "deep-toml", "utf16-toml", "binary-json"])
def test_hostile_budgets_file_names_the_file(name: str, content: str | bytes, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Before: a RecursionError traceback (nested arrays, JSON and TOML) or a bare "'utf-8' codec can't
    decode" line that did not say which file (tokprof/fleet/budgets.py `load_budgets`)."""
    path = _write(tmp_path / name, content)
    code, _, err = _cli(["budget", "check", str(path), "--ledger", str(tmp_path / "l.duckdb")], capsys)
    assert code == 1 and _clean(code, err), err
    assert str(path) in err


def test_budgets_file_with_a_bom_is_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A BOM (Notepad's UTF-8) was "not valid TOML"; the budget (5 USD) is now checked against the run's
    0.00022 USD (gpt-4o: 70 input x $2.5/M, 20 of them cached at $1.25/M... as the ledger prices it)."""
    runs = tmp_path / "runs"
    _write(runs / "run.jsonl", dump(base()))
    assert _cli(["ingest", "--dir", str(runs)], capsys)[0] == 0
    path = _write(tmp_path / "b.toml", "\ufeff" + _BUDGET)
    code, out, err = _cli(["budget", "check", str(path), "--dir", str(runs), "--json", "--at", "2026-12-01"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert [b["limit"] for b in doc["budgets"]] == ["5"] and doc["over"] == 0


# ---- the sweep: hostile run files x the fleet commands ---------------------------------------------------
def _llm_usage(usage: dict[str, Any], **over: Any) -> str:
    recs = copy.deepcopy(base())
    for r in recs:
        if r.get("kind") == "llm":
            r["llm"]["usage"] = usage
            r["llm"].update(over)
    return dump(recs)


def _with_header(**over: Any) -> str:
    return dump([dict(_HEADER, **over)] + base()[1:])


def _walls(ns: int) -> str:
    return dump([dict(_HEADER, started_wall_ns=ns)]
                + [dict(r, wall_start_ns=ns) if r.get("type") == "span" else r for r in base()[1:]])


def _cycle() -> str:
    llm = _llm([{"role": "user", "content": "x"}], {"input_tokens": 3, "output_tokens": 1})
    return dump([dict(_HEADER), _span("1", "3", "agent", "a"), _span("2", "1", "agent", "b"),
                 _span("3", "2", "llm", "gpt-4o", llm=llm), {"type": "end"}])


FLEET_CASES: list[tuple[str, str]] = [
    ("tags-sql", _with_header(tags={"te'am\"; DROP TABLE calls;--": "x' OR 1=1 --", "a]b": "%_\\"})),
    ("tags-nul-bidi", _with_header(tags={"t\x00k": "v\u202e\x00", "\u2066x": "\u200f"})),
    ("tags-100kb", _with_header(tags={"k" * 100_000: "v" * 100_000})),
    ("name-100kb", _with_header(name="n" * 100_000)),
    ("year-1", _walls(-62_135_596_800 * 10 ** 9)),
    ("year-9999", _walls(253_402_300_799 * 10 ** 9)),
    ("wall-int64-min", _walls(-(2 ** 63) + 1)),
    ("end-beyond-int64", _far_end()),
    ("tokens-2**63", _llm_usage({"input_tokens": 2 ** 63, "output_tokens": 2 ** 63 - 1, "cache_read_tokens": 2 ** 62})),
    ("tokens-negative-nan", _llm_usage({"input_tokens": -5, "output_tokens": float("nan")})),
    ("cost-1e300", _llm_usage({"input_tokens": 5, "output_tokens": 5}, cost=1e300)),
    ("cost-negative", _llm_usage({"input_tokens": 5, "output_tokens": 5}, cost=-5)),
    ("cost-1e-300", _llm_usage({"input_tokens": 5, "output_tokens": 5}, cost=1e-300)),
    ("cost-object-huge", _llm_usage({"input_tokens": 5, "output_tokens": 5},
                                    cost={"amount": "99999999999999999999", "currency": "USD"})),
    ("model-sql-nul", _llm_usage({"input_tokens": 5, "output_tokens": 5}, model="gpt-4o'); DROP TABLE runs;--\x00")),
    ("model-100kb", _llm_usage({"input_tokens": 5, "output_tokens": 5}, model="m" * 100_000)),
    ("deep-10k-no-calls", _deep_agents(10_000)),
    ("parent-cycle", _cycle()),
]


def test_fleet_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every case through the five fleet commands (and the same run id twice in one folder): no traceback,
    no hang, nothing written outside the runs folder and the named outputs."""
    budgets = _write(tmp_path / "budgets.toml", _BUDGET)
    runs_tried, failures = 0, []
    for name, text in FLEET_CASES:
        runs = tmp_path / "fleet" / name
        _write(runs / "run.jsonl", text)
        _write(runs / "copy" / "same-id.jsonl", text)
        out = tmp_path / "out" / name
        for argv in (["ingest", "--dir", str(runs), "--json"],
                     ["stats", "--dir", str(runs), "--by", "tag:team,model,path,run,week", "--json"],
                     ["stats", "--dir", str(runs), "--by", "day,function,tool,agent,status,provider", "--csv"],
                     ["budget", "check", str(budgets), "--dir", str(runs)],
                     ["report", "--fleet", "--dir", str(runs), "-o", str(out / "f.html")],
                     ["export", "--format", "parquet", str(out / "pq"), "--dir", str(runs)]):
            runs_tried += 1
            code, _, err = _cli(argv, capsys)
            if not _clean(code, err) or code not in (0, 1):
                failures.append(f"{name}: tokprof {argv[0]}: {code!r} {err[-200:]}")
    stray = [p for p in tmp_path.rglob("*") if not p.is_relative_to(tmp_path / "fleet")
             and not p.is_relative_to(tmp_path / "out") and p != budgets and not p.is_relative_to(tmp_path / "home")]
    with capsys.disabled():
        print(f"\nredteam5: fleet sweep {len(FLEET_CASES)} inputs x 6 commands ({runs_tried} runs), "
              f"tracebacks/hangs {len(failures)}, files written elsewhere {len(stray)}")
    assert failures == [] and stray == []


def test_a_ledger_that_is_a_symlink_is_never_written_through(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A ``ledger.duckdb`` planted as a link to a file elsewhere: ``ingest`` refuses it with one line naming it
    and writes nothing at the link's target."""
    from tokprof.cli import main

    outside = tmp_path / "elsewhere" / "victim.duckdb"
    outside.parent.mkdir()
    link = tmp_path / "runs" / "ledger.duckdb"
    link.parent.mkdir()
    link.symlink_to(outside)
    assert main(["ingest", str(link.parent), "--ledger", str(link)]) != 0
    err = capsys.readouterr().err
    assert "symbolic link" in err and str(link) in err and "Traceback" not in err
    assert not outside.exists()
