"""The scripted model's policy for the demo agent: every decision read from the conversation it is sent.

:func:`support_policy` is what :class:`tokprof.scripted_model.ScriptedChatModel` answers with; it reads only
the request (the ticket, earlier tool calls and their results), so a live transform that removes something
the agent still needs makes it fail or answer differently, as a real model would.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from tokprof.demo_desk import TRIAGE_PROMPT
from tokprof.scripted_model import message_text

class ScriptError(RuntimeError):
    """The scripted model could not read what it needed from the conversation it was sent."""


class _Conversation:
    """What the model 'reads' from a request: the ticket, the tool calls so far and their results."""

    def __init__(self, messages: list[BaseMessage]) -> None:
        self.ticket = next((message_text(m) for m in messages if m.type == "human"), "")
        self.calls = [tc for m in messages if m.type == "ai" for tc in (getattr(m, "tool_calls", None) or [])]
        self.results = {m.tool_call_id: message_text(m) for m in messages if isinstance(m, ToolMessage)}

    def args(self, tool_name: str) -> dict[str, Any]:
        for tc in reversed(self.calls):
            if tc["name"] == tool_name:
                return tc["args"]
        raise ScriptError(f"no earlier {tool_name} call in the conversation")

    def find(self, tool_name: str, extract: Callable[[str], Any]) -> Any:
        """The newest result of ``tool_name`` from which ``extract`` gets a value. Like a model reading
        back: a result that was masked or replaced by a pointer is skipped for an older readable copy."""
        for tc in reversed(self.calls):
            if tc["name"] != tool_name:
                continue
            text = self.results.get(tc.get("id"))
            value = extract(text) if text else None
            if value is not None:
                return value
        raise ScriptError(
            f"the scripted model found no readable {tool_name} result in the prompt it was sent: a live "
            "transform removed information the agent still needed (keep more recent tool outputs)")


def _regex(pattern: str) -> Callable[[str], str | None]:
    def extract(text: str) -> str | None:
        m = re.search(pattern, text)
        return m.group(1) if m else None

    return extract


def order_containing(marker: str) -> Callable[[str], str | None]:
    """The id of the last order in an order-history output that matches the regex ``marker``. Reads the
    JSON (in any shape ``minify`` gives it); an output cut to head + tail is no longer JSON and is read as
    text: the last ``order_id`` before the marker's last match."""

    def extract(text: str) -> str | None:
        data = _json(text)
        if data is not None and isinstance(data.get("orders"), list):
            hits = [o.get("order_id") for o in data["orders"]
                    if isinstance(o, dict) and re.search(marker, json.dumps(o, separators=(",", ":")))]
            return hits[-1] if hits else None
        found = [m.start() for m in re.finditer(marker, text)]
        if not found:
            return None
        ids = [(m.start(), m.group(1)) for m in re.finditer(r'"order_id":\s*"(O-\d+)"', text)]
        before = [oid for pos, oid in ids if pos < found[-1]]
        return before[-1] if before else None

    return extract


