"""`tokprof report --fleet` (issue 18.4): numbers from a hand-made fleet, and the page in real headless
Chromium: no console errors, no network request, no script run from hostile tags, the numbers on screen."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from tokprof.cli import main
from tokprof.profiler import profile, record_llm_call, span
from tokprof.profiler.store import save_run

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
HOSTILE_TEAM = "<script>alert('x')</script><img src=x onerror=alert(1)>"
DAY_NS = 86_400 * 10**9
BASE_NS = 1_764_547_200 * 10**9  # 2025-12-01 00:00 UTC


def _run(runs: Path, team: str, day: int, *, break_prefix: bool = False, cached: int = 0) -> None:
    """A run on 2025-12-(1+day): an agent -> plan function -> two gpt-4o calls, and a search tool."""
    sys2 = "You are a helpful agent. Now: 10:01:07" if break_prefix else "You are a helpful agent. Now: 10:00:00"
    with profile("support-agent", tags={"team": team}) as run:
        with span("plan", kind="function"):
            record_llm_call(model="gpt-4o", provider="openai",
                            messages=[{"role": "system", "content": "You are a helpful agent. Now: 10:00:00"},
                                      {"role": "user", "content": "where is order 42? " * 40}],
                            output="let me look", usage={"input_tokens": 1000, "output_tokens": 100,
                                                         "cache_read_tokens": cached})
            with span("search_orders", kind="tool"):
                pass
            record_llm_call(model="gpt-4o", provider="openai",
                            messages=[{"role": "system", "content": sys2},
                                      {"role": "user", "content": "where is order 42? " * 40},
                                      {"role": "assistant", "content": "let me look"},
                                      {"role": "user", "content": "it shipped"}],
                            output="it shipped yesterday", usage={"input_tokens": 1000, "output_tokens": 100})
    for s in run.spans:
        s.wall_start_ns = BASE_NS + day * DAY_NS + (s.wall_start_ns % DAY_NS) // 2
    save_run(run, runs)


@pytest.fixture
def fleet(tmp_path) -> Path:
    runs = tmp_path / "runs"
    _run(runs, "payments", 0, cached=800)
    _run(runs, "payments", 1, break_prefix=True)
    _run(runs, HOSTILE_TEAM, 2)
    (runs / "budgets.toml").write_text('[[budget]]\nname = "payments december"\nscope = "tag:team=payments"\n'
                                       'period = "month"\nlimit = "0.01"\nunit = "USD"\n')
    assert main(["ingest", "--dir", str(runs)]) == 0
    return runs


def test_fleet_report_numbers(fleet, capsys):
    capsys.readouterr()
    assert main(["report", "--fleet", "--dir", str(fleet), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["runs"] == 3 and doc["total"]["calls"] == 6
    # gpt-4o (https://openai.com/api/pricing/): $2.50/M input, $1.25/M cached input, $10/M output.
    # 6 calls x (100 out x $10/M) = $0.006; input: 5 x 1000 x $2.50/M = $0.0125, plus the cached call
    # 200 x $2.50/M + 800 x $1.25/M = $0.0015 -> $0.02 in all
    assert Decimal(doc["total"]["cost"]) == Decimal("0.02")
    assert doc["total"]["cache_hit_rate"] == pytest.approx(800 / 6000)
    assert doc["grain"] == "day" and [p["period"] for p in doc["spend"]["periods"]] == [
        "2025-12-01", "2025-12-02", "2025-12-03"]
    assert set(doc["spend"]["names"]) == {"payments", HOSTILE_TEAM}
    # diagnostics aggregated across runs: the changed timestamp broke the prefix in 1 of 3 runs
    (diag,) = doc["diagnostics"]
    assert diag["kind"] == "prefix-break" and diag["runs"] == 1 and diag["findings"] == 1
    assert Decimal(diag["cost"]) > 0
    (budget,) = doc["budgets"]
    # payments, December (the month of the ledger's last day): run 1 = $0.0025 (cached call) + $0.0035,
    # run 2 = 2 x $0.0035 -> $0.013 of $0.01
    assert Decimal(budget["used"]) == Decimal("0.013") and budget["status"] == "over"
    assert (budget["from"], budget["to"]) == ("2025-12-01", "2025-12-31")
    top_fn = doc["functions"][0]
    assert top_fn["group"] == {"function": "plan"} and top_fn["calls"] == 6
    assert doc["tools"][0]["tool"] == "search_orders" and doc["tools"][0]["spans"] == 3


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"),
                              args=ARGS)
        yield b
        b.close()


@pytest.mark.browser
def test_fleet_report_in_chromium(fleet, tmp_path, browser):
    out = tmp_path / "fleet.html"
    assert main(["report", "--fleet", "--dir", str(fleet), "-o", str(out)]) == 0
    html = out.read_text()
    assert "<script" not in html.replace("&lt;script", "")  # no script of ours, and the hostile one escaped
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    errors: list[str] = []
    requests: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(out.resolve().as_uri())
    page.wait_for_load_state("load")
    assert errors == [] and dialogs == []
    assert requests == [out.resolve().as_uri()]  # the file itself, nothing else
    assert page.inner_text("#h-calls") == "6"
    assert page.inner_text("#h-cost") == "$0.0200"
    assert page.inner_text("#h-cache") == "13.3%"
    assert HOSTILE_TEAM in page.inner_text(".legend")  # shown as text, not run
    assert "in 1 of 3 runs" in page.inner_text("#diagnostics ~ div.diag")
    assert page.locator("td.over").inner_text() == "OVER"
    assert page.locator("svg rect").count() == 3  # one bar per day (one team a day)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "fleet-report.png"), full_page=True)
    ctx.close()
