"""The demo's honesty checks: what each pass contributes on its own, and a lossy pass caught changing the
answer.

* :func:`pass_contributions`: each live pass applied *alone* to the baseline run by the optimizer pipeline
  (simulated, credited only with its change relative to what the baseline paid), so the demo shows each
  pass's own part instead of one combined number.
* :func:`lossy_check`: ``truncate-outputs`` (lossy) applied to the baseline run; every rewritten request is
  replayed to the demo's scripted model (:func:`tokprof.optimizers.verify.verify_run`) and its next action
  compared with the original one, and the context fidelity (:mod:`tokprof.optimizers.fidelity`) of the
  rewrite is computed from the recorded outputs alone. The cut removes the order the agent needs; the
  model acts on the wrong order, and the fidelity check flags the call without running any model.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import convert_to_messages, convert_to_openai_messages

from tokprof.demo import SCRIPTED_NOTE, ScriptError, SupportDesk, run_agent, support_policy  # noqa: F401
from tokprof.optimizers.base import optimize
from tokprof.optimizers.fidelity import DEFAULT_THRESHOLD, distribution, run_fidelity_detail
from tokprof.optimizers.verify import verify_run
from tokprof.profiler.model import Message, Run

LOSSY_PASS = "truncate-outputs"
LOSSY_MAX_TOKENS = 3000
"""The pass's default: the cut falls on the order history (the demo's one oversized output)."""


def scripted_ask(messages: list[Message], tools: list[dict[str, Any]] | None) -> Message:
    """The demo's scripted model as a verify endpoint: its reply to an OpenAI-format request."""
    try:
        ai = support_policy(convert_to_messages(messages))
    except ScriptError as exc:  # the model could not find what it needed: that is an action too
        return {"role": "assistant", "content": f"[cannot proceed: {exc}]"}
    return convert_to_openai_messages([ai])[0]


def pass_contributions(baseline: Run, passes: list[str] | tuple[str, ...]) -> list[dict[str, Any]]:
    """Each pass alone on the baseline run: saved (expected, range), lossless, fidelity. Simulated."""
    out: list[dict[str, Any]] = []
    for name in passes:
        try:
            _, ledger = optimize(baseline, [name])
        except Exception as exc:  # a pass that cannot run in simulation is reported, not fatal
            out.append({"pass": name, "error": str(exc)})
            continue
        step = ledger.steps[0]
        rng = ledger.saved_range()
        out.append({"pass": name, "evidence": "simulated", "lossless": step.lossless,
                    "saved": None if ledger.saved() is None else str(ledger.saved()),
                    "saved_range": None if rng is None else [str(v) for v in rng],
                    "fidelity": step.fidelity, "calls_changed": len(step.rows)})
    return out


EXTRA_ORDERS = 8


def busier_desk() -> Any:
    """The bundled back office with :data:`EXTRA_ORDERS` newer orders for the refund ticket's customer, so
    the headphones order sits in the middle of the order history instead of at its end."""
    import copy as _copy

    desk = SupportDesk()
    target = next(o for o in desk.orders if "AUD-ANC-700" in str(o["items"]))
    older = next(o for o in desk.orders if o["customer_id"] == target["customer_id"] and o is not target)
    for i in range(EXTRA_ORDERS):
        o = _copy.deepcopy(older)
        o.update(order_id=f"O-3{i:04d}", placed=f"2025-03-0{3 + i % 4}", status="processing", refunds=[])
        desk.orders.append(o)
    return desk


def lossy_check(baseline: Run | None = None, max_tokens: int = LOSSY_MAX_TOKENS) -> dict[str, Any]:
    """``truncate-outputs`` on a baseline run (default: the agent on :func:`busier_desk`): does the
    scripted model still act the same, and does the context fidelity flag the calls where it does not?"""
    if baseline is None:
        baseline, _ = run_agent(desk=busier_desk(), name="demo-lossy-check")
    new, ledger = optimize(baseline, [LOSSY_PASS], options={LOSSY_PASS: {"max_tokens": max_tokens}})
    checked = verify_run(baseline, new, scripted_ask, "scripted")
    details = {d.span_id: d for d in run_fidelity_detail(baseline, new)}
    changed = [c for c in checked.checks if not c.agree]
    flagged = [c for c in changed if details[c.span_id].share is not None
               and details[c.span_id].share < DEFAULT_THRESHOLD]  # type: ignore[operator]
    return {
        "pass": LOSSY_PASS, "max_tokens": max_tokens, "lossless": False,
        "calls_rewritten": len(checked.checks), "actions_changed": len(changed),
        "agreement": checked.agreement,
        "changed": [{"span_id": c.span_id, "original": " ".join(c.original)[:160],
                     "rewritten": " ".join(c.rewritten)[:160],
                     "fidelity": details[c.span_id].share, "lost": details[c.span_id].lost[:8]} for c in changed],
        "fidelity": distribution(details.values()),
        "caught": bool(changed) and len(flagged) == len(changed),
        "saved": None if ledger.saved() is None else str(ledger.saved()),
    }


def run_checks(baseline: Run, passes: list[str]) -> tuple[Any, Any]:
    """What :func:`tokprof.demo.run_demo` shows beside its headline: each pass's own contribution on the
    baseline run and the lossy-pass check."""
    return pass_contributions(baseline, passes), lossy_check()
