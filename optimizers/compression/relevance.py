"""``relevance-prune``: drop system-prompt sections with low relevance to the conversation so far (BM25).

Long agent instructions are mostly sections a given conversation never needs (an airline policy's
"Cancel flight" rules while the user books a flight). At the first call that has a user request, the
system prompt's sections (markdown headings) are scored with BM25 against what the user and agent said
so far; the best ``keep_sections`` and any scoring at least ``keep_ratio`` of the best are kept, the
rest become a one-line stub that keeps the section's heading and its identifiers and numbers (amounts,
limits, codes), so those facts stay in the prompt. The preamble before the first heading is always kept.

Cache-aware: the pruned system prompt is fixed from then on; when a later turn makes a pruned section
relevant (it ranks among the best ``keep_sections`` for the newest messages), the section is *appended*
after those messages, never spliced back into the system prompt, so the cached prefix stays valid.
Every decision is replayed from the call's own input, so the same happens live and in simulation.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

from tokprof.optimizers.base import register
from tokprof.optimizers.billing import cache_rule
from tokprof.optimizers.compression.common import (
    Rewritten,
    call_points,
    message_text,
    rough_tokens,
    text_of,
    tool_call_text,
    with_text,
)
from tokprof.optimizers.compression.runner import MessagePass
from tokprof.optimizers.fidelity import fact_tokens
from tokprof.profiler.model import Message

_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset("""a an the and or of to in on for with at by from as is are be was were it this that
these those you your we our i me my they them their can could should would will may must not no if then
than so do does did has have had any all each every which who what when where how also only into about
there here please user agent""".split())
_HEADING = re.compile(r"^(#{1,6})\s+\S", re.M)

RESTORED_PREFIX = "[Instructions section restored because the conversation now needs it]"


def words(text: str) -> list[str]:
    """BM25 terms: lower-case words without stop words, crudely stemmed (plural/-ing/-ed)."""
    out = []
    for w in _WORD.findall(text.lower()):
        if w in _STOP or len(w) < 2:
            continue
        for suf in ("ing", "ed", "es", "s"):
            if len(w) > len(suf) + 3 and w.endswith(suf):
                w = w[: -len(suf)]
                break
        out.append(w)
    return out


class BM25:
    """Okapi BM25 over a fixed set of documents."""

    def __init__(self, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self.docs = [Counter(words(d)) for d in docs]
        self.lens = [sum(d.values()) for d in self.docs]
        self.avg = (sum(self.lens) / len(self.lens)) if self.lens else 0.0
        df: Counter[str] = Counter()
        for d in self.docs:
            df.update(d.keys())
        n = len(self.docs)
        self.idf = {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}

    def scores(self, query: str) -> list[float]:
        q = Counter(words(query))
        out = []
        for d, dl in zip(self.docs, self.lens):
            s = 0.0
            for t in q:
                tf = d.get(t, 0)
                if tf:
                    s += self.idf[t] * tf * (self.k1 + 1) / (tf + self.k1 * (1 - self.b + self.b * dl / (self.avg or 1)))
            out.append(s)
        return out


def split_sections(text: str) -> list[str]:
    """The system prompt cut at markdown headings: [preamble, section, section, ...]."""
    starts = [m.start() for m in _HEADING.finditer(text)]
    if not starts:
        return [text]
    # Only the shallowest heading level below the title splits (## under a # title).
    levels = [len(m.group(1)) for m in _HEADING.finditer(text)]
    top = min(levels)
    split_level = top + 1 if levels.count(top) == 1 and any(lv > top for lv in levels) else top
    cuts = [s for s, lv in zip(starts, levels) if lv == split_level]
    parts = []
    prev = 0
    for c in cuts:
        parts.append(text[prev:c])
        prev = c
    parts.append(text[prev:])
    return parts


def stub(section: str) -> str:
    """A pruned section's one-line stand-in: its heading and its identifiers and numbers."""
    heading = section.strip().splitlines()[0] if section.strip() else ""
    facts = " ".join(fact_tokens(section, names=False))
    kept = f" Values: {facts}." if facts else ""
    return f"{heading} [section omitted: not relevant so far; restored if needed.{kept}]\n\n"


