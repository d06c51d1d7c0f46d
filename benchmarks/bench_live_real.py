"""Live optimization measured against a real local model (llama.cpp's llama-server), not a scripted one.

    python -m benchmarks.local_llm.server build && python -m benchmarks.local_llm.server fetch   # once (cached)
    python benchmarks/bench_live_real.py [--repeat 2] [--limit N] [--txt out.txt] [--json out.json]
    python benchmarks/bench_live_real.py --analyze-only           # the tables again, from the JSON lines
    python benchmarks/bench_live_real.py --verify out.json        # `tokprof verify` on suite runs (VERIFY_PLAN)

For each configuration — no passes, the default live set, each live pass alone — every task of
``benchmarks/local_llm/tasks.py`` (24 instances, 3 types) is run by a small agent loop through the real ``openai``
client inside ``profile(optimize=[…])``, at temperature 0 with the server's prompt cache off. One JSON line per
task run is appended to ``--out`` as it finishes (a partial run is usable; a restart resumes), and each run's
file is saved. A run whose requests the passes would not change is the unoptimized run, copied (``reused``).
:mod:`benchmarks.local_llm.analysis` prints per configuration: tokens in/out, cost at a chosen model's prices,
task success, agreement with the unoptimized run, tokprof's fidelity, the simulator's prediction beside the
measurement; then the repeat variance, the default-set rule, and the fidelity/agreement correlation.

It needs the server (``benchmarks/local_llm/server.py`` starts it); it is a benchmark, not part of CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.local_llm import server  # noqa: E402
from benchmarks.local_llm.tasks import Task, suite  # noqa: E402
from tokprof.optimizers.live import DEFAULT_LIVE_PASSES, LIVE_PASSES  # noqa: E402
from tokprof.profiler import profile  # noqa: E402

PRICE_MODEL = "gpt-4.1-mini"   # the prices the token counts are costed at (the local model itself is free)
MAX_STEPS = 3
MAX_TOKENS = 48


def run_task(client: Any, model: str, task: Task, optimize: list[str] | None) -> dict[str, Any]:
    """One task through the agent loop inside a profile; returns the answer, calls made, the requests sent
    (before the live passes: what the agent built) and the run."""
    messages = [dict(m) for m in task.messages]
    calls: list[tuple[str, dict[str, Any]]] = []
    requests: list[list[dict[str, Any]]] = []
    answer = ""
    kwargs: dict[str, Any] = {"optimize": optimize} if optimize else {}
    with profile(task.task_id, instrument=["openai"], save=False, **kwargs) as run:
        for _ in range(MAX_STEPS):
            requests.append([dict(m) for m in messages])
            resp = client.chat.completions.create(
                model=model, messages=messages, tools=task.tools, temperature=0,
                max_tokens=MAX_TOKENS, extra_body={"cache_prompt": False, "seed": 1})
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
    return {"answer": answer, "calls": calls, "success": task.grade(answer, calls), "run": run,
            "requests": requests}


def passes_change(passes: list[str], requests: list[list[dict[str, Any]]], model: str) -> bool:
    """Whether ``passes``, live, would rewrite any of ``requests`` (the unoptimized run's requests, each in
    its own fresh session as a task is its own profile block). If not, the optimized run sends the very same
    requests at temperature 0, so its result is the unoptimized one (copied, labelled ``reused``; the repeat
    runs measure how far "the same request gives the same reply" holds)."""
    from tokprof.optimizers.live import LiveSession
    session = LiveSession.open(passes)
    for msgs in requests:
        rw = session.rewrite([dict(m) for m in msgs], model, "openai")
        if rw.messages != msgs:
            return True
    return False


def _done(path: Path) -> dict[tuple[int, str, str], dict[str, Any]]:
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text().splitlines():
        if line.strip():
            r = json.loads(line)
            out[(r["rep"], r["config"], r["task_id"])] = r
    return out


def run_suite(ns: argparse.Namespace) -> None:
    """Run every (repeat, configuration, task) not yet in ``ns.out``; append one JSON line per task run (so a
    partial run is usable and a restart resumes) and save each run's file under ``ns.runs_dir``."""
    import openai
    from tokprof.profiler.store import save_run

    base = server.start(ns.model)
    client = openai.OpenAI(base_url=base, api_key="local", max_retries=0, timeout=600)
    tasks = suite()[: ns.limit or None]
    configs = config_list(ns.passes)
    out, runs_dir = Path(ns.out), Path(ns.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    done = _done(out)
    # A configuration repeated keeps the passes its first repeat ran with (``default`` may have changed since).
    first = {name: r["passes"] for (rep, name, _), r in done.items() if rep == 0}
    configs = [(name, first.get(name, passes)) for name, passes in configs]
    plan = [(rep, name, passes) for rep in range(ns.repeat) for name, passes in configs
            if rep == 0 or name in ns.repeat_configs.split(",")]
    for rep, name, passes in plan:
        for t in tasks:
            key = (rep, name, t.task_id)
            if key in done:
                continue
            base_rec = done.get((rep, "none", t.task_id))
            t0 = time.monotonic()
            if passes and base_rec is not None and not passes_change(passes, base_rec["requests"], ns.model):
                rec = {k: v for k, v in base_rec.items()}
                rec.update({"config": name, "passes": passes, "reused": True, "elapsed_s": 0.0})
            else:
                r = run_task(client, ns.model, t, passes)
                file = save_run(r["run"], path=runs_dir / f"r{rep}-{name}-{t.task_id}.jsonl")
                ins, outs = _tokens(r["run"])
                live_changed = sum(1 for sp in r["run"].llm_spans()
                                   if (sp.attributes or {}).get("tokprof.live_deltas"))
                rec = {"rep": rep, "config": name, "passes": passes, "task_id": t.task_id, "kind": t.kind,
                       "answer": r["answer"], "calls": r["calls"], "success": r["success"],
                       "input_tokens": ins, "output_tokens": outs, "requests_n": len(r["requests"]),
                       "requests_changed": live_changed, "reused": False, "run_file": str(file),
                       "elapsed_s": round(time.monotonic() - t0, 1), "requests": r["requests"]}
            rec["rep"] = rep
            with out.open("a") as f:
                f.write(json.dumps(rec, default=str) + "\n")
            done[key] = rec
            print(f"rep {rep + 1} {name:<17} {t.task_id:<13} ok={rec['success']!s:<5} reused={rec['reused']!s:<5} "
                  f"in={rec['input_tokens']} {rec['elapsed_s']}s  {rec['answer'][:60]!r}", file=sys.stderr,
                  flush=True)


def config_list(passes: str | None) -> list[tuple[str, list[str] | None]]:
    """``none``, each live pass alone (all but ``response-cache``, which a single run cannot hit), ``default``."""
    configs: list[tuple[str, list[str] | None]] = [("none", None)]
    configs += [("default", [p for p in DEFAULT_LIVE_PASSES if p != "response-cache"])]
    alone = passes.split(",") if passes else [p for p in LIVE_PASSES if p != "response-cache"]
    configs += [(p, [p]) for p in alone]
    return configs   # default first after none: the figure the findings rest on, if the run is cut short


def _tokens(run: Any) -> tuple[int, int]:
    s = run.summary()
    return int(s.tokens["input"]), int(s.tokens["output"])


RESULTS = Path(__file__).resolve().parent / "results"

VERIFY_PLAN: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("observation-mask", ("lookup-04",)), ("dedupe", ("lookup-04",)), ("minify", ("multistep-00", "lookup-01")))
"""Which recorded unoptimized runs ``tokprof verify`` checks, per pass: runs the pass changes (lookup-04 is the one
the model solved unoptimized that dedupe and observation-mask change; the others are the cheap ones;
this machine processes ~25-150 prompt tokens/s, and verify sends every changed call twice; the
long log of ``truncate-outputs`` alone would take ~6 minutes)."""


