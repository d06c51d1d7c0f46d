"""A small agent task suite with known answers, for measuring what live passes do to a real model's behaviour.

Three task types, 24 instances, generated deterministically (seeded) so every run sees the same prompts:

- ``lookup``: search tools returned pretty-printed JSON flight tables; the question asks one field of one
  flight. Correct: the answer contains that field's value. Half the instances carry five earlier searches
  (one repeated verbatim), so ``dedupe`` and the live ``observation-mask`` fire on them (see :func:`_lookup`).
- ``multistep``: a search tool returned customers with ids; the model must call ``get_orders(customer_id=…)`` with
  the id of the customer named in the question (an id carried from one tool's output into the next call), then
  say how many orders are open. Correct: the right id was called and the answer contains the count.
- ``longlog``: a tool returned a service log with exactly one error line; the question asks for its error code.
  Correct: the answer contains the code. One instance is long enough (~16,000 characters) for
  ``truncate-outputs`` to cut it, with the error line in the cut middle (see :func:`_longlog`).

Sizes are set so each pass's own default threshold is crossed on some instances while one configuration costs
~15,000 prompt tokens (this shared 2-core machine processed 19-25 prompt tokens/s during the run).

The first tool call of every task is played by the harness (the conversation already holds it), because what is
measured is what a pass does to *context the agent gathered*, not whether a tiny model can start a plan. The
model writes every later turn itself, through the real ``openai`` client.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable

SYSTEM = ("You are a precise assistant. Answer the user's question using only the tool results in this "
          "conversation. Reply with the value only, no explanation.")

GET_ORDERS_TOOL = {"type": "function", "function": {
    "name": "get_orders", "description": "List a customer's orders.",
    "parameters": {"type": "object", "properties": {"customer_id": {"type": "string"}},
                   "required": ["customer_id"]}}}
SEARCH_TOOL = {"type": "function", "function": {
    "name": "search", "description": "Search the records.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}


@dataclass
class Task:
    task_id: str
    kind: str
    messages: list[dict[str, Any]]                 # system, user, the harness's first tool call and its output
    tools: list[dict[str, Any]]
    expected: str                                  # must appear in the final answer (case-insensitive)
    expected_call: tuple[str, str] | None = None   # (tool, argument value) the model must call, if any
    run_tool: Callable[[str, dict[str, Any]], str] = field(default=lambda name, args: "unknown tool")
    distractors: tuple[str, ...] = ()              # wrong values of the asked field that appear in the tool outputs

    def grade(self, answer: str, calls: list[tuple[str, dict[str, Any]]]) -> bool:
        ok = _norm(self.expected) in _norm(answer)
        if self.expected_call is not None:
            name, value = self.expected_call
            ok = ok and any(n == name and value in json.dumps(a) for n, a in calls)
        return ok

    def grade_strict(self, answer: str, calls: list[tuple[str, dict[str, Any]]]) -> bool:
        """:meth:`grade`, and no wrong value of the asked field in the answer either: an answer that echoes a
        whole table contains the right status *and* the wrong ones, and is not counted as solved."""
        words = set(re.findall(r"[\w-]+", _norm(answer)))
        return self.grade(answer, calls) and not any(
            (_norm(d) in _norm(answer)) if " " in d else (_norm(d) in words) for d in self.distractors)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().lower()


def _seed_call(call_id: str, name: str, args: dict[str, Any], output: str) -> list[dict[str, Any]]:
    return [{"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]},
            {"role": "tool", "tool_call_id": call_id, "content": output}]


STATUSES = ["on time", "delayed", "cancelled", "boarding", "landed"]
CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Doha", "Perth", "Quito", "Riga", "Turin", "Osaka"]


def _flights(rng: random.Random, i: int, page: int, n: int) -> list[dict[str, str]]:
    return [{"flight": f"{rng.choice('ABCDEFGH')}{rng.choice('XYZKQ')}{100 + page * 300 + j * 7 + i}",
             "status": rng.choice(STATUSES), "gate": f"{rng.choice('ABCD')}{rng.randint(1, 40)}"}
            for j in range(n)]


def _lookup(rng: random.Random, i: int) -> Task:
    """Even ``i`` ("big"): five searches already made — departures, arrivals, a weather note, a delay note,
    departures *again* (the repeated fetch is what ``dedupe`` replaces by a reference). With five steps behind
    the question, the first two outputs are older than the live ``observation-mask``'s three kept steps and
    together (~450 rough tokens) over its 300-token block threshold, so it masks them. The asked flight is in
    departures (still in full in the repeated copy) for ``i`` = 0, 4 and in arrivals (only in the mask's
    placeholder) for ``i`` = 2, 6. Odd ``i`` ("small"): one departures table and a weather note; only
    ``minify`` changes it. (Sizes are kept small: this machine processes ~25-150 prompt tokens/s.)"""
    big = i % 2 == 0
    departures, arrivals = _flights(rng, i, 0, 12 if big else 6), _flights(rng, i, 1, 12)
    target = (arrivals if big and i % 4 == 2 else departures)[rng.randrange(len(departures))]
    asked = rng.choice(["status", "gate"])
    msgs = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"What is the {asked} of flight {target['flight']}? Answer with the {asked} only."}]
    msgs += _seed_call(f"call_l{i}a", "search", {"query": "departures today"}, json.dumps(departures, indent=2))
    if big:
        msgs += _seed_call(f"call_l{i}b", "search", {"query": "arrivals today"}, json.dumps(arrivals, indent=2))
    msgs += _seed_call(f"call_l{i}c", "search", {"query": "weather"}, f"{rng.choice(CITIES)}: clear, 12 C")
    if big:
        msgs += _seed_call(f"call_l{i}d", "search", {"query": "delays"}, "No airport-wide delays reported.")
        msgs += _seed_call(f"call_l{i}e", "search", {"query": "departures today"},
                           json.dumps(departures, indent=2))
    shown = departures + (arrivals if big else [])
    wrong = tuple(sorted({str(f[asked]) for f in shown} - {str(target[asked])}))
    return Task(f"lookup-{i:02d}", "lookup", msgs, [SEARCH_TOOL], str(target[asked]), distractors=wrong)


FIRST = ["Ana", "Bo", "Chen", "Dara", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lena"]


def _multistep(rng: random.Random, i: int) -> Task:
    names = rng.sample(FIRST, 6)
    customers = [{"customer_id": f"C-{rng.randint(1000, 9999)}", "name": n, "tier": rng.choice(["gold", "basic"])}
                 for n in names]
    target = customers[rng.randrange(len(customers))]
    orders = {c["customer_id"]: [{"order_id": f"O-{rng.randint(10000, 99999)}",
                                  "state": rng.choice(["open", "shipped", "open", "closed"])}
                                 for _ in range(rng.randint(2, 5))] for c in customers}
    open_count = sum(1 for o in orders[target["customer_id"]] if o["state"] == "open")

    def run_tool(name: str, args: dict[str, Any]) -> str:
        if name == "get_orders":
            return json.dumps(orders.get(str(args.get("customer_id")), []), indent=2)
        return "unknown tool"

    msgs = [{"role": "system", "content": SYSTEM + " Call get_orders with a customer_id when you need orders."},
            {"role": "user", "content": f"How many open orders does {target['name']} have? Call get_orders with {target['name']}'s "
                                    "customer_id, then answer with the number only."}]
    msgs += _seed_call(f"call_m{i}", "search", {"query": "customers"}, json.dumps(customers, indent=2))
    return Task(f"multistep-{i:02d}", "multistep", msgs, [SEARCH_TOOL, GET_ORDERS_TOOL], str(open_count),
                expected_call=("get_orders", target["customer_id"]), run_tool=run_tool)


SERVICES = ["auth", "billing", "search", "mailer", "gateway", "scheduler"]


WORDS = ["handled the request from the web client", "returned the cached page to the mobile app",
         "finished the nightly report for the finance team", "sent the weekly newsletter to all subscribers"]


def _longlog(rng: random.Random, i: int) -> Task:
    """A service log with one error line. ``i`` = 0: ~16,000 characters of plain-English lines (over
    ``truncate-outputs``' 3,000 rough-token limit, with the error line inside the middle it cuts: head 60% /
    tail 40% of 12,000 chars kept; ~4,200 model tokens); the others: 24 lines, under every threshold."""
    code = f"E{rng.randint(100, 999)}"
    bad = rng.choice(SERVICES)
    lines = []
    long = i == 0
    n = 235 if long else 24
    err_at = int(n * 0.56) if long else rng.randint(n // 3, 2 * n // 3)
    for j in range(n):
        svc = rng.choice(SERVICES)
        if j == err_at:
            lines.append(f"ERROR {bad}: the request failed with code {code}")
        else:
            lines.append(f"INFO {svc}: {rng.choice(WORDS)} in {rng.randint(2, 900)} ms")
    msgs = [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Which error code appears in the service log? Answer with the code only."}]
    msgs += _seed_call(f"call_g{i}", "search", {"query": "service log"}, "\n".join(lines))
    return Task(f"longlog-{i:02d}", "longlog", msgs, [SEARCH_TOOL], code)


def suite(seed: int = 20261201) -> list[Task]:
    """The 24 task instances (8 of each type), the same for the same seed."""
    rng = random.Random(seed)
    tasks: list[Task] = []
    for i in range(8):
        tasks += [_lookup(rng, i), _multistep(rng, i), _longlog(rng, i)]
    return tasks