def _conversation(messages: list[Message]) -> str:
    return "\n".join(message_text(m) for m in messages if m.get("role") in ("user", "assistant"))


def _requests(messages: list[Message]) -> str:
    """What was asked: user messages and the names of the tools the agent called."""
    parts = [text_of(m.get("content")) for m in messages if m.get("role") == "user"]
    parts += [tool_call_text(m).replace("_", " ") for m in messages if m.get("tool_calls")]
    return "\n".join(parts)


def prune_plan(messages: list[Message], keep_sections: int, keep_ratio: float
               ) -> tuple[int, list[str], set[int], list[tuple[int, int]]]:
    """(system message index or -1, its sections, pruned section indices, [(insert before index, section)])
    replayed over every call point of this input."""
    sys_i = next((i for i, m in enumerate(messages) if m.get("role") in ("system", "developer")), -1)
    if sys_i < 0 or not isinstance(messages[sys_i].get("content"), str):
        return -1, [], set(), []
    sections = split_sections(text_of(messages[sys_i].get("content")))
    if len(sections) <= keep_sections + 1:
        return sys_i, sections, set(), []
    bm = BM25(sections[1:])
    pruned: set[int] = set()
    restores: list[tuple[int, int]] = []
    decided = False
    prev = 0
    for c in call_points(messages):
        if not decided:
            if not any(m.get("role") == "user" and text_of(m.get("content")).strip() for m in messages[:c]):
                continue
            sc = bm.scores(_conversation(messages[:c]))
            best = max(sc)
            ranked = sorted(range(len(sc)), key=lambda i: -sc[i])
            keep = set(ranked[:keep_sections]) | {i for i, s in enumerate(sc) if best > 0 and s >= keep_ratio * best}
            pruned = {i + 1 for i in range(len(sc)) if i not in keep}
            decided, prev = True, c
            continue
        new_text = _requests(messages[prev:c])
        prev = c
        if not pruned or not new_text.strip():
            continue
        # the single best section for what the user (and the agent's tool calls) asked since the last call
        sc = bm.scores(new_text)
        top = max(range(len(sc)), key=lambda i: sc[i])
        if sc[top] > 0 and top + 1 in pruned:
            pruned.discard(top + 1)
            restores.append((c, top + 1))
    return sys_i, sections, pruned | {s for _, s in restores}, restores


def _still_cacheable(full: str, pruned: str, model: str | None) -> bool:
    """False when pruning would take the system prompt below the provider's minimum cacheable prefix
    while the full one was above it: every call would then pay full price for a prefix it used to read
    from the cache until the history grows past the minimum."""
    try:
        rule = cache_rule(None, model)
    except Exception:
        return True
    if not rule.caches:
        return True

    return not (rough_tokens(full) >= rule.min_tokens > rough_tokens(pruned))


@register
class RelevancePrunePass(MessagePass):
    name = "relevance-prune"
    description = "system-prompt sections irrelevant to the conversation so far pruned (BM25), restored on need"
    risk = "medium: an instruction section the agent needs may be missing until a turn mentions it"
    defaults = {"keep_sections": 2, "keep_ratio": 0.5, "cache_aware": True}

    def compress(self, messages: list[Message], model: str | None = None) -> Rewritten:
        sys_i, sections, stubbed, restores = prune_plan(messages, self.options["keep_sections"],
                                                        self.options["keep_ratio"])
        if sys_i < 0 or not stubbed:
            return Rewritten(messages)
        new_sys = "".join(stub(s) if i in stubbed else s for i, s in enumerate(sections))
        if self.options["cache_aware"] and not _still_cacheable(text_of(messages[sys_i].get("content")), new_sys, model):
            return Rewritten(messages)
        out = list(messages)
        out[sys_i] = with_text(messages[sys_i], new_sys)
        for pos, sec in sorted(restores, reverse=True):
            out.insert(pos, {"role": "user", "content": f"{RESTORED_PREFIX}\n{sections[sec].strip()}"})
        return Rewritten(out, f"pruned {len(stubbed) - len(restores)} instruction section(s)"
                         + (f", restored {len(restores)}" if restores else ""),
                         {"sections_pruned": len(stubbed) - len(restores), "sections_restored": len(restores)})
