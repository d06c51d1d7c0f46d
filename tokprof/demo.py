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
import re
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.tools import BaseTool, tool

from tokprof.profiler import keys, profile, trace
from tokprof.profiler.hooks import current_run, internal_error, record_llm_call
from tokprof.profiler.model import Run, Usage
from tokprof.profiler.store import runs_dir
from tokprof.reports import html as report_html
from tokprof.reports.model import build_comparison
from tokprof.scripted_model import ScriptedChatModel, message_text

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


# ---------------------------------------------------------------------------------------------------
# the scripted model's policy: decisions from the conversation only
# ---------------------------------------------------------------------------------------------------
class ScriptError(RuntimeError):
    """The scripted model could not read what it needed from the conversation it was sent."""


class _Conversation:
    """What the model 'reads' from a request: the ticket, the tool calls so far and their results."""

    def __init__(self, messages: list[BaseMessage]) -> None:
        self.ticket = next((message_text(m) for m in messages if m.type == "human"), "")
        self.calls = [tc for m in messages if m.type == "ai" for tc in (getattr(m, "tool_calls", None) or [])]
        self.results = {m.tool_call_id: message_text(m) for m in messages if m.type == "tool"}

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


def _order_containing(marker: str) -> Callable[[str], str | None]:
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
        order_id = conv.find("get_order_history", _order_containing(r"AUD-ANC-700"))
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
        order_id = conv.find("get_order_history", _order_containing(r'"status":\s*"in_transit"'))
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
def run_tool(tools: dict[str, BaseTool], call: dict[str, Any]) -> ToolMessage:
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
    """The headline figures of one run, from its recorded spans."""

    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    llm_calls: int
    cost: Decimal | None
    currency: str = "USD"

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def of(cls, run: Run) -> "RunTotals":
        s = run.summary(top=0)
        return cls(s.tokens["input"], s.tokens["output"], s.tokens["cache_read"], s.tokens["cache_write"],
                   s.llm_calls, s.cost, s.currency)

    def to_dict(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens,
                "total_tokens": self.total_tokens, "llm_calls": self.llm_calls,
                "cost": None if self.cost is None else str(self.cost), "currency": self.currency}


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
