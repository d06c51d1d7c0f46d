"""``observation-mask``: tool outputs older than the last K turns become a short placeholder.

The placeholder keeps the output's identifiers (ids, keys, codes, amounts, dates, names: every
fact-like token, see :func:`tokprof.optimizers.fidelity.fact_tokens`), says what was elided and how to fetch it
again (the same tool call). Masking is done in blocks: old outputs are masked only once their total size
crosses ``threshold_tokens``, and a masked output stays masked, so between two compactions every call
re-sends an identical prefix and the provider's prompt cache keeps hitting. (Masking "everything older
than K turns" on every call would change the prefix on every call and void the cache.)

The decision is replayed from the call's own message list (see ``common.call_points``), so it is the
same live and in simulation and never depends on the future of the run.
"""

from __future__ import annotations

import re

from tokprof.optimizers.base import register
from tokprof.optimizers.billing import cache_rule
from tokprof.optimizers.compression.common import (
    Rewritten,
    call_points,
    message_text,
    rough_tokens,
    text_of,
    tool_names_by_call_id,
    with_text,
)
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.optimizers.fidelity import fact_tokens
from tokprof.profiler.model import Message

PLACEHOLDER_PREFIX = "[elided tool output"
_DEDUPE_REF = re.compile(r"^\[identical to the .* at message #(\d+) above; not repeated\]$", re.S)
_TOOL_CACHE_REF = re.compile(r"^\[same result as the earlier \S+ call (\S+)\]$")


def _turn_starts(messages: list[Message], unit: str) -> list[int]:
    role = "user" if unit == "user" else "assistant"
    starts = [i for i, m in enumerate(messages) if m.get("role") == role]
    if unit == "user" and len(starts) <= 1:
        # A conversation without user turns (an autonomous agent): count model steps instead.
        starts = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    return starts


def placeholder(m: Message, calls: dict[str, tuple[str, str]], known: set[str] | frozenset[str] = frozenset()) -> str:
    """The short stand-in of a tool output: its identifiers (those not already in ``known``, the facts
    the rest of the prompt states anyway) and how to get it back."""
    text = text_of(m.get("content"))
    name, args = calls.get(str(m.get("tool_call_id") or ""), (str(m.get("name") or "tool"), ""))
    values = " ".join(f for f in fact_tokens(text) if f not in known)
    how = f"call {name}({args}) again" if args else f"call {name} again"
    kept = f" Values kept: {values}." if values else ""
    return f"{PLACEHOLDER_PREFIX} of {name}, ~{rough_tokens(text):,} tokens.{kept} To see it in full, {how}.]"


def _context_facts(messages: list[Message]) -> set[str]:
    """Facts stated by the messages a mask never touches (system, user, assistant text and tool calls)."""
    out: set[str] = set()
    for m in messages:
        if m.get("role") not in ("tool", "function"):
            out.update(fact_tokens(message_text(m)))
    return out


def cache_multipliers(model: str | None) -> tuple[float, float]:
    """(cache read, cache write) price multipliers of ``model``'s provider; (1, 1) when it has no cache."""
    try:
        rule = cache_rule(None, model)
        if not rule.caches:
            return 1.0, 1.0
        return float(rule.read_multiplier), float(rule.write_multiplier)
    except Exception:  # no billing rules: assume an automatic cache at half price
        return 0.5, 1.0


