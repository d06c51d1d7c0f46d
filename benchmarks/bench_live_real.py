"""Live optimization measured against a real local model (llama.cpp's llama-server), not a scripted one.

    python -m benchmarks.local_llm.server build && python -m benchmarks.local_llm.server fetch   # once (cached)
    python benchmarks/bench_live_real.py [--model smollm2-135m] [--repeat 2] [--json out.json]

For each configuration — no passes, each live pass alone, the default live set — every task of
``benchmarks/local_llm/tasks.py`` (24 instances, 3 types) is run by a small agent loop through the real ``openai``
client inside ``profile(optimize=[…])``, at temperature 0 with the server's prompt cache off. Printed per
configuration: input/output tokens (as the server reported them), cost at a chosen model's prices, task success,
answer agreement with the unoptimized run, tokprof's fidelity figure for the rewritten requests, and the
simulator's prediction (the same passes simulated on the unoptimized recorded runs) beside the measurement.
``--repeat`` runs everything again and reports how many answers differ between repeats (the variance).

It needs the server (``benchmarks/local_llm/server.py`` starts it); it is a benchmark, not part of CI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.local_llm import server  # noqa: E402
from benchmarks.local_llm.tasks import Task, suite  # noqa: E402
from tokprof.optimizers.live import DEFAULT_LIVE_PASSES, LIVE_PASSES  # noqa: E402
from tokprof.profiler import profile  # noqa: E402

PRICE_MODEL = "gpt-4.1-mini"   # the prices the token counts are costed at (the local model itself is free)
MAX_STEPS = 3


def run_task(client: Any, model: str, task: Task, optimize: list[str] | None) -> dict[str, Any]:
    """One task through the agent loop inside a profile; returns the answer, calls made and the run."""
    messages = [dict(m) for m in task.messages]
    calls: list[tuple[str, dict[str, Any]]] = []
    answer = ""
    kwargs: dict[str, Any] = {"optimize": optimize} if optimize else {}
    with profile(task.task_id, instrument=["openai"], save=False, **kwargs) as run:
        for _ in range(MAX_STEPS):
            resp = client.chat.completions.create(
                model=model, messages=messages, tools=task.tools, temperature=0, max_tokens=96,
                extra_body={"cache_prompt": False, "seed": 1})
            msg = resp.choices[0].message
            if not msg.tool_calls:
                answer = msg.content or ""
                break
            messages.append({"role": "assistant", "content": msg.content, "tool_calls": [
                {"id": tc.id, "type": "function", "function": {"name": tc.function.name,
                                                               "arguments": tc.function.arguments}}
                for tc in msg.tool_calls]})
            for tc in msg.tool_calls:
                try:
                    args = json.loads(tc.function.arguments or "{}")
                except json.JSONDecodeError:
                    args = {"_raw": tc.function.arguments}
                calls.append((tc.function.name, args))
                messages.append({"role": "tool", "tool_call_id": tc.id,
                                 "content": task.run_tool(tc.function.name, args)})
    return {"answer": answer, "calls": calls, "success": task.grade(answer, calls), "run": run}


def _tokens(run: Any) -> tuple[int, int]:
    s = run.summary()
    return int(s.tokens["input"]), int(s.tokens["output"])


def _cost(runs: list[Any]) -> Decimal:
    from tokprof.profiler.accounting import call_cost
    total = Decimal(0)
    for r in runs:
        for sp in r.llm_spans():
            c = call_cost(_as_model(sp.llm), "USD")
            total += c.amount if c is not None and c.amount is not None else Decimal(0)
    return total


def _as_model(call: Any) -> Any:
    import copy
    c = copy.copy(call)
    c.model = PRICE_MODEL
    return c


def _fidelity(before: Any, after: Any) -> float | None:
    from tokprof.optimizers import fidelity as fid
    fn = getattr(fid, "run_fidelity", None) or getattr(fid, "run_retention")
    try:
        return fn(before, after)
    except Exception:  # noqa: BLE001 - a benchmark column, not a result
        return None


def _simulated(runs: list[Any], passes: list[str]) -> tuple[int, Decimal | None]:
    """The simulator's prediction: the same passes applied to the unoptimized recorded runs."""
    from tokprof import optimize
    tokens, cost = 0, Decimal(0)
    for r in runs:
        new, ledger = optimize(r, [p for p in passes if p != "response-cache"] or [])
        tokens += ledger.final.input_tokens
        if ledger.final.billed_cost is not None and cost is not None:
            cost += ledger.final.billed_cost
        else:
            cost = None  # type: ignore[assignment]
    return tokens, cost


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(server.MODELS))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="only the first N tasks (quick look)")
    ap.add_argument("--json", help="also write the table as JSON here")
    ap.add_argument("--passes", help="comma-separated live passes to run alone (default: every live pass but "
                                     "response-cache, which a single run cannot hit)")
    ns = ap.parse_args(argv)

    import openai

    base = server.start(ns.model)
    client = openai.OpenAI(base_url=base, api_key="local", max_retries=0, timeout=300)
    tasks = suite()[: ns.limit or None]
    configs: list[tuple[str, list[str] | None]] = [("none", None)]
    alone = ns.passes.split(",") if ns.passes else [p for p in LIVE_PASSES if p != "response-cache"]
    configs += [(p, [p]) for p in alone]
    configs += [("default", [p for p in DEFAULT_LIVE_PASSES if p != "response-cache"])]

    results: dict[str, list[dict[str, Any]]] = {}
    repeats_differ = 0
    for rep in range(ns.repeat):
        for name, passes in configs:
            rows = [run_task(client, ns.model, t, passes) for t in tasks]
            if rep == 0:
                results[name] = rows
            else:
                repeats_differ += sum(a["answer"] != b["answer"] for a, b in zip(results[name], rows))
            print(f"  rep {rep + 1} {name}: {sum(r['success'] for r in rows)}/{len(rows)} solved", file=sys.stderr)

    base_rows = results["none"]
    table = []
    for name, passes in configs:
        rows = results[name]
        ins, outs = zip(*(_tokens(r["run"]) for r in rows))
        agree = sum(a["answer"].strip() == b["answer"].strip() for a, b in zip(rows, base_rows)) / len(rows)
        fids = [f for f in (_fidelity(b["run"], r["run"]) for b, r in zip(base_rows, rows)) if f is not None]
        sim_tokens, sim_cost = _simulated([b["run"] for b in base_rows], passes or []) if passes else (sum(
            _tokens(b["run"])[0] for b in base_rows), None)
        by_kind = {k: sum(r["success"] for r, t in zip(rows, tasks) if t.kind == k) for k in ("lookup", "multistep",
                                                                                                "longlog")}
        table.append({"config": name, "input_tokens": sum(ins), "output_tokens": sum(outs),
                      "cost_usd": str(_cost([r["run"] for r in rows])), "success": sum(r["success"] for r in rows),
                      "tasks": len(rows), "success_by_kind": by_kind, "agreement": round(agree, 3),
                      "fidelity_min": round(min(fids), 3) if fids else None,
                      "fidelity_mean": round(statistics.fmean(fids), 3) if fids else None,
                      "simulated_input_tokens": sim_tokens,
                      "simulated_cost_usd": str(sim_cost) if sim_cost is not None else None})

    hdr = f"{'config':<18}{'in':>8}{'out':>7}{'cost $':>10}{'solved':>8}{'agree':>7}{'fid min':>8}{'fid avg':>8}{'sim in':>8}"
    print(f"model {ns.model} via llama-server, {len(tasks)} tasks, prices of {PRICE_MODEL}")
    print(hdr)
    for row in table:
        print(f"{row['config']:<18}{row['input_tokens']:>8}{row['output_tokens']:>7}{row['cost_usd'][:8]:>10}"
              f"{row['success']:>5}/{row['tasks']:<2}{row['agreement']:>7.2f}"
              f"{(row['fidelity_min'] if row['fidelity_min'] is not None else float('nan')):>8.2f}"
              f"{(row['fidelity_mean'] if row['fidelity_mean'] is not None else float('nan')):>8.2f}"
              f"{row['simulated_input_tokens']:>8}")
    print(f"repeat variance: {repeats_differ} answers differed across {ns.repeat - 1} repeat(s) of "
          f"{len(configs) * len(tasks)} task runs")
    if ns.json:
        Path(ns.json).write_text(json.dumps({"model": ns.model, "table": table, "repeats_differ": repeats_differ},
                                            indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
