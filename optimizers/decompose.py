"""Task decomposition: a run's subtasks, their data dependencies, and what each would cost on its own.

From the conversation of a run's main agent (the longest thread of calls sharing a system prompt):

* **subtasks**: the calls that follow each user request, merged with the next request's calls when they
  use the same cluster of tools (one intent, one tool cluster);
* **dependencies** (a networkx DAG): subtask B depends on A when B's tool-call arguments or answers use
  a fact (id, number, code, name) that first appeared in A's tool results or user messages;
* **minimal context** per subtask: the system prompt's preamble, the sections BM25 ranks relevant to
  the subtask, the earlier results it actually uses, and its own messages;
* **cost as a sub-agent** with only that context, at plain input prices (no cache), against the same
  calls' recorded input at the same plain prices, so the comparison isolates the context saving;
* **parallel waves**: subtasks with no dependency path between them (topological generations);
* **mechanical calls**: tool calls whose output is short and whose every argument is copied verbatim
  from the input; they could go to a cheaper model of the same provider.

Everything here is ``estimated`` (nothing is re-run), with its reasoning written out, plus a code-level
recommendation. The ``task-decompose`` pass applies only the routing part to a run (estimated).
"""

from __future__ import annotations

import fnmatch
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # networkx is imported where a graph is built: it costs ~0.5 s to import
    pass

from tokprof.optimizers.base import LedgerRow, PassContext, register
from tokprof.optimizers.compression.common import (
    digest,
    message_text,
    rough_tokens,
    text_of,
)
from tokprof.optimizers.compression.relevance import BM25, split_sections
from tokprof.optimizers.fidelity import arg_values, fact_tokens, output_facts
from tokprof.profiler.model import Message, Run, Span
from tokprof.profiler.providers.cost import TokenSplit, call_start_ns, default_prices, split_cost
from tokprof.optimizers.decompose_report import DecompositionReport, RouteCandidate, Subtask

# The public names of this module, including those re-exported from the modules it was split into.
__all__ = ["cheaper_model", "decompose", "is_mechanical", "main_thread", "MECHANICAL_MAX_OUTPUT_TOKENS",
           "predicts_lookup", "TaskDecomposePass"]

MECHANICAL_MAX_OUTPUT_TOKENS = 80

CHEAPER_MODEL: list[tuple[str, str]] = [
    ("gpt-4o-mini*", ""), ("gpt-4o*", "gpt-4o-mini"), ("gpt-4.1-mini*", "gpt-4.1-nano"),
    ("gpt-4.1-nano*", ""), ("gpt-4.1*", "gpt-4.1-mini"), ("gpt-5*-mini*", ""), ("gpt-5*-nano*", ""),
    ("gpt-5*", "gpt-5-mini"), ("o3*", "o4-mini"), ("o1*", "o4-mini"), ("claude-*haiku*", ""),
    ("claude-*", "claude-haiku-4-5"), ("grok-3-mini*", ""), ("grok-*", "grok-3-mini"),
    ("gpt-oss-120b*", "gpt-oss-20b"), ("openai/gpt-oss-120b*", "openai/gpt-oss-20b"),
]
"""model pattern -> a cheaper model of the same provider ("": already the cheap tier)."""


def cheaper_model(model: str | None) -> str | None:
    if not model:
        return None
    bare = model.split("/", 1)[1] if model.startswith(("openai/", "anthropic/", "xai/")) and "gpt-oss" not in model else model
    for pat, cheap in CHEAPER_MODEL:
        if fnmatch.fnmatchcase(bare, pat):
            return cheap or None
    return None


# ---- helpers -----------------------------------------------------------------------------------------
def main_thread(run: Run) -> list[Span]:
    """The calls of the run's main agent: the largest group of calls sharing a first (system) message."""
    groups: dict[str, list[Span]] = {}
    for s in run.llm_spans():
        assert s.llm is not None
        first = s.llm.messages[0] if s.llm.messages else {}
        groups.setdefault(digest(message_text(first)), []).append(s)
    return max(groups.values(), key=len) if groups else []


