"""The demo's shop: its constants and prompts, the bundled back-office data and the agent's LangChain tools.

Used by :mod:`tokprof.demo` (the agent) and :mod:`tokprof.demo_policy` (the scripted model's decisions).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from langchain_core.tools import BaseTool, tool

from tokprof.profiler import trace

DEMO_MODEL = "claude-sonnet-4-5"
DEMO_TODAY = "2025-03-07"
"""The demo's fixed 'today', so eligibility windows give the same answer on every machine and day."""
DEMO_TAGS = {"team": "support", "feature": "inbox-agent"}
MAX_STEPS = 12

TRIAGE_PROMPT = (
    "You are the triage step of Northwind Goods' customer-support desk. Read one customer e-mail and "
    "classify it as exactly one of: refund, shipping, other. Reply with a JSON object "
    '{"category": ..., "priority": "high" | "normal"}. Damaged goods are high priority.'
)

AGENT_PROMPT = """You are Northwind Goods' customer-support agent. You resolve one ticket at a time.

Rules:
- Always identify the customer from the sender's e-mail with `lookup_customer` first.
- Work from facts returned by the tools; never guess order numbers, amounts or dates.
- Refunds: read the refund policy, check eligibility with `check_refund_eligibility`, then call
  `issue_refund` with exactly the amount the eligibility check returned. Never refund twice.
- Shipping questions: find the open order in the order history and call `track_shipment`; only quote
  delivery dates the carrier gave.
- Finish with one reply to the customer: first name, one apology, what you did, when the money or the
  parcel will arrive. Plain text, no markdown, at most five sentences.
- Tools return JSON. Today's date is """ + DEMO_TODAY + "."


# ---------------------------------------------------------------------------------------------------
# bundled data and tools
# ---------------------------------------------------------------------------------------------------
SCRIPTED_NOTE = "scripted model: tokens sent are measured; answers could not change"
DEMO_LIVE_PASSES: tuple[str, ...] = ("response-cache", "minify", "dedupe", "observation-mask", "prompt-cache")
"""The live passes the demo's re-run uses: the lossless ones plus observation-mask (its answer is checked);
the lossy ``truncate-outputs`` is shown apart, by :func:`tokprof.demo_checks.lossy_check`."""


def _read_data(name: str) -> str:
    return resources.files("tokprof").joinpath("demo_data", name).read_text(encoding="utf-8")


class SupportDesk:
    """The shop's back office, loaded from ``demo_data``. Refunds issued during a run are kept here."""

    def __init__(self) -> None:
        self.customers: list[dict[str, Any]] = json.loads(_read_data("customers.json"))["customers"]
        self.orders: list[dict[str, Any]] = json.loads(_read_data("orders.json"))["orders"]
        self.policy: str = _read_data("refund_policy.md")
        self.tickets: list[dict[str, Any]] = json.loads(_read_data("tickets.json"))["tickets"]
        self.refunds: list[dict[str, Any]] = []

    @trace(kind="retriever")
    def customer_by_email(self, email: str) -> dict[str, Any] | None:
        return next((c for c in self.customers if c["email"].lower() == email.strip().lower()), None)

    @trace(kind="retriever")
    def orders_of(self, customer_id: str) -> list[dict[str, Any]]:
        return [o for o in self.orders if o["customer_id"] == customer_id]

    def order(self, order_id: str) -> dict[str, Any] | None:
        return next((o for o in self.orders if o["order_id"] == order_id), None)


def _pretty(obj: Any) -> str:
    # Many real tools return pretty-printed JSON; that whitespace is exactly what `minify` removes.
    return json.dumps(obj, indent=2, ensure_ascii=False)


def make_tools(desk: SupportDesk) -> list[BaseTool]:
    """The agent's tools: real LangChain tools over the bundled data."""

    @tool
    def lookup_customer(email: str) -> str:
        """Find a customer account by e-mail address. Returns the account as JSON."""
        c = desk.customer_by_email(email)
        return _pretty(c if c is not None else {"error": f"no customer with e-mail {email}"})

    @tool
    def get_order_history(customer_id: str) -> str:
        """Every order of a customer, newest last, with items, payment, shipment events and refunds."""
        return _pretty({"customer_id": customer_id, "orders": desk.orders_of(customer_id)})

    @tool
    def get_refund_policy(topic: str) -> str:
        """The shop's returns and refunds policy (the whole document)."""
        return desk.policy

    @tool
    def check_refund_eligibility(order_id: str, reason: str) -> str:
        """Check whether an order can be refunded for a reason, and for how much, under the policy."""
        o = desk.order(order_id)
        if o is None:
            return _pretty({"order_id": order_id, "eligible": False, "why": "unknown order"})
        delivered = next((e["date"] for e in o["shipment"]["events"] if e["event"] == "delivered"), None)
        damaged = "damage" in reason.lower() or "defect" in reason.lower()
        days = None if delivered is None else (_day(DEMO_TODAY) - _day(delivered))
        window = 60 if damaged else 30
        eligible = delivered is not None and days is not None and days <= window and not o["refunds"]
        amount = o["total_usd"] if damaged else round(o["subtotal_usd"] - 6.95, 2)
        customer = next(c for c in desk.customers if c["customer_id"] == o["customer_id"])
        return _pretty({
            "order_id": order_id, "eligible": eligible, "reason": reason,
            "days_since_delivery": days, "window_days": window,
            "refund_amount_usd": amount if eligible else 0.0,
            "includes": ["items", "shipping", "tax"] if damaged else ["items"],
            "needs_supervisor": o["total_usd"] > 500,
            "goodwill_voucher_usd": 10 if (damaged and customer["tier"] == "gold") else 0,
            "policy_section": "3. Damaged or defective items" if damaged else "2. Standard returns",
        })

    @tool
    def issue_refund(order_id: str, amount_usd: float, reason: str) -> str:
        """Refund an order to the original payment method. Returns the refund record."""
        o = desk.order(order_id)
        if o is None:
            return _pretty({"error": f"unknown order {order_id}"})
        customer = next(c for c in desk.customers if c["customer_id"] == o["customer_id"])
        pay = o["payment"]
        record = {
            "refund_id": "R-" + order_id.split("-")[1] + "-1",
            "order_id": order_id,
            "amount_usd": amount_usd,
            "reason": reason,
            "to": f"{pay['method']} ending {pay['last4']}",
            "arrives_in": "3-5 business days" if pay["method"] == "paypal" else "5-10 business days",
            "customer_first_name": customer["name"].split()[0],
            "items": [i["name"] for i in o["items"]],
            "goodwill_voucher_usd": 10 if customer["tier"] == "gold" else 0,
        }
        desk.refunds.append(record)
        return _pretty(record)

    @tool
    def track_shipment(order_id: str) -> str:
        """The carrier's tracking record for an order: carrier, tracking number, scans, estimated delivery."""
        o = desk.order(order_id)
        if o is None:
            return _pretty({"error": f"unknown order {order_id}"})
        customer = next(c for c in desk.customers if c["customer_id"] == o["customer_id"])
        return _pretty({"order_id": order_id, "customer_first_name": customer["name"].split()[0],
                        "status": o["status"], **o["shipment"]})

    return [lookup_customer, get_order_history, get_refund_policy, check_refund_eligibility, issue_refund,
            track_shipment]


def _day(iso: str) -> int:
    from datetime import date

    return date.fromisoformat(iso).toordinal()
