"""The tables of ``benchmarks/bench_live_real.py``, built from its JSON lines (one per task run).

Per configuration (repeat 1): tokens in/out as the server reported them, cost at a chosen model's list prices
(the server caches nothing: ``cache_prompt: false``), task success, agreement with the unoptimized run, how many
task runs the passes actually changed, success flips, tokprof's context fidelity (the same passes *simulated*
on the unoptimized recorded run, with the live options: what tokprof would report before the pass is switched
on) and the simulator's predicted tokens and cost beside the measured ones.

Then: repeat variance; the default-set rule applied to each pass; how well fidelity predicts agreement
(Pearson = point-biserial correlation, n, and a 2x2 at the fidelity threshold); simulated vs measured, flagged.

Agreement of a task run = the same final answer (whitespace-trimmed) and the same tool calls as the
unoptimized run of the same repeat. A run the passes did not change is copied from the unoptimized one
(``reused``): it agrees by construction, so the rule and the correlation use only the changed runs.
"""

from __future__ import annotations

import copy
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

RULE_RATE = 0.10
"""The default-set rule: a pass is left out of ``DEFAULT_LIVE_PASSES`` when, over the task runs it changed,
the Wilson 95% lower bound of its answer-change rate is above this rate (and above the repeat variance)."""

TOKEN_TOLERANCE = 0.05
"""Simulated vs measured input tokens: the simulator counts SmolLM2's tokens with another tokenizer
(``estimated``), so a measured change within 5 points of the baseline of the predicted one is not flagged."""


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of k successes in n trials (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson correlation (with a 0/1 ``ys``, the point-biserial); ``None`` when either side is constant."""
    n = len(xs)
    if n < 2:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sx = math.sqrt(sum((x - mx) ** 2 for x in xs))
    sy = math.sqrt(sum((y - my) ** 2 for y in ys))
    if sx == 0 or sy == 0:
        return None
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / (sx * sy)


def agrees(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a["answer"].strip() == b["answer"].strip() and a["calls"] == b["calls"]


def _priced(run: Any, price_model: str) -> Any:
    """A copy of ``run`` whose calls name ``price_model`` (the local model has no price)."""
    r = copy.deepcopy(run)
    for sp in r.llm_spans():
        if sp.llm is not None:
            sp.llm.model = price_model
    return r


def measured_cost(run: Any, price_model: str) -> Decimal:
    from tokprof.profiler.accounting import call_cost
    total = Decimal(0)
    for sp in _priced(run, price_model).llm_spans():
        c = call_cost(sp.llm, "USD")
        total += c.amount if c is not None and c.amount is not None else Decimal(0)
    return total


class Sim:
    """tokprof's view of a pass set on one unoptimized recorded run: fidelity and predicted tokens/cost.

    The passes are simulated on the run *as recorded* (the local model's name), so they take the decisions they
    took live (``observation-mask``'s cache-aware block rule depends on the model's cache prices: under
    gpt-4.1-mini's it would not mask these short runs at all); both runs are then priced as ``price_model``
    calls by the billing simulator, the way the pipeline prices them (baseline = as paid, here no cache read
    reported; the rewritten run re-billed, with automatic caching simulated and its range)."""

    def __init__(self, run: Any, passes: list[str], price_model: str) -> None:
        from tokprof import optimize
        from tokprof.optimizers import fidelity as fid
        from tokprof.optimizers import paid
        from tokprof.optimizers.live import LIVE_PASS_OPTIONS
        new, ledger = optimize(run, passes, options={k: dict(v) for k, v in LIVE_PASS_OPTIONS.items()})
        self.fidelity = fid.run_fidelity(run, new)
        shares = [d.share for d in fid.run_fidelity_detail(run, new) if d.share is not None]
        self.fidelity_min = min(shares) if shares else None
        self.base_in, self.final_in = ledger.baseline.input_tokens, ledger.final.input_tokens
        prun, pnew = _priced(run, price_model), _priced(new, price_model)
        sim_orig = paid.simulate([prun], "USD", paid.original_plans([prun]))
        base = paid.paid_bills([prun], "USD", sim_orig)[0]
        after = paid.rebill([prun], [pnew], [base], sim_orig, "USD")[0]
        self.base_cost = base.total.expected
        self.final_cost, self.final_low, self.final_high = after.total.expected, after.total.low, after.total.high


def analyze(path: Path, price_model: str) -> tuple[str, dict[str, Any]]:
    """(printed tables, the same as data) from the JSON lines at ``path``."""
    from tokprof.profiler.store import load_run
    from benchmarks.local_llm.tasks import suite
    tasks = {t.task_id: t for t in suite()}
    recs = load(path)
    for r in recs:  # strict grading, re-done from the stored answer (see Task.grade_strict)
        t = tasks.get(r["task_id"])
        r["strict"] = bool(t and t.grade_strict(r["answer"], [(c[0], c[1]) for c in r["calls"]]))
    by: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}
    for r in recs:
        by.setdefault((r["rep"], r["config"]), {})[r["task_id"]] = r
    base0 = by.get((0, "none"), {})
    runs: dict[str, Any] = {}

    def run_of(rec: dict[str, Any]) -> Any:
        f = rec["run_file"]
        if f not in runs:
            runs[f] = load_run(f)
        return runs[f]

    configs = [c for (rep, c) in by if rep == 0]
    lines = [f"model smollm2-135m via llama-server; {len(base0)} tasks; prices of {price_model} (list, no cache: "
             f"the server cached nothing); fidelity = tokprof's context fidelity of the same passes simulated on the "
             f"unoptimized run (live options)", ""]
    hdr = (f"{'config':<17}{'runs':>5}{'chg':>5}{'in':>8}{'out':>6}{'cost $':>10}{'solved':>8}{'agree':>7}"
           f"{'strict':>7}{'agr|chg':>9}{'flips -/+':>10}{'fid avg':>8}{'fid min':>8}{'sim in':>8}{'sim $':>10}")
    lines.append(hdr)
    table: list[dict[str, Any]] = []
    points: list[tuple[str, str, float, int]] = []
    solved_points: list[tuple[str, str, float, int]] = []   # changed runs the model solved (strict) unoptimized
    for c in configs:
        rows = by[(0, c)]
        tids = [t for t in base0 if t in rows]
        if not tids:
            continue
        changed = [t for t in tids if not rows[t]["reused"]] if c != "none" else []
        agree = [agrees(rows[t], base0[t]) for t in tids]
        agree_chg = [agrees(rows[t], base0[t]) for t in changed]
        lost = sum(1 for t in tids if base0[t]["success"] and not rows[t]["success"])
        won = sum(1 for t in tids if not base0[t]["success"] and rows[t]["success"])
        fids, mins, per_task = [], [], []
        passes = rows[tids[0]].get("passes") or []
        for t in tids:
            pt = {"task": t, "in": rows[t]["input_tokens"], "out": rows[t]["output_tokens"],
                  "cost": float(measured_cost(run_of(rows[t]), price_model)),
                  "none_in": base0[t]["input_tokens"], "none_out": base0[t]["output_tokens"],
                  "none_cost": float(measured_cost(run_of(base0[t]), price_model)),
                  "same_trajectory": rows[t]["requests_n"] == base0[t]["requests_n"]}
            if passes:
                s = Sim(run_of(base0[t]), passes, price_model)
                pt.update({"sim_base_in": s.base_in, "sim_in": s.final_in, "sim_base_cost": float(s.base_cost or 0),
                           "sim_cost": float(s.final_cost or 0), "sim_low": float(s.final_low or 0),
                           "sim_high": float(s.final_high or 0), "fidelity": s.fidelity,
                           "fidelity_min": s.fidelity_min})
                if s.fidelity is not None:
                    fids.append(s.fidelity)
                    if t in changed:
                        points.append((c, t, s.fidelity, int(agrees(rows[t], base0[t]))))
                        if base0[t]["strict"]:
                            solved_points.append((c, t, s.fidelity, int(not rows[t]["strict"])))
                if s.fidelity_min is not None:
                    mins.append(s.fidelity_min)
            per_task.append(pt)
        ins = sum(p["in"] for p in per_task)
        outs = sum(p["out"] for p in per_task)
        cost = sum(p["cost"] for p in per_task)
        row = {"config": c, "passes": passes, "task_runs": len(tids), "changed": len(changed),
               "input_tokens": ins, "output_tokens": outs, "cost_usd": cost,
               "success": sum(rows[t]["success"] for t in tids),
               "success_strict": sum(rows[t]["strict"] for t in tids),
               "success_by_kind": {k: sum(rows[t]["success"] for t in tids if rows[t]["kind"] == k)
                                   for k in ("lookup", "multistep", "longlog")},
               "agreement": sum(agree) / len(tids),
               "agree_changed": (sum(agree_chg), len(changed)), "success_lost": lost, "success_won": won,
               "fidelity_mean": sum(fids) / len(fids) if fids else 1.0,
               "fidelity_min": min(mins) if mins else 1.0,
               "sim_input": sum(p.get("sim_in", p["in"]) for p in per_task),
               "sim_cost": sum(p.get("sim_cost", p["cost"]) for p in per_task), "per_task": per_task}
        table.append(row)
        ac = f"{sum(agree_chg)}/{len(changed)}" if changed else "-"
        lines.append(f"{c:<17}{len(tids):>5}{len(changed):>5}{ins:>8}{outs:>6}{cost:>10.6f}"
                     f"{row['success']:>5}/{len(tids):<2}{row['agreement']:>7.2f}{row['success_strict']:>7}{ac:>9}{f'{lost}/{won}':>10}"
                     f"{row['fidelity_mean']:>8.3f}{row['fidelity_min']:>8.3f}{row['sim_input']:>8}"
                     f"{row['sim_cost']:>10.6f}")
    lines += ["", "solved: graded as the run graded it (the expected value is in the answer); strict: and no wrong "
              "value of the asked field either (an echoed table is not an answer)",
              "runs: task runs; chg: runs where the passes rewrote at least one request (the others are the "
              "unoptimized run, copied); agr|chg: agreeing/changed; flips -/+: solved->unsolved / unsolved->solved"]
    data: dict[str, Any] = {"price_model": price_model, "table": table}
    data["repeat"] = _repeats(by, lines)
    data["rule"] = _rule(table, data["repeat"], lines)
    data["fidelity_vs_agreement"] = _correlation(points, lines)
    data["fidelity_vs_lost_success"] = _lost_success(solved_points, lines)
    data["simulated_vs_measured"] = _sim_vs_measured(table, lines)
    return "\n".join(lines), data


def _repeats(by: dict[tuple[int, str], dict[str, dict[str, Any]]], lines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    lines.append("")
    lines.append("repeat variance (same configuration run again; answer or tool calls differ):")
    for (rep, c), rows in sorted(by.items()):
        if rep == 0 or (0, c) not in by:
            continue
        first = by[(0, c)]
        both = [t for t in rows if t in first]
        live = [t for t in both if not rows[t]["reused"]]
        diff = [t for t in both if not agrees(rows[t], first[t])]
        out[f"{c} rep{rep + 1}"] = {"compared": len(both), "run_live": len(live), "differ": len(diff),
                                    "tasks": diff}
        lines.append(f"  {c} repeat {rep + 1} vs 1: {len(diff)} of {len(both)} task runs differ "
                     f"({len(live)} re-run live){': ' + ', '.join(diff) if diff else ''}")
    return out


def _rule(table: list[dict[str, Any]], repeat: dict[str, Any], lines: list[str]) -> dict[str, Any]:
    noise_k = sum(v["differ"] for v in repeat.values())
    noise_n = sum(v["run_live"] for v in repeat.values())
    noise = noise_k / noise_n if noise_n else 0.0
    bar = max(RULE_RATE, noise)
    lines += ["", f"default-set rule: out of the default if the Wilson 95% lower bound of the answer-change rate "
                  f"over the task runs the pass changed is > max({RULE_RATE:.0%}, repeat variance "
                  f"{noise:.0%}) = {bar:.0%}"]
    out: dict[str, Any] = {"rate": RULE_RATE, "repeat_variance": noise, "bar": bar, "passes": {}}
    for row in table:
        if row["config"] in ("none",):
            continue
        k_agree, n = row["agree_changed"]
        k = n - k_agree
        lo, hi = wilson(k, n)
        out_of_default = n > 0 and lo > bar
        out["passes"][row["config"]] = {"changed_runs": n, "answers_changed": k, "rate": k / n if n else None,
                                        "wilson95": [lo, hi], "exceeds": out_of_default,
                                        "success_lost": row["success_lost"], "success_won": row["success_won"]}
        rate = f"{k}/{n} = {k / n:.0%}" if n else "0/0 (never fired)"
        lines.append(f"  {row['config']:<17} answers changed {rate:<16} 95% CI [{lo:.0%}, {hi:.0%}]  "
                     f"success -{row['success_lost']}/+{row['success_won']}  -> "
                     f"{'ABOVE the bar' if out_of_default else 'below the bar'}")
    return out


def _correlation(points: list[tuple[str, str, float, int]], lines: list[str], threshold: float = 0.9) -> dict[str, Any]:
    xs = [p[2] for p in points]
    ys = [float(p[3]) for p in points]
    r = pearson(xs, ys)
    hi_a = sum(1 for x, y in zip(xs, ys) if x >= threshold and y)
    hi_d = sum(1 for x, y in zip(xs, ys) if x >= threshold and not y)
    lo_a = sum(1 for x, y in zip(xs, ys) if x < threshold and y)
    lo_d = sum(1 for x, y in zip(xs, ys) if x < threshold and not y)
    lines += ["", f"fidelity vs agreement over the {len(points)} changed task runs (single-pass configs and default, "
                  f"repeat 1): Pearson (point-biserial) r = {'n/a (a side is constant)' if r is None else f'{r:+.2f}'}",
              "                     agreed  changed answer", f"  fidelity >= {threshold}  {hi_a:>6}  {hi_d:>6}",
              f"  fidelity <  {threshold}  {lo_a:>6}  {lo_d:>6}"]
    return {"n": len(points), "pearson": r, "threshold": threshold,
            "2x2": {"high_agree": hi_a, "high_changed": hi_d, "low_agree": lo_a, "low_changed": lo_d},
            "points": [{"config": c, "task": t, "fidelity": x, "agree": y} for c, t, x, y in points]}


def _lost_success(points: list[tuple[str, str, float, int]], lines: list[str],
                  threshold: float = 0.9) -> dict[str, Any]:
    """On changed runs the model solved (strict) unoptimized: does fidelity < ``threshold`` predict that the
    optimized run lost the success? (A changed wording that still solves the task is not a lost success.)"""
    lo = [p for p in points if p[2] < threshold]
    hi = [p for p in points if p[2] >= threshold]
    lo_lost, hi_lost = sum(p[3] for p in lo), sum(p[3] for p in hi)
    r = pearson([p[2] for p in points], [float(p[3]) for p in points])
    lines += ["", f"fidelity vs lost success over the {len(points)} changed task runs the model solved (strict) "
                  f"unoptimized: Pearson r(fidelity, lost) = {'n/a (a side is constant)' if r is None else f'{r:+.2f}'}",
              f"  fidelity <  {threshold}: lost {lo_lost} of {len(lo)}",
              f"  fidelity >= {threshold}: lost {hi_lost} of {len(hi)}"]
    return {"n": len(points), "pearson": r, "low": [lo_lost, len(lo)], "high": [hi_lost, len(hi)],
            "points": [{"config": c, "task": t, "fidelity": x, "lost": y} for c, t, x, y in points]}


def _change(per_task: list[dict[str, Any]], new: str, old: str) -> float:
    before = sum(p[old] for p in per_task)
    return (sum(p[new] for p in per_task) - before) / before if before else 0.0


def _sim_vs_measured(table: list[dict[str, Any]], lines: list[str]) -> list[dict[str, Any]]:
    """Per configuration: the measured change against the unoptimized run of the same tasks beside the
    simulator's predicted change, over all task runs and over those whose trajectory did not change (same
    number of requests: the simulator assumes the model acts as before, so only there are the two comparable)."""
    lines += ["", "simulated vs measured (change against the unoptimized run of the same tasks; simulator: the same "
                  "passes on the unoptimized recorded runs, cost expected [range]):"]
    out = []
    for row in table:
        pts = row["per_task"]
        if row["config"] == "none" or not pts or "sim_in" not in pts[0]:
            continue
        d: dict[str, Any] = {"config": row["config"]}
        for label, sub in (("all", pts), ("same trajectory", [p for p in pts if p["same_trajectory"]])):
            if not sub:
                continue
            m_in, s_in = _change(sub, "in", "none_in"), _change(sub, "sim_in", "sim_base_in")
            m_out = _change(sub, "out", "none_out")
            m_c, s_c = _change(sub, "cost", "none_cost"), _change(sub, "sim_cost", "sim_base_cost")
            s_lo, s_hi = _change(sub, "sim_low", "sim_base_cost"), _change(sub, "sim_high", "sim_base_cost")
            flags = []
            if (m_in > 0) != (s_in > 0) and abs(m_in - s_in) > TOKEN_TOLERANCE:
                flags.append("input sign")
            elif abs(m_in - s_in) > TOKEN_TOLERANCE:
                flags.append("input beyond 5 pts")
            if (m_c > 0) != (s_c > 0) and abs(m_c - s_c) > TOKEN_TOLERANCE:
                flags.append("cost sign")
            elif not (min(s_lo, s_hi) - TOKEN_TOLERANCE <= m_c <= max(s_lo, s_hi) + TOKEN_TOLERANCE):
                flags.append("cost outside range")
            d[label] = {"task_runs": len(sub), "measured_input": m_in, "simulated_input": s_in,
                        "measured_output": m_out, "simulated_output": 0.0, "measured_cost": m_c,
                        "simulated_cost": s_c, "simulated_cost_range": [s_lo, s_hi], "flags": flags}
            lines.append(f"  {row['config']:<17} {label:<16} n={len(sub):<3} input {m_in:+.1%} measured / "
                         f"{s_in:+.1%} simulated; output {m_out:+.1%} / +0.0% (assumed unchanged); cost "
                         f"{m_c:+.1%} / {s_c:+.1%} [{s_lo:+.1%}, {s_hi:+.1%}]  "
                         f"{'FLAG: ' + ', '.join(flags) if flags else 'ok'}")
        out.append(d)
    return out