def _price(model: str | None, inp: int, out: int, currency: str, started_ns: int | None = None) -> Decimal | None:
    """Plain input/output price of a call in ``currency`` (the model's tier for its prompt size), at the
    rates in force when the call started (a row with peak / off-peak hours is priced by the hour)."""
    try:
        r = default_prices(model)
    except Exception:
        return None
    return split_cost(TokenSplit(inp, inp, output=out), r, None, currency, started_ns=started_ns)


def is_mechanical(span: Span) -> str | None:
    """Why the call is mechanical (short tool call with arguments copied from the input), or ``None``."""
    call = span.llm
    if call is None or not call.output:
        return None
    out = call.output
    if text_of(out.get("content")).strip() or not out.get("tool_calls"):
        return None
    size = call.usage.output_tokens if call.usage.known("output_tokens") else rough_tokens(message_text(out))
    if size > MECHANICAL_MAX_OUTPUT_TOKENS:
        return None

    for tc in out.get("tool_calls") or []:
        if isinstance(tc, dict) and any(len(v) > 80 for v in arg_values((tc.get("function") or {}).get("arguments"))):
            return None  # free text (a thought, a message): written, not copied
    haystack = "\n".join(message_text(m) for m in call.messages)
    facts = output_facts(out)
    names = {(tc.get("function") or {}).get("name") for tc in out.get("tool_calls") or [] if isinstance(tc, dict)}
    args = [f for f in facts if f not in names]
    if not all(a in haystack for a in args):
        return None
    return (f"tool call only ({', '.join(sorted(n for n in names if n))}), {size} output tokens, "
            f"all {len(args)} argument value(s) copied verbatim from the input")


