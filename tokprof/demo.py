"""The bundled demo agent: a LangChain tool-calling support agent over bundled data, fully offline.

The agent works a support inbox (``demo_data/tickets.json``) for an online shop:

1. it triages every ticket with one model call (two tickets are the same e-mail sent twice, so the second
   triage request is identical to the first: the response cache's case);
2. it merges duplicates, then resolves each remaining ticket with a tool-calling loop over real
   ``@tool`` tools reading the bundled customers, orders and refund policy. The order history is an
   oversized JSON tool output (~11.5k tokens pretty-printed), and the history grows with every step.
   The agent does not repeat itself: each tool is called once per ticket.

The chat model is :class:`tokprof.scripted_model.ScriptedChatModel`: a real ``BaseChatModel`` whose
decisions depend only on the conversation it is sent, with usage computed from that prompt. So the
same agent re-run with live optimization (:mod:`tokprof.optimizers.live`; every live pass, lossy ones
included) reaches the *same* answer while
its provider-reported tokens go down: the savings are **measured**, not simulated.

:func:`run_demo` runs the agent twice (baseline, then optimized live), checks the answers match, and writes
an HTML report comparing the two runs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.tools import BaseTool

# The shop and the scripted policy live in their own modules; their names stay importable from here.
from tokprof.demo_desk import (  # noqa: F401
    AGENT_PROMPT, DEMO_LIVE_PASSES, DEMO_MODEL, DEMO_TAGS, DEMO_TODAY, MAX_STEPS, SCRIPTED_NOTE, TRIAGE_PROMPT,
    SupportDesk, make_tools)
from tokprof.demo_policy import ScriptError, order_containing, support_policy, untable  # noqa: F401
from tokprof.profiler import keys, profile, trace
from tokprof.profiler.hooks import current_run, internal_error, record_llm_call
from tokprof.profiler.model import Run, Usage
from tokprof.profiler.store import runs_dir
from tokprof.reports import html as report_html
from tokprof.reports.model import build_comparison
from tokprof.scripted_model import ScriptedChatModel, message_text

_order_containing = order_containing  # the old private name, kept for callers of tokprof.demo

# ---------------------------------------------------------------------------------------------------
# the agent
# ---------------------------------------------------------------------------------------------------
Progress = Callable[[str], None]


def _llm_span_count(run: Run | None) -> int:
    return 0 if run is None else sum(1 for s in run.spans if s.llm is not None)


def _invoke(runnable: Any, model: ScriptedChatModel, messages: list[BaseMessage]) -> AIMessage:
    """One model call. If no LangChain integration recorded it (none attached), record it from what the
    provider saw, so the demo profiles the same with or without the callback handler."""
    run = current_run()
    spans_before = _llm_span_count(run)
    served_before = len(model.requests)
    ai = runnable.invoke(messages, config={"run_name": model.model_name})
    if run is None or _llm_span_count(run) > spans_before:
        return ai
    if len(model.requests) > served_before:
        req = model.requests[-1]
        meta = req["usage"]
        details = meta.get("input_token_details") or {}
        usage = Usage.from_provider(input_tokens=meta["input_tokens"], output_tokens=meta["output_tokens"],
                                    cache_read_tokens=details.get("cache_read", 0),
                                    cache_write_tokens=details.get("cache_creation", 0))
        record_llm_call(model=model.model_name, provider=model.provider, messages=req["messages"],
                        tools=req["tools"], output=req["output"], usage=usage, name=model.model_name)
    else:  # answered by the response cache: the provider was never called, nothing was billed
        span = record_llm_call(model=model.model_name, provider=model.provider,
                               messages=convert_to_openai_messages(messages),
                               output=convert_to_openai_messages([ai])[0],
                               usage=Usage.from_provider(input_tokens=0, output_tokens=0, cache_read_tokens=0,
                                                         cache_write_tokens=0), name=model.model_name)
        if span is not None:
            span.set_attribute("response_cache", "hit")
    return ai


@trace(kind="chain")
def triage_ticket(model: ScriptedChatModel, ticket: dict[str, Any], progress: Progress) -> str:
    # The ticket id is not in the prompt: the same e-mail sent twice makes the same request.
    messages = [SystemMessage(TRIAGE_PROMPT),
                HumanMessage(f"From: {ticket['from']}\nSubject: {ticket['subject']}\n\n{ticket['body']}")]
    ai = _invoke(model, model, messages)
    progress(f"triaged {ticket['ticket_id']}")
    return json.loads(message_text(ai))["category"]


@trace(kind="function")
def run_tool(tools: dict[str, BaseTool], call: ToolCall) -> ToolMessage:
    result = tools[call["name"]].invoke(call)
    return result if isinstance(result, ToolMessage) else ToolMessage(str(result), tool_call_id=call["id"])


@trace(kind="agent")
def resolve_ticket(model: ScriptedChatModel, tools: list[BaseTool], ticket: dict[str, Any],
                   progress: Progress) -> str:
    """The tool-calling loop: model, tools, model... until the model answers without a tool call."""
    by_name = {t.name: t for t in tools}
    bound = model.bind_tools(tools)
    messages: list[BaseMessage] = [
        SystemMessage(AGENT_PROMPT),
        HumanMessage(f"Ticket {ticket['ticket_id']}\nFrom: {ticket['from']}\nSubject: {ticket['subject']}\n\n"
                     f"{ticket['body']}"),
    ]
    for step in range(MAX_STEPS):
        ai = _invoke(bound, model, messages)
        messages.append(ai)
        progress(f"{ticket['ticket_id']} step {step}")
        if not ai.tool_calls:
            return message_text(ai)
        for call in ai.tool_calls:
            messages.append(run_tool(by_name, call))
    raise ScriptError(f"ticket {ticket['ticket_id']}: no answer after {MAX_STEPS} steps")


@trace(kind="agent")
def run_support_desk(model: ScriptedChatModel, desk: SupportDesk, progress: Progress) -> str:
    """Work the inbox: triage everything, merge duplicates, resolve the rest. Returns the replies."""
    categories = {t["ticket_id"]: triage_ticket(model, t, progress) for t in desk.tickets}
    tools = make_tools(desk)
    replies: list[str] = []
    seen: dict[tuple[str, str, str], str] = {}
    for t in desk.tickets:
        key = (t["from"], t["subject"], t["body"])
        if key in seen:
            replies.append(f"[{t['ticket_id']}] merged into {seen[key]} (same e-mail sent twice)")
            progress(f"merged {t['ticket_id']}")
            continue
        seen[key] = t["ticket_id"]
        if categories[t["ticket_id"]] in ("refund", "shipping"):
            replies.append(f"[{t['ticket_id']}] {resolve_ticket(model, tools, t, progress)}")
        else:
            replies.append(f"[{t['ticket_id']}] routed to a human agent")
    return "\n".join(replies)


MODEL_CALLS_PER_RUN = 13
"""Model calls of one demo run (3 triage + 6 refund steps + 4 shipping steps): the progress bar's unit."""


