"""Budgets (issue 18.3): `tokprof budget check` over a ledger whose spend is known by hand, and
`profile(budget=...)` during a run (warning at 80%, exception only for a hard limit), including a real
OpenAI client over the loopback server."""

from __future__ import annotations

import datetime as dt
import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest

from llm_server import Reply
from tokprof.cli import main
from tokprof.fleet.budgets import BudgetError, load_budgets
from tokprof.fleet.live_budget import BudgetExceeded, BudgetWarning
from tokprof.profiler import profile, record_llm_call
from tokprof.profiler.store import load_run

# gpt-4o at OpenAI's list price (https://openai.com/api/pricing/): $2.50 per 1M input, $10 per 1M output.
# A call of 1000 input + 100 output tokens costs 1000 x 2.5e-6 + 100 x 1e-5 = $0.0035.
CALL_USD = Decimal("0.0035")


def _call(i: int = 0, model: str = "gpt-4o") -> Any:
    return record_llm_call(model=model, provider="openai", messages=[{"role": "user", "content": f"q{i}"}],
                           output=f"a{i}", usage={"input_tokens": 1000, "output_tokens": 100})


def _ledger(runs_dir: Path) -> None:
    """Two runs today: team=payments (3 gpt-4o calls, $0.0105) and team=search (1 call, $0.0035)."""
    with profile("checkout", tags={"team": "payments"}, save=str(runs_dir)):
        for i in range(3):
            _call(i)
    with profile("lookup", tags={"team": "search"}, save=str(runs_dir)):
        _call(9)
    assert main(["ingest", "--dir", str(runs_dir)]) == 0


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_budget_check_table_exit_code_and_json(tmp_path, capsys):
    runs = tmp_path / "runs"
    _ledger(runs)
    # payments: $0.0105 of $0.01 -> over; search: 1100 of 1300 tokens -> 85% -> warn; all in CNY -> ok
    f = _write(tmp_path / "budgets.toml", """
[[budget]]
name = "payments daily"
scope = "tag:team=payments"
period = "day"
limit = "0.01"
unit = "USD"

[[budget]]
scope = "tag:team=search"
period = "week"
limit = 1300
unit = "tokens"

[[budget]]
scope = "all"
period = "month"
limit = "100"
unit = "CNY"
""")
    capsys.readouterr()
    assert main(["budget", "check", str(f), "--dir", str(runs)]) == 1
    table = capsys.readouterr().out
    assert "payments daily" in table and "OVER" in table and "WARN" in table and "105%" in table and "85%" in table
    assert max(len(line) for line in table.splitlines()) <= 80
    assert main(["budget", "check", str(f), "--dir", str(runs), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    rows = {r["budget"]: r for r in doc["budgets"]}
    assert Decimal(rows["payments daily"]["used"]) == 3 * CALL_USD
    assert rows["payments daily"]["status"] == "over"
    assert Decimal(rows["tag:team=search per week"]["used"]) == 1100
    assert rows["tag:team=search per week"]["status"] == "warn"
    cny = rows["all per month"]
    assert cny["status"] == "ok" and Decimal(cny["used"]) > 4 * CALL_USD  # yuan, converted by the price table
    assert (doc["over"], doc["warn"]) == (1, 1)
    # under budget: exit 0, unless warnings are asked to fail
    ok = _write(tmp_path / "ok.json", json.dumps({"budget": [
        {"scope": "tag:team=search", "period": "week", "limit": 1300, "unit": "tokens"}]}))
    assert main(["budget", "check", str(ok), "--dir", str(runs)]) == 0
    assert main(["budget", "check", str(ok), "--dir", str(runs), "--fail-on", "warn"]) == 1
    # a period that holds nothing
    last_year = (dt.date.today() - dt.timedelta(days=400)).isoformat()
    assert main(["budget", "check", str(f), "--dir", str(runs), "--at", last_year]) == 0


def test_bad_budget_files_are_named(tmp_path):
    with pytest.raises(BudgetError, match=r"bad.toml: budget #1: .*unit must be one of"):
        load_budgets(_write(tmp_path / "bad.toml", '[[budget]]\nlimit = 5\nunit = "EUR"\n'))
    with pytest.raises(BudgetError, match=r"b.json: budget #2: no limit"):
        load_budgets(_write(tmp_path / "b.json", '{"budget": [{"usd": 1}, {"scope": "all"}]}'))
    with pytest.raises(BudgetError, match=r"c.toml: not valid TOML"):
        load_budgets(_write(tmp_path / "c.toml", "[[budget]\n"))
    with pytest.raises(BudgetError, match="scope must be"):
        load_budgets(_write(tmp_path / "d.json", '[{"usd": 1, "scope": "team=x"}]'))


def test_in_run_budget_warns_at_80_percent_and_when_over_without_stopping():
    # $0.0125 limit: after call 3 ($0.0105) 84% -> warning; after call 4 ($0.014) 112% -> over, no exception
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with profile("soft", budget={"usd": "0.0125"}) as run:
            seen = []
            for i in range(5):
                _call(i)
                seen.append(len([w for w in caught if issubclass(w.category, BudgetWarning)]))
    assert seen == [0, 0, 1, 2, 2]  # once at 80%, once over; never an exception
    msgs = [str(w.message) for w in caught if issubclass(w.category, BudgetWarning)]
    assert "84%" in msgs[0] and "over budget" in msgs[1]
    state = run.metadata["budgets"][0]
    assert state["status"] == "over" and Decimal(state["used_in_run"]) == 5 * CALL_USD
    assert len(run.llm_spans()) == 5


def test_hard_budget_raises_into_the_agent_and_keeps_the_span(tmp_path):
    done = []
    with pytest.warns(BudgetWarning):
        with pytest.raises(BudgetExceeded) as info:
            with profile("hard", budget={"tokens": 3000, "hard": True}, save=str(tmp_path)) as run:
                for i in range(5):
                    _call(i)  # 1100 tokens each: the third crosses 3000
                    done.append(i)
    assert done == [0, 1] and info.value.used == 3300
    assert "hard limit" in str(info.value)
    saved = load_run(run.path)
    assert len(saved.llm_spans()) == 3  # the call that crossed the limit is on disk too


def test_scoped_budget_counts_only_its_model():
    with profile("mixed", budget=[{"usd": "0.005", "scope": "model=gpt-4o-mini", "hard": True}]) as run:
        for i in range(4):
            _call(i)  # gpt-4o: out of scope
    assert run.metadata["budgets"][0]["status"] == "ok"
    assert Decimal(run.metadata["budgets"][0]["used_in_run"]) == 0


def test_a_mistyped_budget_warns_and_the_agent_goes_on():
    with pytest.warns(BudgetWarning, match="unit must be one of"):
        with profile("typo", budget={"limit": 1, "unit": "EUR"}) as run:
            _call()
    assert len(run.llm_spans()) == 1 and "budgets" not in run.metadata


def test_hard_budget_stops_a_real_openai_client(llm_server):
    client = openai.OpenAI(base_url=llm_server.openai_url, api_key="test", max_retries=0)
    llm_server.script(*[Reply(input_tokens=1000, output_tokens=100) for _ in range(4)])
    answers = []
    with pytest.warns(BudgetWarning):
        with pytest.raises(BudgetExceeded):
            with profile("sdk", instrument=["openai"], budget={"usd": "0.007", "hard": True}):
                for _ in range(4):
                    r = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
                    answers.append(r.choices[0].message.content)
    # the second call crossed $0.007 (2 x $0.0035): the agent saw the first answer, then the exception
    assert len(answers) == 1
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize("entry, says", [
    ({"limit": "1e999999"}, r"limit '1e999999' is above"),
    ({"limit": 1e308, "unit": "tokens"}, r"limit 1e\+308 is above"),
    ({"limit": "NaN"}, r"limit 'NaN' is not a finite number$"),
    ({"limit": "1e-999999"}, r"limit '1e-999999' is below 0\.000001"),  # every spend showed as "inf%"
    ({"limit": "5", "name": {"x": 1}}, r"name must be a string, not dict"),
])
def test_absurd_budget_entries_are_refused_with_their_entry_named(tmp_path, entry, says):
    """A dict name crashed the table renderer (a traceback); a 1e308 limit was accepted; a NaN limit's
    error named the file and entry twice."""
    f = tmp_path / "b.json"
    f.write_text(json.dumps({"budget": [{"scope": "all", "period": "day", "unit": "USD", **entry}]}))
    with pytest.raises(BudgetError, match=r"^" + str(f).replace(".", r"\.") + r": budget #1: .*" + says) as info:
        load_budgets(f)
    assert str(info.value).count("budget #1") == 1


def test_ledger_memory_setting_is_a_size_or_the_default(tmp_path, monkeypatch):
    """$TOKPROF_LEDGER_MEMORY is put into SQL: a quote and a second statement (here a COPY that would write
    a file outside the runs folder) must never reach DuckDB."""
    from tokprof.fleet.ledger import DEFAULT_MEMORY, connect, memory_limit

    outside = tmp_path / "outside.csv"
    monkeypatch.setenv("TOKPROF_LEDGER_MEMORY", f"1GB'; COPY (SELECT 1) TO '{outside}'; SET memory_limit='1GB")
    with pytest.warns(UserWarning, match="TOKPROF_LEDGER_MEMORY"):
        assert memory_limit() == DEFAULT_MEMORY
    with pytest.warns(UserWarning):
        connect(tmp_path / "runs" / "ledger.duckdb").close()
    assert not outside.exists()
    monkeypatch.setenv("TOKPROF_LEDGER_MEMORY", "2GB")
    assert memory_limit() == "2GB"


def test_a_ledger_held_by_another_process_says_so(tmp_path):
    """A lock conflict used to advise deleting the ledger."""
    import subprocess
    import sys

    from tokprof.fleet.ledger import LedgerError, connect

    path = tmp_path / "ledger.duckdb"
    connect(path).close()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(path)!r}); "
                               "print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LedgerError, match="in use by another process") as info:
            connect(path)
        assert "delete it" not in str(info.value)
    finally:
        holder.kill()
        holder.wait()
