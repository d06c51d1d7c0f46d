"""The HTML report: one self-contained file (no CDN, fonts or scripts fetched), safe with hostile traces.

Safety model — every string from a trace is untrusted (prompts carry HTML and script):

* jinja2 autoescapes everything the templates print (HTML and SVG text and attributes);
* the data the page's script needs is embedded as JSON in ``<script type="application/json">`` with
  ``<``, ``>``, ``&``, U+2028 and U+2029 escaped, so no string can close the element;
* the script only ever writes trace text through ``textContent`` / ``setAttribute`` (never ``innerHTML``);
* a Content-Security-Policy meta tag allows only the page's own inline script, by its SHA-256 hash, inline
  styles and ``data:`` images: an injected ``<script>``, event handler or ``javascript:`` URL cannot run,
  and nothing can be fetched.
"""

from __future__ import annotations

import base64
import hashlib
import json
import urllib.parse
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from tokprof.profiler.private_files import write_private
from tokprof.reports.format import CURRENCY_SYMBOLS, compact, money, num, pct  # noqa: F401 - re-exported
from tokprof.reports.model import build_report
from tokprof.reports.renderers import Renderer, register
from tokprof.reports.types import GROWTH_PARTS, ReportModel

TEMPLATES = Path(__file__).parent / "templates"
PART_LABELS = {"system": "system prompt", "tools": "tool definitions", "history": "history",
               "tool_outputs": "tool outputs", "new": "new input"}


