"""Issue #16.3: fidelity that can fail. Each case is a rewrite the old bag-of-tokens measure scored (near)
1.00 although the meaning is gone; the context measure must score it clearly lower and below the default
threshold. Controls: whitespace-only and an unchanged input keep 1.00."""

from __future__ import annotations

import json

import pytest

from tokprof.optimizers.bag_retention import call_bag_retention
from tokprof.optimizers.fidelity import DEFAULT_THRESHOLD, call_fidelity, distribution
from tokprof.optimizers.compression.minify import minify_message
from tokprof.profiler.model import LLMCall

SYSTEM = {"role": "system", "content": "You are an airline agent. Refunds above 500 need a manager approval first. "
                                       "Be polite."}


def _call(messages: list[dict], answer: str | None = None, tool: tuple[str, dict] | None = None) -> LLMCall:
    out: dict = {"role": "assistant", "content": answer}
    if tool:
        out["tool_calls"] = [{"id": "t9", "type": "function",
                              "function": {"name": tool[0], "arguments": json.dumps(tool[1])}}]
    return LLMCall(model="gpt-4o", messages=messages, output=out)


def _tool(content: object, cid: str = "c1") -> dict:
    return {"role": "tool", "tool_call_id": cid, "content": json.dumps(content, indent=2)}


def _scores(orig: LLMCall, new_messages: list[dict]) -> tuple[float, float]:
    new = LLMCall(model=orig.model, messages=new_messages, output=orig.output)
    return call_bag_retention(orig, new).share, call_fidelity(orig, new).share  # type: ignore[return-value]


FLIGHT = {"flight_number": "HAT001", "origin": "JFK", "destination": "MCO", "date": "2024-05-22",
          "status": "cancelled"}
ASK = {"role": "user", "content": "Is my flight HAT001 on time?"}


def _assert_caught(old: float, new: float) -> None:
    assert old >= 0.99 or old - new >= 0.4, (old, new)  # the old measure missed it (or barely saw it)
    assert new < DEFAULT_THRESHOLD and new <= old - 0.4, (old, new)


def test_placeholder_hiding_a_status() -> None:
    orig = _call([SYSTEM, ASK, _tool(FLIGHT)], "Flight HAT001 from JFK to MCO on 2024-05-22 is cancelled.")
    masked = {"role": "tool", "tool_call_id": "c1",
              "content": "[output of c1 elided by observation-mask: HAT001 JFK MCO 2024-05-22]"}
    old, new = _scores(orig, [SYSTEM, ASK, masked])
    assert old == 1.0
    _assert_caught(old, new)
    # the status flipped: every value of that record left its context
    old, new = _scores(orig, [SYSTEM, ASK, _tool({**FLIGHT, "status": "active"})])
    _assert_caught(old, new)


def test_swapped_values_between_two_cards() -> None:
    cards = [{"id": "credit_card_1", "balance": 120}, {"id": "gift_card_2", "balance": 35}]
    swapped = [{"id": "credit_card_1", "balance": 35}, {"id": "gift_card_2", "balance": 120}]
    orig = _call([SYSTEM, _tool(cards)], "Your gift card gift_card_2 has a balance of 35.")
    old, new = _scores(orig, [SYSTEM, _tool(swapped)])
    assert old == 1.0
    _assert_caught(old, new)


def test_bag_of_facts_prompt() -> None:
    orig = _call([SYSTEM, ASK, _tool(FLIGHT)], None, ("rebook", {"flight_number": "HAT001", "origin": "JFK",
                                                                 "destination": "MCO", "date": "2024-05-22"}))
    bag = [{"role": "user", "content": "HAT001 JFK MCO 2024-05-22 cancelled 500"}]
    old, new = _scores(orig, bag)
    assert old == 1.0
    _assert_caught(old, new)
    assert new == 0.0


def test_deleted_record() -> None:
    orders = [{"order_id": "#W0000001", "total": 12.5}, {"order_id": "#W0000002", "total": 54.1},
              {"order_id": "#W0000003", "total": 99.0}]
    user = {"role": "user", "content": "Please refund my order #W0000002."}
    orig = _call([SYSTEM, user, _tool(orders)], None, ("refund", {"order_id": "#W0000002", "amount": 54.1}))
    old, new = _scores(orig, [SYSTEM, user, _tool([orders[0], orders[2]])])
    _assert_caught(old, new)
    assert new == 0.0


def test_removed_rule_sentence() -> None:
    orig = _call([SYSTEM, _tool({"refund_amount": 500})], "A refund of 500 needs a manager first.")
    trimmed = {"role": "system", "content": "You are an airline agent. Be polite."}
    old, new = _scores(orig, [trimmed, _tool({"refund_amount": 500})])
    assert old == 1.0  # 500 is still somewhere (the record)
    _assert_caught(old, new)


def test_lossless_rewrites_keep_everything() -> None:
    tool = _tool(FLIGHT)
    orig = _call([SYSTEM, ASK, tool], "Flight HAT001 from JFK to MCO on 2024-05-22 is cancelled.")
    assert call_fidelity(orig, orig).share == 1.0
    assert call_fidelity(orig, orig).referenced >= 5  # HAT001 JFK MCO 2024-05-22 cancelled
    minified = LLMCall(model="gpt-4o", messages=[SYSTEM, ASK, minify_message(tool)], output=orig.output)
    assert call_fidelity(orig, minified).share == 1.0


def test_distribution_reports_min_and_calls_below_threshold() -> None:
    orig = _call([SYSTEM, ASK, _tool(FLIGHT)], "Flight HAT001 is cancelled.")
    bad = LLMCall(model="gpt-4o", messages=[ASK], output=orig.output)
    d = distribution([call_fidelity(orig, orig), call_fidelity(orig, bad)])
    assert d["calls"] == 2 and d["min"] < DEFAULT_THRESHOLD and d["below_threshold"] == 1
    assert d["median"] == pytest.approx(d["min"])  # lower median of two
