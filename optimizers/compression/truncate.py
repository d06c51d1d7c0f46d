"""``truncate-outputs`` (lossy): tool outputs longer than ``max_tokens`` cut to their head and tail.

What falls in the middle is gone: an order, a rule, a row the agent needs later may be in it (the demo
shows one). The cut never falls inside an identifier (cuts fall on whitespace or JSON punctuation) and a
marker says how much was elided and how to get it back. A pure function of each tool message, so the
rewritten history stays identical from call to call (the prompt prefix stays cacheable).
"""

from __future__ import annotations

from tokprof.optimizers.base import register
from tokprof.optimizers.compression.common import Rewritten, rough_tokens, text_of, with_text
from tokprof.optimizers.compression.minify import head_tail
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.profiler.model import Message


def truncate_message(m: Message, max_tokens: int = 3000) -> Message:
    """A tool message cut to about ``max_tokens`` (other messages and short outputs unchanged)."""
    if m.get("role") not in ("tool", "function") or not isinstance(m.get("content"), str):
        return m
    text = text_of(m.get("content"))
    new = head_tail(text, max_tokens)
    return m if new == text else with_text(m, new)


@register
class TruncateOutputsPass(MessagePass):
    name = "truncate-outputs"
    description = "tool outputs over max_tokens cut to head + tail (lossy: the middle is gone)"
    risk = "medium: the middle of long outputs is removed"
    lossless = False
    defaults = {"max_tokens": 3000}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        out = [truncate_message(m, self.options["max_tokens"]) for m in messages]
        n = sum(1 for a, b in zip(messages, out) if a is not b)
        saved = sum(rough_tokens(text_of(a.get("content"))) - rough_tokens(text_of(b.get("content")))
                    for a, b in zip(messages, out) if a is not b)
        return Rewritten(out, f"cut {n} long tool output(s) to head+tail (~{saved:,} tokens)", {"truncated": n})
