"""``history-budget``: keep the prompt under a token budget by summarising the oldest turns.

When a call's prompt would exceed ``budget_tokens``, the oldest turns (after the system prompt, before
the last ``keep_turns`` turns) are replaced by one summary message, down to ``low_water`` x budget. It is
done in blocks: between two compactions the prefix (system prompt + summary + kept turns) is unchanged,
so the provider's prompt cache keeps hitting; a compaction re-writes the suffix once, so with
``cache_aware`` a compaction is only done when it pays for itself at the provider's cache prices.

The summary. Live, a model the user configures writes it (``summarizer``: a langchain-core chat model
or any ``callable(messages) -> str``); in simulation no model is called and the summary is a stand-in
whose *size* is an explicit estimate (``summary_ratio`` x the summarised tokens), labelled
``estimated``. Either way the summary ends with the summarised turns' fact-like tokens (ids, numbers,
names, codes) copied verbatim, so what the agent may need to cite survives the compaction.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

from tokprof.optimizers.base import register
from tokprof.optimizers.compression.common import (
    Rewritten,
    call_points,
    message_text,
    rough_tokens,
)
from tokprof.optimizers.compression.mask import cache_multipliers
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.optimizers.fidelity import fact_tokens
from tokprof.profiler.model import Message

SUMMARY_PREFIX = "[Summary of the conversation before this point"

Summarizer = Callable[[list[Message]], str]


def _head_len(messages: list[Message]) -> int:
    n = 0
    while n < len(messages) and messages[n].get("role") in ("system", "developer"):
        n += 1
    return n


def _boundaries(messages: list[Message], lo: int, hi: int) -> list[int]:
    """Indices in [lo, hi) where the history may be cut: a user message, or an assistant message
    (never a tool result, which must follow the assistant message that asked for it)."""
    return [i for i in range(lo, hi) if messages[i].get("role") in ("user", "assistant")]


def facts_line(messages: list[Message], known: set[str]) -> str:
    seen: dict[str, None] = {}
    for m in messages:
        for f in fact_tokens(message_text(m)):
            if f not in known:
                seen[f] = None
    return " ".join(seen)


def simulated_summary(dropped: list[Message], known: set[str]) -> str:
    """The simulation's stand-in summary: what it covers, then the verbatim facts."""
    tools = sorted({(tc.get("function") or {}).get("name", "") for m in dropped for tc in (m.get("tool_calls") or [])
                    if isinstance(tc, dict)} - {""})
    users = sum(1 for m in dropped if m.get("role") == "user")
    what = f"{len(dropped)} messages ({users} from the user"
    what += f"; tools used: {', '.join(tools)})" if tools else ")"
    facts = facts_line(dropped, known)
    return f"{SUMMARY_PREFIX}: {what}. Facts stated: {facts}]" if facts else f"{SUMMARY_PREFIX}: {what}]"


def plan_compactions(messages: list[Message], budget: int, low_water: float, keep_turns: int,
                     model: str | None, cache_aware: bool, summary_ratio: float, horizon: float = 1.0) -> int:
    """How far (exclusive index) the history of this call's input is summarised: replays the block
    decisions of every earlier call of the conversation. 0: nothing summarised."""
    head = _head_len(messages)
    read, write = cache_multipliers(model) if cache_aware else (1.0, 1.0)
    sizes = [rough_tokens(message_text(m)) + 4 for m in messages]
    pre = [0]
    for n in sizes:
        pre.append(pre[-1] + n)

    def span(a: int, b: int) -> int:  # tokens of messages[a:b]
        return pre[b] - pre[a]

    head_size = pre[head]
    user_starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    step_starts = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    upto = 0  # messages[head:upto] are summarised
    summary_size = summarised = 0
    ratio = max(summary_ratio, 0.25)  # planning size: the verbatim facts make summaries at least this big
    for k, c in enumerate(call_points(messages), start=1):
        start = max(upto, head)
        if head_size + summary_size + span(start, c) <= budget:
            continue
        # turns are user requests; an autonomous agent (one request) has model steps instead
        turn_starts = user_starts if sum(1 for i in user_starts if i < c) > 1 else step_starts
        users = [i for i in turn_starts if start <= i < c]
        if keep_turns and len(users) < keep_turns:
            continue
        limit = users[-keep_turns] if keep_turns else c - 1
        target = budget * low_water
        best = None
        for b in _boundaries(messages, start + 1, min(limit, c - 1) + 1):
            new_summary = int((summarised + span(start, b)) * ratio) + 20
            best = (b, new_summary)
            if head_size + new_summary + span(b, c) <= target:
                break
        if best is None or best[0] <= start:
            continue
        b, new_summary = best
        if write > read:
            saved = span(start, b) - (new_summary - summary_size)
            suffix = summary_size + span(start, c)
            if saved * read * k * horizon < suffix * (write - read):
                continue
        summarised += span(start, b)
        upto, summary_size = b, new_summary
    return upto


@register
class HistoryBudgetPass(MessagePass):
    name = "history-budget"
    description = "keep the prompt under a token budget by summarising the oldest turns (in blocks)"
    evidence = "estimated"
    risk = ("medium: narrative of old turns reduced to a summary (simulated: size estimated, facts kept "
            "verbatim)")
    defaults: ClassVar[dict[str, Any]] = {"budget_tokens": 3000, "low_water": 0.6, "keep_turns": 2, "cache_aware": True,
                                "summary_ratio": 0.1, "summarizer": None, "horizon": 0.5}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        o = self.options
        upto = plan_compactions(messages, o["budget_tokens"], o["low_water"], o["keep_turns"], model,
                                o["cache_aware"], o["summary_ratio"], o["horizon"])
        if upto == 0:
            return Rewritten(messages)
        head = _head_len(messages)
        dropped = messages[head:upto]

        known = set()
        for m in messages[:head]:
            known.update(fact_tokens(message_text(m)))
        summarizer: Summarizer | None = o["summarizer"]
        src: Literal["estimated"] | None
        if summarizer is not None:
            text = f"{SUMMARY_PREFIX}] {summarizer(dropped)}\nFacts stated: {facts_line(dropped, known)}"
            extra, src = 0, None
        else:
            text = simulated_summary(dropped, known)
            dropped_tokens = sum(rough_tokens(message_text(m)) + 4 for m in dropped)
            extra = max(0, int(dropped_tokens * o["summary_ratio"]) - rough_tokens(text))
            src = "estimated"
        summary: Message = {"role": "user", "content": text}
        out = [*messages[:head], summary, *messages[upto:]]
        return Rewritten(out, f"summarised {len(dropped)} oldest message(s) into one",
                         {"summarised": len(dropped), "summary_estimated_extra_tokens": extra},
                         extra_tokens=extra, extra_source=src)
