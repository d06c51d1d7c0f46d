"""Hand-made runs and ledgers for the report tests (no dependence on importers, pricing or passes)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tokprof.optimizers.base import Ledger, LedgerRow, PassStep
from tokprof.profiler.model import Cost, LLMCall, Run, Span, Usage

SYSTEM = "You are a helpful airline agent. Follow the policy strictly. " * 20
TOOLS = [{"type": "function", "function": {"name": "get_reservation", "description": "Look up a reservation",
                                           "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}]


def make_run(n_calls: int = 6, name: str = "checkout-agent", hostile: list[str] | None = None,
             tags: dict[str, str] | None = None) -> Run:
    """An agent that answers a user over ``n_calls`` LLM calls, with a tool call between them.

    History grows each call; every other call follows a large tool output. ``hostile`` strings are
    spread over prompts, tool outputs, span names, tags and models.
    """
    hostile = list(hostile or [])
    h = iter(hostile * 3)

    def bad(default: str) -> str:
        return next(h, default)

    run = Run(name=name if not hostile else bad(name), tags=tags or {"team": "payments", "feature": "refunds"})
    t = 1_000_000
    root = Span("root", None, run.run_id, "agent", "agent" if not hostile else bad("agent"), t, 1_700_000_000_000_000_000)
    run.spans.append(root)
    msgs: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                  {"role": "user", "content": "I want a refund for order 42. " + bad("")}]
    for i in range(n_calls):
        step = Span(f"step{i}", "root", run.run_id, "chain", "plan" if i % 2 == 0 else "answer", t, t)
        step.tags = {"customer": "acme" if i % 3 else bad("globex")} if i else None
        run.spans.append(step)
        inp = 300 + 150 * i + (800 if i >= 2 else 0)
        usage = Usage.from_provider(input_tokens=inp, output_tokens=40 + i, cache_read_tokens=200 if i else 0)
        cost = Decimal(inp) * Decimal("0.0000025") + Decimal(40 + i) * Decimal("0.00001")
        out_msg = {"role": "assistant", "content": f"Step {i}: let me check. " + bad(""),
                   "tool_calls": [{"id": f"c{i}", "type": "function",
                                   "function": {"name": "get_reservation", "arguments": json.dumps({"id": bad("42")})}}]}
        llm = LLMCall(provider="openai", model="gpt-4o" if not hostile or i % 2 else bad("gpt-4o"),
                      messages=[dict(m) for m in msgs], tools=TOOLS, output=out_msg, usage=usage,
                      cost=Cost(cost, "USD", "recorded"))
        call = Span(f"llm{i}", step.span_id, run.run_id, "llm", "chat " + ("gpt-4o" if not hostile else bad("gpt-4o")),
                    t + 10, t + 10, end_ns=t + 2_000_000 + 100_000 * i, llm=llm)
        run.spans.append(call)
        tool = Span(f"tool{i}", step.span_id, run.run_id, "tool", "get_reservation" if not hostile else bad("tool"),
                    t + 2_100_000, t, end_ns=t + 3_000_000)
        run.spans.append(tool)
        step.end_ns = t + 3_500_000
        msgs.append(out_msg)
        body = ("reservation 42: " + "seat 12A, flight UA100 " * (400 if i == 1 else 8)) + bad("")
        msgs.append({"role": "tool", "tool_call_id": f"c{i}", "name": "get_reservation", "content": body})
        t += 4_000_000
    root.end_ns = t
    return run


def make_ledger(run: Run) -> tuple[Run, Ledger]:
    """A hand-made two-pass ledger: a response cache (no content change) and a compression pass."""
    after = run.copy()
    spans = after.llm_spans()
    rows1: list[LedgerRow] = []
    rows2: list[LedgerRow] = []
    for s in spans[2:]:
        u = s.llm.usage
        before_in = u.input_tokens
        # Compression: drop old tool outputs (all but the last tool message).
        tool_idx = [k for k, m in enumerate(s.llm.messages) if m.get("role") == "tool"]
        for k in tool_idx[:-1]:
            s.llm.messages[k] = {**s.llm.messages[k], "content": "[output masked]"}
        u.set("input_tokens", before_in - 700, "provider")
        rows2.append(LedgerRow("observation-mask", s.span_id, "gpt-4o", "masked old tool outputs (700 tokens)",
                               "simulated", before_in, before_in - 700, u.output_tokens, u.output_tokens,
                               Decimal("0.004"), Decimal("0.0022"), 0.93, "low: only old observations"))
    rows1.append(LedgerRow("prompt-cache", spans[1].span_id, "gpt-4o", "cache read 200 tokens", "simulated",
                           spans[1].llm.usage.input_tokens, spans[1].llm.usage.input_tokens, 41, 41,
                           Decimal("0.003"), Decimal("0.0025")))
    inp0 = sum(s.llm.usage.input_tokens for s in run.llm_spans())
    out0 = sum(s.llm.usage.output_tokens for s in run.llm_spans())
    inp2 = sum(s.llm.usage.input_tokens for s in after.llm_spans())
    base = PassStep("recorded", "the run as it was billed", "simulated", inp0, out0, Decimal("0.0500"), "USD", 1.0)
    step1 = PassStep("prompt-cache", "simulate provider prefix caching", "simulated", inp0, out0,
                     Decimal("0.0420"), "USD", 1.0, rows1)
    step2 = PassStep("observation-mask", "mask old tool observations", "simulated", inp2, out0,
                     Decimal("0.0300"), "USD", 0.93, rows2)
    return after, Ledger(run.run_id, base, [step1, step2])


def tau1_runs(corpus: Path, limit: int | None = None) -> list[Run]:
    """τ-bench trajectories as runs, through B's importer when it exists, else a minimal local reader
    (one LLM call per assistant message, its prompt the messages before it; tokens unknown)."""
    path = corpus / "tau1" / "gpt-4o-airline.json.gz"
    try:
        from tokprof.profiler.interchange import import_file  # type: ignore[attr-defined]

        runs = list(import_file(path).runs)
        return runs[:limit] if limit else runs
    except (ImportError, AttributeError):
        pass
    data = json.load(gzip.open(path))
    runs = []
    for n, rec in enumerate(data[:limit] if limit else data):
        run = Run(name=f"tau1 task {rec['task_id']} trial {rec['trial']}", tags={"task": str(rec["task_id"])})
        root = Span("root", None, run.run_id, "agent", "airline-agent", 0, 0)
        run.spans.append(root)
        traj = rec["traj"]
        t = 0
        for k, m in enumerate(traj):
            if m.get("role") != "assistant":
                continue
            prompt = traj[:k]
            chars = sum(len(json.dumps(p)) for p in prompt)
            usage = Usage()
            usage.set("input_tokens", chars // 4, "estimated")
            usage.set("output_tokens", max(1, len(json.dumps(m)) // 4), "estimated")
            llm = LLMCall(provider="openai", model="gpt-4o", messages=prompt, output=m, usage=usage)
            run.spans.append(Span(f"c{k}", "root", run.run_id, "llm", "chat gpt-4o", t, t, end_ns=t + 1000, llm=llm))
            t += 1000
        root.end_ns = t
        runs.append(run)
    return runs
