"""The HTML report without a browser: self-contained, escaped, CSP-hashed; corpus and scale renders."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser

import pytest
from reports_hostile import HOSTILE
from reports_samples import make_ledger, make_run, tau1_runs

from tokprof.profiler.model import Run
from tokprof.reports.html import json_for_script, render_html, render_run_snippet
from tokprof.reports.model import build_comparison, build_report

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "div", "h1", "h2", "h3", "nav", "a", "main",
    "section", "p", "code", "span", "i", "b", "em", "table", "thead", "tbody", "tr", "th", "td", "button",
    "figure", "svg", "line", "g", "rect", "text", "title", "defs", "pattern", "path", "circle", "article",
    "pre", "label", "input", "footer", "script",
}


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def data_blob(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="tokprof-data">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def test_json_for_script_cannot_close_the_element():
    text = json_for_script({"a": "</script><!-- \u2028\u2029 & <b>"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"a": "</script><!-- \u2028\u2029 & <b>"}


def test_hostile_trace_text_is_only_ever_text():
    run = make_run(8, hostile=HOSTILE)
    after, ledger = make_ledger(run)
    html = render_html(build_report(run, optimized=[after], ledgers=[ledger]))
    doc = parse(html)
    tags = [t for t, _ in doc.tags]
    assert set(tags) <= ALLOWED_TAGS, set(tags) - ALLOWED_TAGS
    assert tags.count("script") == 2  # the JSON data and the page's own script, nothing injected
    for tag, attrs in doc.tags:
        for k, v in attrs.items():
            assert not k.startswith("on"), (tag, k, v)
            assert not (v or "").strip().lower().startswith("javascript:"), (tag, k, v)
    hrefs = [a.get("href") for t, a in doc.tags if t == "a"]
    assert all(h.startswith(("#", "data:text/csv")) for h in hrefs)
    # The hostile strings survive intact as data (the drill-down shows them as text).
    texts = [p[2] for p in data_blob(html)["payloads"]]
    joined = "\n".join(texts)
    assert sum(h in joined for h in HOSTILE) >= 10
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # the run's name, in the title, escaped


def test_csp_allows_only_the_hashed_inline_script_and_nothing_remote():
    html = render_html(build_report(make_run()))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "img-src data:" in csp and "unsafe-inline" not in csp.split("style-src")[0]
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    # Self-contained: nothing refers to another origin.
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "@import" not in html and "url(http" not in html


def test_sections_in_order_and_print_styles():
    run = make_run()
    after, ledger = make_ledger(run)
    html = render_html(build_report(run, optimized=[after], ledgers=[ledger]))
    ids = re.findall(r'<section id="([a-z]+)"', html)
    # the report leads with the fixes (#19.2); the latency timeline sits beside the token views (#19.5)
    assert ids == ["fixes", "headline", "waterfall", "tokens", "timeline", "growth", "graph", "diagnostics",
                   "attribution", "drill"]
    assert "@media print" in html and "40.0%" in html and "observation-mask" in html
    assert 'download="tokprof-attribution.csv"' in html


def test_empty_one_call_and_comparison_render():
    empty = render_html(build_report(Run(name="nothing")))
    assert "No LLM calls." in empty and "Not available" in empty
    before = make_run(1)
    html = render_html(build_report(before))
    assert data_blob(html)["calls"][0]["in"] == 300
    after, _ = make_ledger(make_run(4))
    cmp_html = render_html(build_comparison(make_run(4), after))
    assert "before / after" in cmp_html


def test_notebook_snippet_is_escaped():
    snippet = render_run_snippet(make_run(3, hostile=HOSTILE))
    assert "<script" not in snippet.lower() and "&lt;script&gt;" in snippet


def test_renders_the_corpus(corpus):
    runs = tau1_runs(corpus, limit=40)
    tau2 = []
    try:
        from tokprof.profiler.interchange import import_file

        tau2 = import_file(next((corpus / "tau2").glob("ironshell*gpt54*"))).runs
    except ImportError:
        pass
    m = build_report(runs + list(tau2))
    html = render_html(m)
    assert m.headline.llm_calls == sum(len(r.llm_spans()) for r in runs + list(tau2)) > 300
    assert m.headline.tokens_before > 0 and m.diagnostics
    assert len(html) < 5_000_000 and len(data_blob(html)["calls"]) == m.headline.llm_calls


def concatenated_run(runs: list[Run], min_calls: int) -> Run:
    """One run of at least ``min_calls`` LLM calls: the corpus runs' spans under one root, repeated."""
    from tokprof.profiler.model import Span

    big = Run(name=f"corpus x{min_calls}")
    big.spans.append(Span("root", None, big.run_id, "agent", "corpus", 0, 0, end_ns=1))
    calls, k = 0, 0
    while calls < min_calls:
        for r in runs:
            for s in r.spans:
                n = Span.from_dict(s.to_dict())
                n.llm = s.llm  # share messages, as a re-sent history does
                n.span_id = f"{k}:{s.span_id}"
                n.parent_id = f"{k}:{s.parent_id}" if s.parent_id else "root"
                big.spans.append(n)
                calls += s.llm is not None
            k += 1
            if calls >= min_calls:
                break
    return big


def test_ten_thousand_calls_stay_under_15_mb(corpus):
    big = concatenated_run(tau1_runs(corpus), 10_000)
    m = build_report(big)
    html = render_html(m)
    assert m.headline.llm_calls >= 10_000
    size = len(html.encode("utf-8"))
    assert size < 15_000_000, size
    assert len(m.growth) <= 400 and m.growth_bucket > 1