def run_agent(*, optimize: list[str] | tuple[str, ...] = (), save: str | Path | bool = False,
              progress: Progress | None = None, name: str = "demo",
              desk: SupportDesk | None = None) -> tuple[Run, str]:
    """Run the demo agent once under ``profile(name, optimize=...)``; returns the run and the final answer.
    ``desk``: the back office to work on (default: the bundled data)."""
    progress = progress or (lambda _msg: None)
    model = ScriptedChatModel(model_name=DEMO_MODEL, policy=support_policy)
    desk = desk or SupportDesk()
    label = "optimized" if optimize else "baseline"
    with profile(name, tags={**DEMO_TAGS, "variant": label}, save=save, optimize=list(optimize),
                 metadata={"demo": True, "variant": label,
                           "model_note": f"scripted stand-in for {DEMO_MODEL}: offline, usage computed "
                                         "from each prompt, Anthropic-style prompt caching"}) as run:
        answer = run_support_desk(model, desk, progress)
    run.metadata["final_answer"] = answer
    return run, answer


# ---------------------------------------------------------------------------------------------------
# the two-run demo
# ---------------------------------------------------------------------------------------------------
@dataclass
class RunTotals:
    """The headline figures of one run: its summary's tokens and what it paid (the figure ``tokprof show``
    prints for the same run)."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    llm_calls: int
    cost: Decimal | None
    currency: str = "USD"
    cost_label: str = ""
    """How the cost is known: the run summary's as-paid label (the figure ``tokprof show`` prints)."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, run: Run) -> "RunTotals":
        s = run.summary(top=0)
        return cls(s.tokens["input"], s.tokens["output"], s.tokens["cache_read"], s.tokens["cache_write"],
                   s.llm_calls, s.cost, s.currency, s.cost_label)

    def to_dict(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
                "total_tokens": self.total_tokens, "llm_calls": self.llm_calls,
                "cost": None if self.cost is None else str(self.cost), "currency": self.currency,
                "cost_basis": self.cost_label}