def _json(text: str) -> dict[str, Any] | None:
    """A JSON object tool output, read back whatever shape a compression pass gave it."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    value = untable(value)
    return value if isinstance(value, dict) else None


def untable(value: Any) -> Any:
    """Undo ``minify``'s column/row tables (``{"columns": [...], "rows": [[...]]}``, an optional ``(key)``
    column for id-keyed maps, ``outer.inner`` columns for nested objects): a model reads either shape."""
    if isinstance(value, list):
        return [untable(v) for v in value]
    if not isinstance(value, dict):
        return value
    cols, rows = value.get("columns"), value.get("rows")
    if set(value) == {"columns", "rows"} and isinstance(cols, list) and isinstance(rows, list):
        keyed = bool(cols) and cols[0] == "(key)"
        records: list[Any] = []
        for row in rows:
            rec: dict[str, Any] = {}
            for col, cell in zip(cols[1:] if keyed else cols, row[1:] if keyed else row):
                if cell is None:
                    continue
                outer, dot, inner = str(col).partition(".")
                if dot:
                    rec.setdefault(outer, {})[inner] = untable(cell)
                else:
                    rec[col] = untable(cell)
            records.append(rec)
        return {str(row[0]): rec for row, rec in zip(rows, records)} if keyed else records
    return {k: untable(v) for k, v in value.items()}


def _call(step: int, name: str, text: str, **args: Any) -> AIMessage:
    # Deterministic ids: the two runs must send identical prompts wherever nothing was optimized.
    return AIMessage(content=text, tool_calls=[{"name": name, "args": args, "id": f"toolu_{step:02d}_{name}",
                                                "type": "tool_call"}])


def _sender(conv: _Conversation) -> str:
    m = re.search(r"From: (\S+@\S+)", conv.ticket)
    if not m:
        raise ScriptError("the ticket has no From: line")
    return m.group(1)


_CUSTOMER_ID = _regex(r'"customer_id":\s*"(C-\d+)"')


def _refund_step(step: int, conv: _Conversation) -> AIMessage:
    if step == 0:
        return _call(step, "lookup_customer", "I'll find the customer's account from the sender address first.",
                     email=_sender(conv))
    if step == 1:
        return _call(step, "get_order_history", "Found the account. Let me pull the order history to find "
                     "the headphones order.", customer_id=conv.find("lookup_customer", _CUSTOMER_ID))
    if step == 2:
        return _call(step, "get_refund_policy", "Before refunding, I'll check the policy for items that "
                     "arrived damaged.", topic="damaged items")
    if step == 3:
        order_id = conv.find("get_order_history", order_containing(r"AUD-ANC-700"))
        return _call(step, "check_refund_eligibility", f"The headphones are on order {order_id}, with no "
                     "refund so far. Checking eligibility.", order_id=order_id, reason="damaged on arrival")
    if step == 4:
        amount = conv.find("check_refund_eligibility", _regex(r'"refund_amount_usd":\s*([\d.]+)'))
        return _call(step, "issue_refund", "Eligible for a full refund including shipping and tax; issuing "
                     "it now.", order_id=conv.args("check_refund_eligibility")["order_id"],
                     amount_usd=float(amount), reason="damaged on arrival")
    refund = conv.find("issue_refund", _json)
    voucher = (f" As a Gold member you'll also receive a {refund['goodwill_voucher_usd']} USD voucher."
               if refund.get("goodwill_voucher_usd") else "")
    return AIMessage(content=(
        f"Hi {refund['customer_first_name']}, I'm sorry your {refund['items'][0]} arrived damaged. "
        f"I've refunded {refund['amount_usd']:.2f} USD for order {refund['order_id']} (refund "
        f"{refund['refund_id']}) to your {refund['to']}; it will appear within {refund['arrives_in']}."
        f"{voucher} There's no need to send the headphones back."))


def _shipping_step(step: int, conv: _Conversation) -> AIMessage:
    if step == 0:
        return _call(step, "lookup_customer", "Let me find the customer's account.", email=_sender(conv))
    if step == 1:
        return _call(step, "get_order_history", "Now the order history, to find the open order.",
                     customer_id=conv.find("lookup_customer", _CUSTOMER_ID))
    if step == 2:
        order_id = conv.find("get_order_history", order_containing(r'"status":\s*"in_transit"'))
        return _call(step, "track_shipment", f"Order {order_id} is still in transit; checking the carrier.",
                     order_id=order_id)
    t = conv.find("track_shipment", _json)
    last = t["events"][-1]
    return AIMessage(content=(
        f"Hi {t['customer_first_name']}, sorry for the wait. Your order {t['order_id']} is with "
        f"{t['carrier']} (tracking {t['tracking_number']}); the last scan on {last['date']} in "
        f"{last['location']} reports a {last['event'].split(': ')[-1]} delay. The carrier's new estimated "
        f"delivery date is {t.get('estimated_delivery', 'not yet available')}."))


def support_policy(messages: list[BaseMessage]) -> AIMessage:
    """The scripted model: what a good support model would answer to ``messages``."""
    system = message_text(messages[0]) if messages and messages[0].type == "system" else ""
    if system.startswith(TRIAGE_PROMPT[:40]):
        text = message_text(messages[-1]).lower()
        if any(w in text for w in ("refund", "broken", "damaged", "cracked")):
            return AIMessage(content='{"category": "refund", "priority": "high"}')
        if any(w in text for w in ("where is", "tracking", "arrive")):
            return AIMessage(content='{"category": "shipping", "priority": "normal"}')
        return AIMessage(content='{"category": "other", "priority": "normal"}')
    conv = _Conversation(messages)
    step = len(conv.calls)
    if "refund" in conv.ticket.lower():
        return _refund_step(step, conv)
    return _shipping_step(step, conv)