def json_for_script(data: Any) -> str:
    """JSON that is safe inside a ``<script>`` element: nothing in it can end the element or the line."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every template, whatever its extension: trace text is hostile
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(money=money, num=num, compact=compact, pct=pct)
    return env


@lru_cache(maxsize=1)
def page_script() -> tuple[str, str]:
    """The page's script and its CSP source (``'sha256-...'``)."""
    script = (TEMPLATES / "report.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return script, f"'sha256-{digest}'"


def csp(script_source: str) -> str:
    return (f"default-src 'none'; script-src {script_source}; style-src 'unsafe-inline'; img-src data:; "
            "base-uri 'none'; form-action 'none'")


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        # Neutralise spreadsheet formulas in trace-derived cells (=, +, -, @, and TAB/CR, which
        # spreadsheets skip before reading a formula: OWASP CSV injection).
        w.writerow([("'" + c) if isinstance(c, str) and c[:1] in ("=", "+", "-", "@", "\t", "\r") else c
                    for c in r])
    return "data:text/csv;charset=utf-8," + urllib.parse.quote(buf.getvalue())


def _attribution_csv(m: ReportModel) -> str:
    rows = [["tag", r["key"], r["value"], r["calls"], r["in"], r["out"], r["cached"], str(r["cost"]), r["unpriced"]]
            for r in m.attribution["by_tag"]]
    rows += [["model", "model", r["model"], r["calls"], r["in"], r["out"], r["cached"], str(r["cost"]), r["unpriced"]]
             for r in m.attribution["by_model"]]
    return _csv(["group", "key", "value", "llm_calls", "input_tokens", "output_tokens", "cached_tokens",
                 f"cost_{m.currency}", "unpriced_calls"], rows)


def _growth_svg(m: ReportModel) -> dict[str, Any]:
    """Pixel geometry of the context-growth chart (stacked bars), computed here so the page is static."""
    bars = m.growth
    width, height, left, bottom, top = 1100, 300, 56, 26, 10
    if not bars:
        return {"bars": [], "width": width, "height": height, "ticks": []}
    peak = max(max(b["in"], b.get("after", 0)) for b in bars) or 1
    plot_h = height - bottom - top
    step = (width - left - 8) / len(bars)
    bw = min(56.0, max(1.0, step * 0.8)) if step >= 3 else step  # a few calls: slim bars, not slabs
    scale = plot_h / peak
    out = []
    for k, b in enumerate(bars):
        x = left + k * step
        y = height - bottom
        segs = []
        for part in GROWTH_PARTS:
            h = b[part] * scale
            if h <= 0:
                continue
            y -= h
            segs.append({"part": part, "y": round(y, 2), "h": round(h, 2)})
        # With an optimized version, the hatch shows what is cached after optimization (a caching pass
        # changes exactly that); otherwise what the provider reported as cached.
        cached = min(b["after_cached"], b["after"]) if "after_cached" in b else min(b["cached"], b["in"])
        cached_h = cached * scale
        out.append({"x": round(x, 2), "w": round(bw, 2), "segs": segs, "call": b["call"], "in": b["in"],
                    "cached": cached, "cached_y": round(height - bottom - cached_h, 2),
                    "cached_h": round(cached_h, 2),
                    "after_y": round(height - bottom - b["after"] * scale, 2) if "after" in b else None,
                    "parts": {p: b[p] for p in GROWTH_PARTS}, "after": b.get("after")})
    ticks = []
    for f in (0, 0.25, 0.5, 0.75, 1.0):
        ticks.append({"y": round(height - bottom - f * plot_h, 2), "label": compact(peak * f)})
    return {"bars": out, "width": width, "height": height, "ticks": ticks, "left": left, "bottom": bottom}


def _waterfall_svg(m: ReportModel) -> dict[str, Any]:
    """Bars: recorded, one floating bar per pass (its saving), optimized. In money when known, else tokens."""
    h = m.headline
    use_cost = h.cost_before is not None and all(s.billed_cost is not None for s in m.waterfall)
    start = float(h.cost_before) if use_cost and h.cost_before is not None else float(h.tokens_before)
    values = [start] + [float(s.billed_cost) if use_cost else float(s.input_tokens + s.output_tokens)  # type: ignore[arg-type]
                        for s in m.waterfall]
    peak = max(values) or 1.0
    width, height, bottom, top = 1100, 260, 48, 20
    n = len(values) + 1
    slot = (width - 40) / n
    bw = min(120.0, slot * 0.62)
    scale = (height - bottom - top) / peak
    bars: list[dict[str, Any]] = []

    def label(v: float) -> str:
        return money(Decimal(str(v)), m.currency) if use_cost else compact(v) + " tok"

    base_y = height - bottom
    bars.append({"x": 20 + slot * 0.19, "y": base_y - start * scale, "h": start * scale, "kind": "total",
                 "name": "recorded", "value": label(start), "evidence": ""})
    for k, s in enumerate(m.waterfall):
        prev, cur = values[k], values[k + 1]
        hi, lo = max(prev, cur), min(prev, cur)
        bars.append({"x": 20 + slot * (k + 1) + slot * 0.19, "y": base_y - hi * scale,
                     "h": max(1.0, (hi - lo) * scale), "kind": "saving" if cur <= prev else "increase",
                     "name": s.pass_name, "value": ("−" if cur <= prev else "+") + label(abs(prev - cur)),
                     "evidence": s.evidence})
    end = values[-1]
    bars.append({"x": 20 + slot * (n - 1) + slot * 0.19, "y": base_y - end * scale, "h": end * scale,
                 "kind": "final", "name": "optimized", "value": label(end), "evidence": ""})
    for b in bars:
        b["x"], b["y"], b["h"] = round(b["x"], 2), round(b["y"], 2), round(b["h"], 2)
    return {"bars": bars, "width": width, "height": height, "bw": round(bw, 2), "base_y": base_y,
            "unit": m.currency if use_cost else "tokens"}


def _timeline_svg(m: ReportModel) -> dict[str, Any] | None:
    """Pixel geometry of the latency timeline: one row per call depth, x = time since the run started."""
    tl = m.timeline
    if not tl or not tl.get("spans"):
        return None
    width, row, left = 1100, 20, 4
    total = tl["total_ms"] or 1.0
    scale = (width - 2 * left) / total
    depth = max(s["depth"] for s in tl["spans"])
    kinds = ("agent", "chain", "llm", "tool", "retriever", "function")
    bars = [{"x": round(left + s["start"] * scale, 2), "y": s["depth"] * row, "w": round(max(1.0, s["ms"] * scale), 2),
             "name": s["name"], "kind": s["kind"] if s["kind"] in kinds else "function", "start": s["start"],
             "ms": s["ms"], "tokens": s["tokens"]} for s in tl["spans"]]
    height = (depth + 1) * row + 18
    ticks = [{"x": round(left + f * (width - 2 * left), 2), "label": f"{compact(total * f)} ms"}
             for f in (0, 0.25, 0.5, 0.75, 1.0)]
    return {**tl, "bars": bars, "width": width, "height": height, "row": row, "ticks": ticks}


def report_data(m: ReportModel) -> dict[str, Any]:
    """What the page's script reads (flame, calls, payloads); everything else is rendered statically."""
    return {
        "currency": m.currency,
        "symbol": CURRENCY_SYMBOLS.get(m.currency, m.currency + " "),
        "runs": [r["name"] for r in m.runs],
        "flame": m.flame,
        "calls": m.calls,
        "payloads": [[p["role"], p.get("name", ""), p["text"], p["tokens"]] for p in m.payloads],
        "tokenSource": m.payload_token_source,
    }


def render_html(m: ReportModel) -> str:
    """The report as one HTML document."""
    script, script_src = page_script()
    return _env().get_template("report.html.j2").render(
        m=m, h=m.headline, csp=csp(script_src), script=script, data_json=json_for_script(report_data(m)),
        growth=_growth_svg(m), waterfall=_waterfall_svg(m) if m.waterfall else None,
        parts=[(p, PART_LABELS[p]) for p in GROWTH_PARTS], attribution_csv=_attribution_csv(m),
        timeline=_timeline_svg(m),
    )


def write_html(m: ReportModel, path: str | Path) -> Path:
    # owner-only (0600), atomic, never through a planted link: the report holds the prompts (issue #21)
    return write_private(Path(path), render_html(m).encode("utf-8", "surrogatepass"))


@register
class HtmlRenderer(Renderer):
    """One self-contained HTML file (see the module docstring for its safety model)."""

    name = "html"
    file_extension = ".html"

    def render(self, model: ReportModel) -> str:
        return render_html(model)


def render_run_snippet(run: Any, currency: str = "USD") -> str:
    """A small inline HTML summary of a run for notebooks (headline numbers only; no script)."""
    m = build_report(run, currency=currency)
    return _env().get_template("snippet.html.j2").render(m=m, h=m.headline)
