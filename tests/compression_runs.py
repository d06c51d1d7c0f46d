"""Hand-made runs with known answers for the compression, fidelity and decomposition tests."""

from __future__ import annotations

import json
from typing import Any

from tokprof.profiler.model import LLMCall, Run, Span, Usage

POLICY = """# Airline Agent Policy

You help users book, modify, or cancel flight reservations. Always confirm before acting.

## Book flight

- The agent must first obtain the user id, then ask for the trip type, origin, destination.
- Travel insurance costs 30 dollars per passenger and enables full refund for health reasons.

## Cancel flight

- All reservations can be cancelled within 24 hours of booking, or if the airline cancelled the flight.
- The refund will go to original payment methods in 5 to 7 business days.

## Baggage

- Each extra baggage is 50 dollars. Gold members get 3 free checked bags per business passenger.
"""


def reservation(rid: str, user: str, price: int = 120) -> str:
    """A tool result as tau-bench prints it (spaced JSON, with empty fields)."""
    return json.dumps({
        "reservation_id": rid, "user_id": user, "origin": "JFK", "destination": "SEA",
        "flights": [{"flight_number": f"HAT{n:03d}", "date": "2024-05-20", "price": price + n,
                     "note": None, "extras": []} for n in range(1, 9)],
        "payment_history": [{"payment_id": "credit_card_4421486", "amount": price * 2}],
        "insurance": "no", "remarks": "",
    }, indent=2)


def tool_call(cid: str, name: str, **args: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def tool_result(cid: str, content: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": cid, "content": content}


def transcript() -> list[dict[str, Any]]:
    """A support conversation: two lookups, a repeat lookup, a cancellation and a booking question."""
    return [
        {"role": "system", "content": POLICY},
        {"role": "user", "content": "Hi, I am mia_li_3668 and I want to check reservation XEWRD9."},
        tool_call("c1", "get_reservation_details", reservation_id="XEWRD9"),
        tool_result("c1", reservation("XEWRD9", "mia_li_3668")),
        {"role": "assistant", "content": "Reservation XEWRD9 flies JFK to SEA on HAT001 for 121 dollars."},
        {"role": "user", "content": "Also look at reservation K1NW8N please."},
        tool_call("c2", "get_reservation_details", reservation_id="K1NW8N"),
        tool_result("c2", reservation("K1NW8N", "mia_li_3668", price=200)),
        {"role": "assistant", "content": "K1NW8N has HAT004 at 204 dollars."},
        {"role": "user", "content": "Show me XEWRD9 again."},
        tool_call("c3", "get_reservation_details", reservation_id="XEWRD9"),
        tool_result("c3", reservation("XEWRD9", "mia_li_3668")),
        {"role": "assistant", "content": "XEWRD9 is unchanged: HAT001, HAT002, paid with credit_card_4421486."},
        {"role": "user", "content": "Cancel XEWRD9, my plans changed. It was booked within 24 hours."},
        tool_call("c4", "cancel_reservation", reservation_id="XEWRD9"),
        tool_result("c4", json.dumps({"reservation_id": "XEWRD9", "status": "cancelled", "refund": 242})),
        {"role": "assistant", "content": "Done: XEWRD9 is cancelled and 242 dollars go back to "
                                         "credit_card_4421486 within 5 to 7 business days."},
        {"role": "user", "content": "What did HAT003 cost on XEWRD9, and what was K1NW8N's HAT008 price?"},
        {"role": "assistant", "content": "HAT003 cost 123 dollars on XEWRD9; HAT008 on K1NW8N was 208 dollars."},
    ]


def run_from_transcript(messages: list[dict[str, Any]], model: str = "gpt-4o", provider: str = "openai",
                        name: str = "hand-made") -> Run:
    """One LLM span per assistant message: its input is everything before it, its output the message.
    Input tokens are len/4 'provider' counts so the arithmetic of rewrites is checkable."""
    run = Run(name=name, run_id="r-" + name)
    t = 1_000_000_000
    k = 0
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        k += 1
        prompt = messages[:i]
        size = sum(len(json.dumps(x)) for x in prompt) // 4
        call = LLMCall(provider=provider, model=model, messages=[dict(x) for x in prompt], output=dict(m),
                       usage=Usage.from_provider(input_tokens=size, output_tokens=20, cache_read_tokens=0))
        run.spans.append(Span(f"s{k}", None, run.run_id, "llm", "chat", t + k * 10_000_000,
                              t + k * 10_000_000, end_ns=t + k * 10_000_000 + 5_000_000, llm=call))
    return run


def cut_future(run: Run, keep_calls: int) -> Run:
    """The same run with every call after the first ``keep_calls`` removed (its future cut off)."""
    cut = run.copy()
    keep = {s.span_id for s in run.llm_spans()[:keep_calls]}
    cut.spans = [s for s in cut.spans if s.llm is None or s.span_id in keep]
    return cut