def _pct(before: int | Decimal | None, after: int | Decimal | None) -> float | None:
    if before is None or after is None or not before:
        return None
    return float((Decimal(before) - Decimal(after)) / Decimal(before) * 100)


@dataclass
class DemoResult:
    """What ``tokprof demo`` did: the two runs, their answer, totals, and where things were written."""

    baseline: Run
    optimized: Run | None
    answer: str
    report_path: Path | None
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase: ``baseline``, ``optimized``, ``report``, ``total``."""
    report_renderer: str = ""
    pass_contributions: list[dict[str, Any]] = field(default_factory=list)
    """Each live pass alone on the baseline run (simulated): :func:`tokprof.demo_checks.pass_contributions`."""
    lossy_check: dict[str, Any] | None = None
    """A lossy pass that changes the answer, and whether fidelity caught it (:func:`tokprof.demo_checks.lossy_check`)."""

    @cached_property  # the runs are final once run_demo returns; headline, CLI and fallback page all read it
    def before(self) -> RunTotals:
        return RunTotals.of(self.baseline)

    @cached_property
    def after(self) -> RunTotals | None:
        return RunTotals.of(self.optimized) if self.optimized is not None else None

    def headline(self) -> dict[str, Any]:
        before, after = self.before, self.after
        out: dict[str, Any] = {
            "evidence": "measured",
            "evidence_note": SCRIPTED_NOTE,
            "baseline_caching": ("Anthropic caches only prefixes a request marks with cache_control (no "
                                 "automatic caching); the baseline agent marks none, so what it paid has no "
                                 "cache discount"),
            "model": DEMO_MODEL,
            "baseline": {"run_id": self.baseline.run_id, "path": str(self.baseline.path or ""),
                         **before.to_dict()},
            "answer_identical": self.optimized is not None,
            "report": str(self.report_path) if self.report_path else None,
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
            "pass_contributions": self.pass_contributions,
            "lossy_check": self.lossy_check,
        }
        if after is not None and self.optimized is not None:
            out["optimized"] = {"run_id": self.optimized.run_id, "path": str(self.optimized.path or ""),
                                "live_passes": self.optimized.metadata.get(keys.LIVE_PASSES, []),
                                **after.to_dict()}
            out["saved"] = {
                "input_tokens": before.input_tokens - after.input_tokens,
                "input_tokens_pct": _pct(before.input_tokens, after.input_tokens),
                "total_tokens": before.total_tokens - after.total_tokens,
                "total_tokens_pct": _pct(before.total_tokens, after.total_tokens),
                "cost": None if before.cost is None or after.cost is None else str(before.cost - after.cost),
                "cost_pct": _pct(before.cost, after.cost),
            }
        return out


class AnswerMismatch(AssertionError):
    """The optimized re-run answered differently: the live passes changed the agent's behaviour."""


def run_demo(output: str | Path | None = "tokprof-report.html", *, optimize: bool = True,
             directory: str | Path | None = None, progress: Progress | None = None,
             passes: tuple[str, ...] | list[str] = DEMO_LIVE_PASSES,
             checks: Callable[[Run, list[str]], tuple[Any, Any]] | None = None) -> DemoResult:
    """Run the demo: baseline run, optimized live re-run, answer check, HTML report.

    ``checks(baseline, passes)`` (e.g. :func:`tokprof.demo_checks.run_checks`) returns each pass's own
    contribution and the lossy-pass check, shown beside the headline.

    Both runs are saved to ``directory`` (default ``.tokprof/runs`` or ``$TOKPROF_DIR``). Raises
    :class:`AnswerMismatch` if the two runs' final answers differ.
    """
    folder = runs_dir(directory)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    baseline, answer = run_agent(save=folder, progress=progress, name="demo")
    timings["baseline"] = time.perf_counter() - t0
    optimized = None
    if optimize:
        t1 = time.perf_counter()
        optimized, answer_after = run_agent(optimize=list(passes), save=folder, progress=progress,
                                            name="demo")
        timings["optimized"] = time.perf_counter() - t1
        if answer_after != answer:
            raise AnswerMismatch(
                "the optimized re-run gave a different final answer than the baseline:\n--- baseline\n"
                f"{answer}\n--- optimized ({', '.join(passes)})\n{answer_after}")
    result = DemoResult(baseline, optimized, answer, None, timings)
    if optimize and checks is not None:
        t3 = time.perf_counter()
        result.pass_contributions, result.lossy_check = checks(baseline, list(passes))
        timings["checks"] = time.perf_counter() - t3
    if output is not None:
        t2 = time.perf_counter()
        result.report_path, result.report_renderer = write_report(result, Path(output))
        timings["report"] = time.perf_counter() - t2
        if progress:
            progress("report written")
    timings["total"] = time.perf_counter() - t0
    return result