# ---- the analysis ------------------------------------------------------------------------------------
def decompose(run: Run, currency: str = "USD") -> DecompositionReport:
    """Subtasks, dependencies, minimal contexts, sub-agent costs, parallel waves and routable calls."""
    rep = DecompositionReport(run.run_id, currency=currency)
    calls = main_thread(run)
    if not calls:
        rep.reasoning.append("no model calls")
        return rep
    last = calls[-1].llm
    assert last is not None
    convo: list[Message] = list(last.messages) + ([last.output] if last.output else [])
    system = "\n".join(text_of(m.get("content")) for m in convo if m.get("role") in ("system", "developer"))
    sections = split_sections(system) if system else []
    bm = BM25(sections[1:]) if len(sections) > 1 else None

    # 1. units: the calls after each user request, tagged with the tools they used.
    units: list[dict[str, Any]] = []
    for s in calls:
        msgs = s.llm.messages  # type: ignore[union-attr]
        n_users = sum(1 for m in msgs if m.get("role") == "user")
        out = s.llm.output or {}  # type: ignore[union-attr]
        tools = {(tc.get("function") or {}).get("name") for tc in out.get("tool_calls") or [] if isinstance(tc, dict)}
        if not units or units[-1]["users"] != n_users:
            intent = next((text_of(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), "")
            units.append({"users": n_users, "intent": intent, "spans": [], "tools": set()})
        units[-1]["spans"].append(s)
        units[-1]["tools"] |= {t for t in tools if t}
    # 2. merge units into subtasks: same tool cluster, or a unit without tools (talk) joins the previous one.
    merged: list[dict[str, Any]] = []
    for u in units:
        if merged and (not u["tools"] or not merged[-1]["tools"] or (u["tools"] & merged[-1]["tools"])):
            merged[-1]["spans"] += u["spans"]
            merged[-1]["tools"] |= u["tools"]
            if not merged[-1]["intent"].strip():
                merged[-1]["intent"] = u["intent"]
        else:
            merged.append({**u, "spans": list(u["spans"]), "tools": set(u["tools"])})
    rep.reasoning.append(f"{len(calls)} calls of the main agent form {len(units)} user turn(s); turns using the "
                         f"same tools (or none) were merged into {len(merged)} subtask(s)")

    # 3. facts introduced by each subtask (tool results and user messages new in its calls' inputs).
    origin: dict[str, int] = {}
    seen_msgs = 0
    sys_facts = set(fact_tokens(system))
    result_tokens: dict[int, int] = {}
    for k, st in enumerate(merged):
        end_msgs = len(st["spans"][-1].llm.messages) + 1
        new_msgs = convo[seen_msgs:end_msgs]
        seen_msgs = max(seen_msgs, end_msgs)
        result_tokens[k] = sum(rough_tokens(message_text(m)) for m in new_msgs if m.get("role") in ("tool", "user"))
        for m in new_msgs:
            if m.get("role") in ("tool", "user"):
                for f in fact_tokens(message_text(m)):
                    if f not in sys_facts:
                        origin.setdefault(f, k)
    import networkx as nx  # optional at import time (see the TYPE_CHECKING note above)

    g = nx.DiGraph()
    for k, st in enumerate(merged):
        g.add_node(k, intent=st["intent"][:120], tools=sorted(st["tools"]))
    for k, st in enumerate(merged):
        used: dict[int, list[str]] = {}
        for s in st["spans"]:
            for f in output_facts(s.llm.output):
                j = origin.get(f)
                if j is not None and j < k:
                    used.setdefault(j, []).append(f)
        for j, facts in used.items():
            g.add_edge(j, k, facts=sorted(set(facts)))
    rep.graph = g
    rep.waves = [sorted(w) for w in nx.topological_generations(g)]

    # 4. minimal context and cost as a sub-agent.
    preamble = rough_tokens(sections[0]) if sections else 0
    for k, st in enumerate(merged):
        text = st["intent"] + "\n" + "\n".join(message_text(s.llm.output or {}) for s in st["spans"])
        needed: list[int] = []
        if bm is not None:
            sc = bm.scores(text)
            best = max(sc) if sc else 0
            needed = [i + 1 for i, v in enumerate(sc) if best > 0 and v >= 0.5 * best]
        sec_tokens = preamble + sum(rough_tokens(sections[i]) for i in needed)
        deps = sorted(j for j, _ in g.in_edges(k))
        dep_tokens = sum(min(result_tokens.get(j, 0), 400) for j in deps)
        sub = Subtask(k, st["intent"][:120], [s.span_id for s in st["spans"]], sorted(st["tools"]),
                      sections=[sections[i].strip().splitlines()[0][:60] for i in needed], uses_results_of=deps)
        cost = alone = Decimal(0)
        priced = True
        first_len = len(st["spans"][0].llm.messages)
        for s in st["spans"]:
            u = s.llm.usage
            inp = u.input_tokens if u.known("input_tokens") else rough_tokens(
                "\n".join(message_text(m) for m in s.llm.messages))
            own = sum(rough_tokens(message_text(m)) + 4 for m in s.llm.messages[max(0, first_len - 1):])
            ctx = min(inp, sec_tokens + dep_tokens + own)
            sub.input_tokens += inp
            sub.context_tokens += ctx
            when = call_start_ns(s)
            a = _price(s.llm.model, inp, u.output_tokens, currency, when)
            b = _price(s.llm.model, ctx, u.output_tokens, currency, when)
            if a is None or b is None:
                priced = False
            else:
                cost += a
                alone += b
        if priced:
            sub.cost, sub.cost_as_subagent = cost, alone
        rep.subtasks.append(sub)
    rep.reasoning.append(f"minimal context = system preamble ({preamble} tokens est.) + BM25-relevant sections + "
                         f"results of the subtasks it depends on (capped at 400 tokens each) + its own messages; "
                         f"costs at plain input/output prices, without prompt caching")

    # 5. mechanical calls -> a cheaper model of the same provider.
    for s in calls:
        llm = s.llm
        if llm is None:
            continue
        why = is_mechanical(s)
        cheap = cheaper_model(llm.model)
        if why and cheap:
            usage = llm.usage
            when = call_start_ns(s)
            a, b = (_price(llm.model, usage.input_tokens, usage.output_tokens, currency, when),
                    _price(cheap, usage.input_tokens, usage.output_tokens, currency, when))
            rep.routable.append(RouteCandidate(s.span_id, llm.model or "", cheap, why,
                                               None if a is None or b is None else a - b))
    rep.reasoning.append(f"{len(rep.routable)} of {len(calls)} calls are tool calls of at most "
                         f"{MECHANICAL_MAX_OUTPUT_TOKENS} output tokens whose arguments all appear verbatim in "
                         f"the input: a smaller model of the same provider can copy arguments")
    par = [w for w in rep.waves if len(w) > 1]
    rec = []
    if len(rep.subtasks) > 1:
        rec.append("split the agent into sub-agents, one per subtask, each given only its system-prompt "
                   "sections and the results it uses (e.g. a LangGraph node per subtask with its own prompt)")
    if par:
        rec.append(f"run independent subtasks {par[0]} concurrently (asyncio.gather / RunnableParallel)")
    if rep.routable:
        rec.append(f"route tool-argument-copying steps to {rep.routable[0].cheaper} "
                   f"(e.g. model = cheap_model if last message is a tool result and the next step is a lookup)")
    rep.recommendation = "; ".join(rec) or "no decomposition opportunity found"
    return rep


def predicts_lookup(messages: list[Message]) -> str | None:
    """The live routing rule, decided from a call's input only: the newest message is the user's and
    names an identifier no tool call has used yet, so the next step is almost always a lookup copying it
    (``get_user_details(user_id=...)``). Returns the reason, or ``None``."""
    if not messages or messages[-1].get("role") != "user":
        return None
    used: set[str] = set()
    for m in messages[:-1]:
        for tc in m.get("tool_calls") or []:
            if isinstance(tc, dict):
                used.update(fact_tokens(str((tc.get("function") or {}).get("arguments") or "")))
    fresh = [f for f in fact_tokens(text_of(messages[-1].get("content")), names=False)
             if ("_" in f or any(c.isdigit() for c in f) and any(c.isalpha() for c in f)) and f not in used]
    return f"the user's newest message names {fresh[0]!r}, not looked up yet" if fresh else None


@register
class TaskDecomposePass:
    """Routes the calls a live router would send to a cheaper model of the same provider.

    The decision reads only the call's input (:func:`predicts_lookup`), as a router in front of the model
    would. Whether the call really was mechanical (a short tool call copying its arguments, judged in
    hindsight by :func:`is_mechanical`, which may look at the output because it is the measure) goes into
    each ledger row, with the routing precision. Estimated: the smaller model's output is assumed to be the
    one recorded."""

    name = "task-decompose"
    description = "route predictable lookup steps to a cheaper model of the same provider (estimated)"
    evidence = "estimated"
    lossless = False  # subtasks go to other (smaller) models
    reads = frozenset({"messages", "usage"})
    changes = frozenset({"model"})
    lossless = False  # a smaller model may answer differently

    def __init__(self, **options: Any) -> None:
        self.options = options

    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]:
        new = run.copy()
        rows: list[LedgerRow] = []
        by_id = new.by_id()
        for s in main_thread(run):
            n = by_id[s.span_id]
            if s.llm is None or n.llm is None:
                continue
            why = predicts_lookup(s.llm.messages)
            cheap = cheaper_model(s.llm.model) if why else None
            if not cheap:
                continue
            old = n.llm.model
            n.llm.model = cheap
            u = n.llm.usage
            hindsight = is_mechanical(s)  # the measure, not the decision
            risk = ("low: in hindsight a mechanical tool call" if hindsight else
                    "high: in hindsight the step was not a mechanical lookup; a smaller model may differ")
            rows.append(LedgerRow(self.name, s.span_id, old, f"routed to {cheap}: {why}", "estimated",
                                  u.input_tokens, u.input_tokens, u.output_tokens, u.output_tokens,
                                  fidelity=1.0, risk=risk,
                                  details={"from": old, "to": cheap, "mechanical_in_hindsight": bool(hindsight)}))
        return new, rows