def run_verify(ns: argparse.Namespace) -> dict[str, Any]:
    """``tokprof verify`` (the real command, in a subprocess) on recorded unoptimized runs of the suite,
    against the same server; its agreement beside the live agreement of the same task runs."""
    import subprocess
    from benchmarks.local_llm.analysis import agrees, load
    recs = {(r["rep"], r["config"], r["task_id"]): r for r in load(Path(ns.out))}
    base = server.start(ns.model)
    out: dict[str, Any] = {"model": ns.model, "base_url": base, "checks": []}
    plan: list[tuple[str, tuple[str, ...]]] = [] if ns.verify_corpus else list(VERIFY_PLAN)
    if ns.verify_corpus:
        # One recorded τ-bench run (gpt-4o, airline), checked on its first call minify changes only
        # (--max-calls 1): its prompts are ~1,300-2,500 tokens, minutes each on this machine.
        from tokprof.commands.report_cmd import load_runs
        from tokprof.profiler.store import save_run
        first = load_runs([ns.verify_corpus], None, folders=True)[0]
        recs[(0, "none", "tau1-0")] = {"run_file": str(save_run(first, path=Path(ns.runs_dir) / "tau1-0.jsonl"))}
        plan.append(("minify", ("tau1-0",)))
    for p, task_ids in plan:
        files = [recs[(0, "none", t)]["run_file"] for t in task_ids if (0, "none", t) in recs]
        if not files:
            continue
        cmd = [sys.executable, "-m", "tokprof.cli", "verify", *files, "--passes", p, "--base-url", base,
               "--model", ns.model, "--max-tokens", str(MAX_TOKENS), "--extra-body", '{"cache_prompt": false, "seed": 1}',
               "--max-calls", "1", "--json"]
        t0 = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            out["checks"].append({"pass": p, "error": res.stderr[-500:]})
            continue
        v = json.loads(res.stdout)
        live = [(recs[(0, p, t)], recs[(0, "none", t)]) for t in task_ids if (0, p, t) in recs
                and "answer" in recs[(0, "none", t)]]
        out["checks"].append({"pass": p, "tasks": list(task_ids), "verify_checked": v["checked"],
                              "verify_agreement": v["agreement"],
                              "live_agreement": (sum(agrees(a, b) for a, b in live) / len(live)) if live else None,
                              "elapsed_s": round(time.monotonic() - t0, 1), "runs": v["runs"]})
        print(f"verify {p}: {v['agreement']} of {v['checked']} (live: {out['checks'][-1]['live_agreement']})",
              file=sys.stderr, flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m", choices=sorted(server.MODELS))
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--repeat-configs", default="none,default",
                    help="configurations run again in repeats 2.. (the others once)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N tasks (quick look)")
    ap.add_argument("--out", default=str(RESULTS / "live_real_runs_smollm2-135m_v3.jsonl"),
                    help="one JSON line per task run, appended as it finishes (a restart resumes)")
    ap.add_argument("--runs-dir", default=str(server.cache_dir() / "live_real_runs"),
                    help="where each task run's tokprof run file is saved")
    ap.add_argument("--analyze-only", action="store_true", help="only build the tables from --out")
    ap.add_argument("--verify", help="run `tokprof verify` on recorded runs of the suite (VERIFY_PLAN) against the "
                                     "server and write the result as JSON here (after the suite)")
    ap.add_argument("--json", help="write the tables as JSON here")
    ap.add_argument("--txt", help="write the printed tables here too")
    ap.add_argument("--verify-corpus", help="with --verify: verify only the first run of this corpus file "
                                            "(e.g. ../shared/corpus/tau1/gpt-4o-airline.json.gz) under minify")
    ap.add_argument("--passes", help="comma-separated live passes to run alone (default: every live pass but "
                                     "response-cache, which a single run cannot hit)")
    ns = ap.parse_args(argv)
    if ns.verify:
        Path(ns.verify).write_text(json.dumps(run_verify(ns), indent=2, default=str) + "\n")
        return 0
    if not ns.analyze_only:
        run_suite(ns)
    from benchmarks.local_llm import analysis
    text, data = analysis.analyze(Path(ns.out), PRICE_MODEL)
    print(text)
    if ns.txt:
        Path(ns.txt).write_text(text + "\n")
    if ns.json:
        Path(ns.json).write_text(json.dumps(data, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