# ---------------------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------------------
def write_report(result: DemoResult, path: Path) -> tuple[Path, str]:
    """Write the comparison report (``tokprof.reports.model.build_comparison`` + ``tokprof.reports.html.write_html``); if that
    fails, the minimal self-contained page below. Returns the path and the renderer used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if result.optimized is not None:
        try:
            model = build_comparison(result.baseline, result.optimized,
                                     title="tokprof demo: baseline vs. live-optimized re-run (measured)")
            report_html.write_html(model, path)
            return path, "tokprof.reports.html.write_html"
        except Exception as exc:  # the report must not lose the demo's result: fall back, logged once
            internal_error("rendering the demo report with tokprof.reports.html", exc)
    path.write_text(fallback_html(result), encoding="utf-8")
    return path, "tokprof.demo.fallback_html"


def fallback_html(result: DemoResult) -> str:
    """A small self-contained comparison page (no scripts, no external resources)."""
    import html

    h = result.headline()
    before, after = result.before, result.after

    def money(x: Decimal | None) -> str:
        from tokprof.profiler.providers.currency import money as fmt

        return fmt(x, before.currency)

    rows = [("input tokens", f"{before.input_tokens:,}", f"{after.input_tokens:,}" if after else "—"),
            ("  of which read from prompt cache", f"{before.cache_read_tokens:,}",
             f"{after.cache_read_tokens:,}" if after else "—"),
            ("  of which written to prompt cache", f"{before.cache_write_tokens:,}",
             f"{after.cache_write_tokens:,}" if after else "—"),
            ("output tokens", f"{before.output_tokens:,}", f"{after.output_tokens:,}" if after else "—"),
            ("model calls billed", str(before.llm_calls), str(after.llm_calls) if after else "—"),
            ("cost", money(before.cost), money(after.cost) if after else "—")]
    table = "".join(f"<tr><td>{html.escape(a)}</td><td>{b}</td><td>{c}</td></tr>" for a, b, c in rows)
    top = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(r['kind'])}</td><td>{r['excl_tokens']:,}</td></tr>"
        for r in result.baseline.summary(top=8).top_spans)
    saved = h.get("saved") or {}
    pct = saved.get("cost_pct")
    head = (f"Measured on a live re-run: {saved.get('total_tokens', 0):,} tokens saved "
            f"({saved.get('total_tokens_pct') or 0:.1f}%), cost {money(before.cost)} → "
            f"{money(after.cost) if after else '—'}" + (f" ({pct:.1f}% less)" if pct is not None else ""))
    passes = ", ".join((result.optimized.metadata.get(keys.LIVE_PASSES) if result.optimized else []) or [])
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>tokprof demo report</title>
<style>body{{font:15px system-ui,sans-serif;margin:2em auto;max-width:900px;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border-bottom:1px solid #ddd;padding:.3em .8em;text-align:right}}
td:first-child,th:first-child{{text-align:left}}pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}</style>
</head><body><h1>tokprof demo: baseline vs. live-optimized run</h1>
<p><strong>{html.escape(head)}</strong></p>
<p>Evidence: <em>measured</em> (both runs executed; usage as reported by the model). Live passes: {html.escape(passes)}.
Model: {html.escape(DEMO_MODEL)} (scripted offline stand-in). The final answers are identical.</p>
<table><tr><th></th><th>baseline</th><th>optimized</th></tr>{table}</table>
<h2>Where the baseline's tokens went (top spans, exclusive)</h2>
<table><tr><th>span</th><th>kind</th><th>tokens</th></tr>{top}</table>
<h2>Final answer (both runs)</h2><pre>{html.escape(result.answer)}</pre>
<p>Runs: {html.escape(result.baseline.run_id)} → {html.escape(result.optimized.run_id if result.optimized else '—')}</p>
</body></html>
"""
