"""``dedupe``: content that appears more than once in a call's input is kept once.

The same tool result fetched twice, the same document pasted again: the *first* copy is kept (it is in
the cached prefix already) and each later exact copy becomes a one-line reference to it. Equality is
exact (byte for byte after trimming), so two different results are never merged, however similar.
Long paragraphs repeated inside tool or user messages are deduplicated the same way.
"""

from __future__ import annotations

import re

from tokprof.optimizers.base import register
from tokprof.optimizers.compression.common import (Rewritten, digest, text_of, tool_names_by_call_id,
                                           with_text)
from tokprof.optimizers.compression.mask import PLACEHOLDER_PREFIX
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.profiler.model import Message

_PARA_SPLIT = re.compile(r"(\n\s*\n)")


def _label(m: Message, calls: dict[str, tuple[str, str]]) -> str:
    if m.get("role") in ("tool", "function"):
        name, args = calls.get(str(m.get("tool_call_id") or ""), (str(m.get("name") or "tool"), ""))
        return f"{name}({args}) result" if args else f"{name} result"
    return f"{m.get('role')} message"


def dedupe_messages(messages: list[Message], min_chars: int = 200) -> tuple[list[Message], int, int]:
    """(messages with later exact copies replaced by references, whole copies removed, paragraphs removed)."""
    calls = tool_names_by_call_id(messages)
    seen_msg: dict[str, int] = {}
    seen_para: dict[str, int] = {}
    out: list[Message] = []
    whole = paras = 0
    for i, m in enumerate(messages):
        role = m.get("role")
        text = text_of(m.get("content"))
        if (role in ("tool", "function", "user") and isinstance(m.get("content"), str)
                and len(text.strip()) >= min_chars and not text.startswith(PLACEHOLDER_PREFIX)):
            key = digest(text.strip())
            if key in seen_msg:
                j = seen_msg[key]
                out.append(with_text(m, f"[identical to the {_label(messages[j], calls)} at message #{j} "
                                        f"above; not repeated]"))
                whole += 1
                continue
            seen_msg[key] = i
            # Paragraph-level: long blocks already present earlier in the input.
            parts = _PARA_SPLIT.split(text)
            if len(parts) > 1:
                changed = False
                for k in range(0, len(parts), 2):
                    p = parts[k].strip()
                    if len(p) < min_chars:
                        continue
                    pk = digest(p)
                    if pk in seen_para and seen_para[pk] != i:
                        parts[k] = f"[paragraph repeated from message #{seen_para[pk]} above]"
                        changed = True
                        paras += 1
                    else:
                        seen_para.setdefault(pk, i)
                if changed:
                    out.append(with_text(m, "".join(parts)))
                    continue
        out.append(m)
    return out, whole, paras


@register
class DedupePass(MessagePass):
    name = "dedupe"
    description = "content repeated in a call's input (same tool result, same document) kept once"
    risk = "none: only exact copies are replaced, by a reference to the copy that is kept"
    defaults = {"min_chars": 200}
    lossless = True  # exact copies become a pointer to the copy that is kept

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        out, whole, paras = dedupe_messages(messages, self.options["min_chars"])
        return Rewritten(out, f"kept once: {whole} repeated message(s), {paras} repeated paragraph(s)",
                         {"messages_deduped": whole, "paragraphs_deduped": paras})
