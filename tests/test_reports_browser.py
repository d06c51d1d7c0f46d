"""The HTML report in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Loads with no console errors and no network requests, the flame chart, table, growth chart and drill-down
are interactive, a trace full of hostile payloads executes none of them, and each section is saved as a
screenshot under ``tests/artifacts/``.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest

from tokprof.profiler.model import Run
from tokprof.reports.html import write_html
from tokprof.reports.model import build_comparison, build_report
from reports_hostile import HOSTILE
from reports_samples import make_ledger, make_run, tau1_runs

pytestmark = [pytest.mark.browser, pytest.mark.filterwarnings("ignore::UserWarning")]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SECTIONS = ("headline", "waterfall", "tokens", "growth", "graph", "diagnostics", "attribution", "drill")


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


class Page:
    """A page with everything it logs, requests and pops up recorded."""

    def __init__(self, browser, path: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

        def on_dialog(d):
            self.dialogs.append(d.message)
            d.dismiss()

        self.page.on("dialog", on_dialog)
        self.url = path.resolve().as_uri()
        self.page.goto(self.url)
        self.page.wait_for_load_state("load")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    pages: list[Page] = []

    def _open(path: Path) -> Page:
        p = Page(browser, path)
        pages.append(p)
        return p

    yield _open
    for p in pages:
        p.close()


def optimized_report(tmp_path: Path) -> Path:
    run = make_run(8)
    after, ledger = make_ledger(run)
    return write_html(build_report(run, optimized=[after], ledgers=[ledger]), tmp_path / "report.html")


def test_loads_offline_with_no_errors_and_saves_section_screenshots(open_page, tmp_path):
    p = open_page(optimized_report(tmp_path))
    assert p.errors == [] and p.dialogs == []
    assert p.requests == [p.url]  # the file itself, nothing else
    assert p.page.locator("#flame svg rect.f").count() >= 5  # the script ran and drew the chart
    assert p.page.locator("#drill-body .msg").count() >= 2
    ARTIFACTS.mkdir(exist_ok=True)
    for sec in SECTIONS:
        p.page.locator(f"#{sec}").screenshot(path=str(ARTIFACTS / f"report_{sec}.png"))
    p.page.screenshot(path=str(ARTIFACTS / "report_full.png"), full_page=True)
    p.page.pdf(path=str(ARTIFACTS / "report_print.pdf"))  # printable
    assert (ARTIFACTS / "report_print.pdf").stat().st_size > 10_000


def test_flame_hover_and_click(open_page, tmp_path):
    p = open_page(optimized_report(tmp_path))
    page = p.page
    rect = page.locator("#flame rect.f").nth(1)
    rect.hover()
    tip = page.locator("#tip")
    assert tip.is_visible()
    assert "exclusive (own)" in tip.inner_text() and "inclusive" in tip.inner_text()
    rect.click()
    detail = page.locator("#flame-detail")
    assert "Biggest LLM calls" in detail.inner_text()
    detail.locator("button[data-call]").first.click()
    num = int(page.locator("#drill-num").input_value())
    assert page.locator("#drill-body h3").inner_text().startswith(f"Call #{num}")
    # The click zoomed into the box; reset, then redraw by cost.
    zoomed = page.locator("#flame rect.f").count()
    page.locator("#flame-reset").click()
    assert page.locator("#flame rect.f").count() > zoomed
    page.locator("[data-metric=cost]").click()
    assert page.locator("[data-metric=cost]").get_attribute("aria-pressed") == "true"
    assert page.locator("#flame rect.f").count() >= 5
    assert p.errors == []


def test_table_sorts_and_rows_drill_down(open_page, tmp_path):
    p = open_page(optimized_report(tmp_path))
    page = p.page
    rows = page.locator("#top-table tbody tr")

    def column(key: str) -> list[float]:
        return [float(rows.nth(i).get_attribute(f"data-{key}")) for i in range(rows.count())]

    page.locator("#top-table th[data-key=ms] button").click()
    assert column("ms") == sorted(column("ms"), reverse=True)
    page.locator("#top-table th[data-key=ms] button").click()
    assert column("ms") == sorted(column("ms"))
    assert page.locator("#top-table th[data-key=ms]").get_attribute("aria-sort") == "ascending"
    page.locator("#top-table th[data-key=name] button").click()
    names = [rows.nth(i).get_attribute("data-name") for i in range(rows.count())]
    assert names == sorted(names, reverse=True)
    # Clicking an LLM row opens its biggest call in the drill-down.
    llm_row = page.locator("#top-table tbody tr:has(.badge:text-is('llm'))").first
    call = int(llm_row.get_attribute("data-call"))
    llm_row.click()
    assert page.locator("#drill-num").input_value() == str(call + 1)
    assert page.locator("#flame-detail h3").inner_text() == llm_row.get_attribute("data-name")
    assert p.errors == []


def test_growth_bar_and_before_after_diff(open_page, tmp_path):
    p = open_page(optimized_report(tmp_path))
    page = p.page
    bars = page.locator("#growth g.gbar")
    assert bars.count() == 8
    bars.nth(5).click()
    assert page.locator("#drill-num").input_value() == "6"
    page.locator("[data-view=diff]").click()
    assert page.locator("#drill-body .msg.removed").count() >= 1
    assert page.locator("#drill-body .msg.added").count() >= 1
    assert "[output masked]" in page.locator("#drill-body .msg.added").first.inner_text()
    page.locator("#drill-next").click()
    assert page.locator("#drill-num").input_value() == "7"
    # Long content is collapsed until opened.
    page.locator("[data-view=messages]").click()
    more = page.locator("#drill-body .msg button.link").first
    before = page.locator("#drill-body .msg pre").first.inner_text()
    more.click()
    assert len(page.locator("#drill-body .msg pre").first.inner_text()) > len(before)
    # The call graph's nodes open their detail.
    page.locator("#graph g.gnode circle").first.click()
    assert page.locator("#graph-detail h3").inner_text()
    assert p.errors == []


def test_hostile_payloads_never_execute(open_page, tmp_path):
    run = make_run(8, hostile=HOSTILE)
    after, ledger = make_ledger(run)
    path = write_html(build_report(run, optimized=[after], ledgers=[ledger]), tmp_path / "hostile.html")
    p = open_page(path)
    page = p.page
    # Touch everything that shows trace text: every flame box, every table row, every call in both views.
    for i in range(page.locator("#flame rect.f").count()):
        r = page.locator("#flame rect.f").nth(i)
        if r.is_visible():
            r.hover()
    for i in range(page.locator("#top-table tbody tr").count()):
        page.locator("#top-table tbody tr").nth(i).click()
    for view in ("messages", "diff"):
        page.locator(f"[data-view={view}]").click()
        for k in range(1, 9):
            page.locator("#drill-num").fill(str(k))
            page.locator("#drill-num").dispatch_event("change")
            links = page.locator("#drill-body .msg button.link")
            while links.count():  # each click removes its button (diff mode collapses more messages)
                links.first.click()
    page.locator("#graph g.gnode circle").first.click()
    page.wait_for_timeout(300)
    assert page.evaluate("() => window.__pwned") is None
    assert page.evaluate("() => document.querySelectorAll('iframe, object, embed, img, video').length") == 0
    assert p.dialogs == []
    assert p.errors == []  # not even a CSP violation: nothing tried to run
    assert p.requests == [p.url]
    assert "<script>window.__pwned=1</script>" in page.title()  # shown as text, not run
    page.locator("#drill").screenshot(path=str(ARTIFACTS / "hostile_drill.png"))


def test_empty_one_call_comparison_and_corpus_reports_load(open_page, tmp_path, corpus):
    one = make_run(1)
    before = make_run(4)
    after, _ = make_ledger(before)
    docs = {
        "empty": build_report(Run(name="empty")),
        "one": build_report(one),
        "compare": build_comparison(before, after),
        "corpus": build_report(tau1_runs(corpus, limit=30)),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    for name, m in docs.items():
        p = open_page(write_html(m, tmp_path / f"{name}.html"))
        assert p.errors == [] and p.requests == [p.url], name
        p.page.screenshot(path=str(ARTIFACTS / f"{name}_full.png"), full_page=True)
        if name == "corpus":
            for sec in ("tokens", "growth", "diagnostics"):
                p.page.locator(f"#{sec}").screenshot(path=str(ARTIFACTS / f"corpus_{sec}.png"))


# ---- layout (issue #19 point 4), carried view, timeline, fixes ---------------------------------------
WIDTHS = (1024, 1440, 1920)
OVERFLOW_JS = """() => {
  const doc = document.documentElement, out = [];
  if (doc.scrollWidth > doc.clientWidth + 1) out.push('page scrolls horizontally: ' + doc.scrollWidth + ' > ' + doc.clientWidth);
  const main = document.querySelector('main').getBoundingClientRect();
  for (const sel of ['.card', '.fix', '.diag', '.tablewrap', 'section', 'table', '.detail', '.chart-wrap']) {
    document.querySelectorAll(sel).forEach((e, i) => {
      const r = e.getBoundingClientRect();
      if (r.width === 0) return;
      if (r.right > main.right + 1) out.push(sel + '#' + i + ' sticks out of the page: ' + r.right + ' > ' + main.right);
      if (sel !== 'section' && e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'hidden')
        out.push(sel + '#' + i + ' overflows its box: ' + e.scrollWidth + ' > ' + e.clientWidth);
    });
  }
  return out;
}"""


def _passes_report(tmp_path: Path, corpus: Path) -> Path:
    """A report with the default passes on real τ²-bench runs: long pass descriptions and risks, big money."""
    from tokprof.profiler.interchange import import_file
    from tokprof.reports.model import build_optimized_report

    files = sorted((corpus / "tau2").glob("claude-sonnet-4-5*.json.gz"))
    runs = import_file(files[0]).runs[:3]
    m = build_optimized_report(runs, ["default"])
    return write_html(m, tmp_path / "passes.html")


@pytest.mark.parametrize("width", WIDTHS)
def test_no_overflow_at_common_widths(browser, tmp_path, corpus, width):
    path = _passes_report(tmp_path, corpus)
    ctx = browser.new_context(viewport={"width": width, "height": 900})
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_load_state("load")
        assert page.locator("#waterfall table tbody tr").count() >= 3  # the passes table is there
        problems = page.evaluate(OVERFLOW_JS)
        assert problems == [], problems
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#headline").screenshot(path=str(ARTIFACTS / f"layout_{width}_headline.png"))
        page.locator("#waterfall").screenshot(path=str(ARTIFACTS / f"layout_{width}_waterfall.png"))
        assert errors == []
    finally:
        ctx.close()


def test_cjk_font_stack_declared_and_cjk_text_renders(open_page, tmp_path):
    from tokprof.profiler.model import LLMCall, Span, Usage

    run = Run(name="客服代理 · 退款")
    run.spans.append(Span("a", None, run.run_id, "llm", "qwen-max", 0, 0, end_ns=1_000_000, llm=LLMCall(
        provider="qwen", model="qwen-max", messages=[{"role": "user", "content": "请帮我查询订单状态，谢谢。"}],
        usage=Usage.from_provider(input_tokens=20, output_tokens=5))))
    p = open_page(write_html(build_report(run), tmp_path / "cjk.html"))
    family = p.page.evaluate("getComputedStyle(document.body).fontFamily")
    assert "Noto Sans CJK SC" in family and "PingFang SC" in family and "Microsoft YaHei" in family
    assert "客服代理" in p.page.locator("h1").inner_text()
    assert "请帮我查询订单状态" in p.page.locator("#drill-body").inner_text()
    assert p.errors == []


def test_diff_mode_collapses_long_removed_messages(open_page, tmp_path):
    from tokprof.profiler.model import LLMCall, Span, Usage

    long_text = "order line 42: shipped. " * 200  # ~4,800 characters
    before, after = Run(name="before"), Run(name="after")
    for r, content in ((before, long_text), (after, "[output masked]")):
        r.spans.append(Span("s", None, r.run_id, "llm", "gpt-4.1", 0, 0, end_ns=10, llm=LLMCall(
            provider="openai", model="gpt-4.1", messages=[{"role": "user", "content": "status?"},
                                                           {"role": "tool", "content": content}],
            usage=Usage.from_provider(input_tokens=1200 if r is before else 20, output_tokens=3))))
    p = open_page(write_html(build_comparison(before, after), tmp_path / "diff.html"))
    page = p.page
    page.locator("[data-view=diff]").click()
    removed = page.locator("#drill-body .msg.removed pre")
    assert removed.count() == 1 and removed.get_attribute("class") == "collapsed"
    assert len(removed.inner_text()) < 300
    assert removed.evaluate("e => e.getBoundingClientRect().height") < 80
    page.locator("#drill-body .msg.removed button.link").click()
    assert len(removed.inner_text()) > 4000
    assert p.errors == []


def test_carried_view_is_default_and_timeline_fixes_render(open_page, tmp_path):
    from tokprof.demo import run_agent

    run, _ = run_agent(save=False)
    p = open_page(write_html(build_report(run), tmp_path / "demo.html"))
    page = p.page
    assert page.locator("[data-metric=carried]").get_attribute("aria-pressed") == "true"
    # the widest box below the callers' chain is the order-history tool
    widths = page.evaluate("""() => Array.from(document.querySelectorAll('#flame rect.f')).map(r => [
        Number(r.getAttribute('data-node')), Number(r.getAttribute('width'))])""")
    import json as _json
    data = _json.loads(page.locator("#tokprof-data").inner_text())
    names = {n["id"]: n["name"] for n in data["flame"]}
    by_name = {names[i]: w for i, w in widths}
    assert by_name["get_order_history"] > by_name["resolve_ticket → claude-sonnet-4-5"]
    page.locator("[data-metric=tokens]").click()  # own view: the model owns the tokens
    widths = page.evaluate("""() => Array.from(document.querySelectorAll('#flame rect.f')).map(r => [
        Number(r.getAttribute('data-node')), Number(r.getAttribute('width'))])""")
    by_name = {names[i]: w for i, w in widths}
    assert by_name["resolve_ticket → claude-sonnet-4-5"] > by_name.get("get_order_history", 0)
    assert page.locator("#timeline svg rect").count() >= 20
    first = page.locator("section").first
    assert first.get_attribute("id") == "fixes" and page.locator("#fixes .fix").count() >= 1
    assert "get_order_history" in page.locator("#fixes").inner_text() or \
        "tool outputs" in page.locator("#fixes").inner_text()
    page.locator("#timeline").screenshot(path=str(ARTIFACTS / "demo_timeline.png"))
    page.locator("#fixes").screenshot(path=str(ARTIFACTS / "demo_fixes.png"))
    assert p.errors == []


def test_flame_widths_finite_with_near_1e308_counts(open_page, tmp_path):
    """Issue #21: near-1e308 token counts gave the flame chart ``Infinity``/``NaN`` widths."""
    from test_reports_flame_bounds import huge_run

    path = write_html(build_report(huge_run()), tmp_path / "huge.html")
    p = open_page(path)
    assert p.errors == []
    for metric in ("carried", "carried_tokens", "cost", "tokens"):
        p.page.locator(f"[data-metric={metric}]").click()
        widths = p.page.eval_on_selector_all(
            "#flame rect.f", "rs => rs.map(r => [r.getAttribute('x'), r.getAttribute('width')])")
        assert len(widths) >= 3, metric
        for x, w in widths:
            assert math.isfinite(float(x)) and math.isfinite(float(w)) and 0 < float(w) <= 1100, (metric, x, w)
    assert p.errors == []
