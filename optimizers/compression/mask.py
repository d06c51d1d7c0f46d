"""``observation-mask``: tool outputs older than the last K turns become a short placeholder.

The placeholder keeps the output's identifiers (ids, keys, codes, amounts, dates, names: every
fact-like token, see :func:`optimizers.fidelity.fact_tokens`), says what was elided and how to fetch it
again (the same tool call). Masking is done in blocks: old outputs are masked only once their total size
crosses ``threshold_tokens``, and a masked output stays masked, so between two compactions every call
re-sends an identical prefix and the provider's prompt cache keeps hitting. (Masking "everything older
than K turns" on every call would change the prefix on every call and void the cache.)

The decision is replayed from the call's own message list (see ``common.call_points``), so it is the
same live and in simulation and never depends on the future of the run.
"""

from __future__ import annotations

from optimizers.base import register
from optimizers.compression.common import (Rewritten, call_points, rough_tokens, text_of,
                                           tool_names_by_call_id, with_text)
from optimizers.compression.runner import MessagePass
from profiler.model import Message

PLACEHOLDER_PREFIX = "[elided tool output"


def _turn_starts(messages: list[Message], unit: str) -> list[int]:
    role = "user" if unit == "user" else "assistant"
    starts = [i for i, m in enumerate(messages) if m.get("role") == role]
    if unit == "user" and len(starts) <= 1:
        # A conversation without user turns (an autonomous agent): count model steps instead.
        starts = [i for i, m in enumerate(messages) if m.get("role") == "assistant"]
    return starts


def placeholder(m: Message, calls: dict[str, tuple[str, str]]) -> str:
    """The short stand-in of a tool output: its identifiers and how to get it back."""
    from optimizers.fidelity import fact_tokens

    text = text_of(m.get("content"))
    name, args = calls.get(str(m.get("tool_call_id") or ""), (str(m.get("name") or "tool"), ""))
    values = " ".join(fact_tokens(text))
    how = f"call {name}({args}) again" if args else f"call {name} again"
    kept = f" Values kept: {values}." if values else ""
    return f"{PLACEHOLDER_PREFIX} of {name}, ~{rough_tokens(text):,} tokens.{kept} To see it in full, {how}.]"


def masked_indices(messages: list[Message], keep_turns: int, threshold_tokens: int, min_tokens: int,
                   unit: str = "user") -> set[int]:
    """Which tool messages are masked in this call's input, replaying the block decisions of every
    earlier call of the conversation (each ended where an assistant message begins)."""
    masked: set[int] = set()
    sizes = {i: rough_tokens(text_of(m.get("content"))) for i, m in enumerate(messages)
             if m.get("role") in ("tool", "function") and not text_of(m.get("content")).startswith(PLACEHOLDER_PREFIX)}
    for c in call_points(messages):
        starts = [s for s in _turn_starts(messages[:c], unit)]
        if len(starts) < keep_turns:
            continue
        cutoff = starts[-keep_turns] if keep_turns > 0 else c
        cands = [i for i, n in sizes.items() if i < cutoff and i not in masked and n >= min_tokens]
        if cands and sum(sizes[i] for i in cands) >= threshold_tokens:
            masked.update(cands)
    return masked


@register
class ObservationMaskPass(MessagePass):
    name = "observation-mask"
    description = "tool outputs older than the last K turns replaced by a placeholder keeping their ids"
    risk = "low: values kept without their field names; the agent must call the tool again for structure"
    defaults = {"keep_turns": 2, "threshold_tokens": 1500, "min_tokens": 40, "turn_unit": "user"}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        o = self.options
        idx = masked_indices(messages, o["keep_turns"], o["threshold_tokens"], o["min_tokens"], o["turn_unit"])
        if not idx:
            return Rewritten(messages)
        calls = tool_names_by_call_id(messages)
        out = list(messages)
        n = 0
        for i in sorted(idx):
            ph = placeholder(messages[i], calls)
            if len(ph) < len(text_of(messages[i].get("content"))):  # never "mask" into something longer
                out[i] = with_text(messages[i], ph)
                n += 1
        return Rewritten(out, f"masked {n} old tool output(s)", {"masked": n})