def masked_indices(messages: list[Message], keep_turns: int, threshold_tokens: int, min_tokens: int,
                   unit: str = "user", model: str | None = None, cache_aware: bool = True,
                   horizon: float = 1.0) -> dict[int, int]:
    """Which tool messages are masked in this call's input (index -> the call point that masked it),
    replaying the block decisions of every earlier call of the conversation (each ended where an
    assistant message begins).

    A block is masked when its old outputs total ``threshold_tokens``; with ``cache_aware``, also only
    when it pays for itself under the provider's caching prices: the masked tokens saved on each later
    call (assumed: ``horizon`` x as many more calls as so far, the only estimate the past allows) must outweigh
    re-writing the prompt suffix after the first masked output once."""
    masked: dict[int, int] = {}
    sizes = {i: rough_tokens(text_of(m.get("content"))) for i, m in enumerate(messages)
             if m.get("role") in ("tool", "function") and not text_of(m.get("content")).startswith(PLACEHOLDER_PREFIX)}
    read, write = cache_multipliers(model) if cache_aware else (1.0, 1.0)
    pre = [0]
    for m in messages:
        pre.append(pre[-1] + rough_tokens(text_of(m.get("content"))))
    user_starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    step_starts = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    for k, c in enumerate(call_points(messages), start=1):
        # the same rule as _turn_starts, on this call point's prefix (what that call saw)
        users = [s for s in user_starts if s < c]
        starts = users if unit == "user" and len(users) > 1 else [s for s in step_starts if s < c]
        if len(starts) < keep_turns:
            continue
        cutoff = starts[-keep_turns] if keep_turns > 0 else c
        cands = [i for i, n in sizes.items() if i < cutoff and i not in masked and n >= min_tokens]
        if not cands:
            continue
        saved = sum(sizes[i] for i in cands) * 0.7  # a placeholder keeps about a third
        if saved < threshold_tokens:
            continue
        if write > read:
            suffix = pre[c] - pre[min(cands)]
            if saved * read * k * horizon < suffix * (write - read):
                continue
        for i in cands:
            masked[i] = c
    return masked


@register
class ObservationMaskPass(MessagePass):
    name = "observation-mask"
    description = "tool outputs older than the last K turns replaced by a placeholder keeping their ids"
    risk = "low: values kept without their field names; the agent must call the tool again for structure"
    defaults = {"keep_turns": 1, "threshold_tokens": 300, "min_tokens": 40, "turn_unit": "step",
                "cache_aware": True, "horizon": 0.5}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        o = self.options
        idx = masked_indices(messages, o["keep_turns"], o["threshold_tokens"], o["min_tokens"], o["turn_unit"],
                             model, o["cache_aware"], o["horizon"])
        if not idx:
            return Rewritten(messages)
        calls = tool_names_by_call_id(messages)
        out = list(messages)
        n = 0

        known: dict[int, set[str]] = {}
        # Facts of earlier tool outputs are in the prompt already: in full, or in their own placeholder
        # (which keeps what was not stated before it), so no placeholder repeats them.
        earlier_tools: set[str] = set()
        last = 0
        for i, c in sorted(idx.items()):
            if c not in known:
                known[c] = _context_facts(messages[:c])
            for m in messages[last:i]:
                if m.get("role") in ("tool", "function"):
                    earlier_tools.update(fact_tokens(text_of(m.get("content"))))
            last = i
            ph = placeholder(messages[i], calls, known[c] | earlier_tools)
            if len(ph) < len(text_of(messages[i].get("content"))):  # never "mask" into something longer
                out[i] = with_text(messages[i], ph)
                n += 1
        # A later copy that ``dedupe`` (run before this pass) replaced by a reference to an output masked
        # here would leave the full content nowhere: put the content back in the copy (it is recent).
        # (The same for ``tool-cache``'s "[same result as the earlier <tool> call <id>]".)
        restored = 0
        by_call_id = {str(m.get("tool_call_id")): i for i, m in enumerate(messages) if m.get("tool_call_id")}
        for j, m in enumerate(messages):
            if m.get("role") not in ("tool", "function") or j in idx:
                continue
            text = text_of(m.get("content"))
            ref = _DEDUPE_REF.match(text)
            tc = _TOOL_CACHE_REF.match(text) if ref is None else None
            target = int(ref.group(1)) if ref else (by_call_id.get(tc.group(1)) if tc else None)
            if target is not None and target in idx and out[target] is not messages[target]:
                out[j] = with_text(m, text_of(messages[target].get("content")))
                restored += 1
        return Rewritten(out, f"masked {n} old tool output(s)", {"masked": n, "dedupe_copies_restored": restored})
