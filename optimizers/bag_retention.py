"""Bag-of-tokens retention (the *old* fidelity measure, kept under a name that says what it is).

It only asks whether a fact token is still *somewhere* in the rewritten input, so a placeholder that keeps
the ids, a summary that keeps the numbers, or a prompt replaced by a bag of its fact tokens all score 1.00
(issue #16.3). The pipeline reports :mod:`tokprof.optimizers.fidelity` (structure-aware) instead; this
module keeps the shared helpers (fact tokens, tool-call argument values, system-prompt rules).

Original description:

For each model call of a recorded run, the facts the model relied on are observable in hindsight: the
identifiers, numbers, names, codes, quoted strings and tool-call arguments that appear in the call's
output (text or tool-call arguments) *and* occur in its input. A rewrite of the input is faithful for
that call when every such fact is still present in the rewritten input. The same is done for the
system prompt's rules: a rule is *relied on* when the output repeats a run of five or more of its words
(the only trace of rule use a transcript shows), and it is retained when its text is still in the input.

Only this measure looks ahead (at the output); passes never do.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

from tokprof.optimizers.compression.common import message_text, text_of
from tokprof.profiler.pairing import pair_calls
from tokprof.profiler.model import LLMCall, Message, Run, Span

# A candidate fact token: letters/digits joined by _ . @ - : / (ids, emails, dates, times, amounts).
_TOKEN = re.compile(r"[A-Za-z0-9$][A-Za-z0-9_.@\-:/]*[A-Za-z0-9]|\d")
QUOTED = re.compile(r"\"([^\"\n]{2,80})\"|“([^”\n]{2,80})”")
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_START = re.compile(r"(^|[.!?:]\s+|\n\s*[-*\d.)\s]*)$")

# Capitalised words that are ordinary English at the start of a clause, not names.
_COMMON = frozenset("""
A An The I I'm I'll I've I'd It It's Its This That These Those There Here Hi Hello Hey Thanks Thank
Yes No Ok Okay Please Sure Great Sorry Also And But Or So If When What Which Who How Why Where Your You
We Our Let Could Would Should Can Will May Might Do Does Did Is Are Was Were Be Been Have Has Had
Dear Unfortunately However Note Now Then First Second Third Next Finally Before After For From To In
On At By With Without Of As All Any Each Every Some My Me Mr Mrs Ms Dr Total Date Name Email Status
""".split())

RULE_SHINGLE = 5
"""Words a rule and the output must share in a row for the rule to count as relied on."""


def _is_fact(tok: str) -> bool:
    digits = sum(c.isdigit() for c in tok)
    if digits >= 2:
        return True  # numbers, amounts, dates, times, ids with digits
    if "_" in tok or "@" in tok:
        return True  # identifiers, keys, emails
    if len(tok) >= 2 and tok.isupper() and tok.isalnum():
        return True  # codes: LAX, XEWRD9
    if digits == 1 and any(c.isalpha() for c in tok):
        return True  # short codes such as 4A
    return False


def fact_tokens(text: str, *, names: bool = True) -> list[str]:
    """Fact-like tokens of ``text`` in order of first appearance (identifiers, numbers, codes, names).

    ``names``: also take capitalised words that do not start a clause and are not common words."""
    return list(_fact_tokens(text, names))


@lru_cache(maxsize=20000)
def _fact_tokens(text: str, names: bool) -> tuple[str, ...]:
    # Memoised: an agent re-sends the same messages on every call.
    out: dict[str, None] = {}
    for m in _TOKEN.finditer(text):
        tok = m.group(0).rstrip(".:-/")
        if not tok:
            continue
        if tok.startswith("$"):
            tok = tok[1:]
            if not tok:
                continue
        if _is_fact(tok):
            out[tok] = None
        elif names and tok[0].isupper() and tok[1:].islower() and len(tok) >= 2 and tok not in _COMMON:
            if not _SENTENCE_START.search(text[max(0, m.start() - 6):m.start()]):
                out[tok] = None
    return tuple(out)


def arg_values(args: Any) -> Iterable[str]:
    """Scalar leaves of tool-call arguments, as text."""
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except (ValueError, TypeError):
            yield args
            return
    if isinstance(args, dict):
        for v in args.values():
            yield from arg_values(v)
    elif isinstance(args, list):
        for v in args:
            yield from arg_values(v)
    elif isinstance(args, bool) or args is None:
        return
    else:
        yield str(args)


def output_facts(output: Message | None) -> list[str]:
    """Candidate facts a call's output relied on: fact tokens and quoted strings of its text, and every
    tool-call argument value (an argument is a fact however plain it looks)."""
    if not output:
        return []
    text = text_of(output.get("content"))
    facts: dict[str, None] = dict.fromkeys(fact_tokens(text))
    for m in QUOTED.finditer(text):
        facts[(m.group(1) or m.group(2)).strip()] = None
    for tc in output.get("tool_calls") or []:
        if not isinstance(tc, dict):
            continue
        fn = tc.get("function") or tc
        for v in arg_values(fn.get("arguments")):
            v = v.strip()
            if v and len(v) <= 200:
                facts[v] = None
                for t in fact_tokens(v):
                    facts[t] = None
    return [f for f in facts if f]


@lru_cache(maxsize=20000)
def _text_tokens(text: str) -> frozenset[str]:
    out = set()
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        out.add(tok)
        out.add(tok.rstrip(".:-/").lstrip("$"))
        if "." in tok or "/" in tok:
            # dotted paths ("prices.basic_economy") contain their named parts, but "1.5" does not contain "5"
            out.update(p for p in re.split(r"[./]", tok) if any(c.isalpha() for c in p))
    return frozenset(out)


class _Haystack:
    """An input's text, searchable for facts by token and by substring (texts memoised per message)."""

    def __init__(self, messages: list[Message]) -> None:
        self.texts = [message_text(m) for m in messages]
        self.tokens: set[str] = set()
        for t in self.texts:
            self.tokens |= _text_tokens(t)
        self._text: str | None = None
        self._norm: str | None = None

    @property
    def text(self) -> str:
        if self._text is None:
            self._text = "\n".join(self.texts)
        return self._text

    @property
    def norm(self) -> str:
        if self._norm is None:
            self._norm = " ".join(self.text.split())
        return self._norm

    def has(self, fact: str) -> bool:
        if fact in self.tokens:
            return True
        if _TOKEN.fullmatch(fact):
            return False  # single-token facts must match a whole token ("92" is not in "1992")
        return fact in self.text or " ".join(fact.split()) in self.norm


def system_rules(messages: list[Message]) -> list[str]:
    """The rules of the system prompt(s): its bullet points and paragraphs, whitespace-normalised."""
    rules: list[str] = []
    for m in messages:
        if m.get("role") not in ("system", "developer"):
            continue
        for block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*•]|\d+[.)])\s)", text_of(m.get("content"))):
            block = " ".join(block.split())
            if len(block) >= 40:
                rules.append(block)
    return rules


def shingles(text: str, n: int = RULE_SHINGLE) -> set[tuple[str, ...]]:
    w = _WORD.findall(text.lower())
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


@dataclass
class BagRetention:
    """Reference retention of one call's rewritten input."""

    span_id: str
    facts: list[str] = field(default_factory=list)
    """Facts of the output that occurred in the original input (the ones relied on)."""
    lost: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    """System-prompt rules the output traceably relied on."""
    rules_lost: list[str] = field(default_factory=list)

    @property
    def referenced(self) -> int:
        return len(self.facts) + len(self.rules)

    @property
    def retained(self) -> int:
        return self.referenced - len(self.lost) - len(self.rules_lost)

    @property
    def share(self) -> float | None:
        """Share of relied-on facts and rules still present, 0..1; ``None`` when nothing was relied on."""
        return None if self.referenced == 0 else self.retained / self.referenced

    def to_dict(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "share": self.share, "facts": len(self.facts), "lost": self.lost,
                "rules": len(self.rules), "rules_lost": [r[:80] for r in self.rules_lost]}


def _call(x: Span | LLMCall) -> LLMCall | None:
    return x.llm if isinstance(x, Span) else x


def call_bag_retention(original_span: Span | LLMCall, new_span: Span | LLMCall) -> BagRetention:
    """Which facts and rules the original call relied on, and which the rewritten input lost."""
    o, n = _call(original_span), _call(new_span)
    sid = original_span.span_id if isinstance(original_span, Span) else ""
    r = BagRetention(sid)
    if o is None or n is None:
        return r
    before = _Haystack(o.messages)
    after = before if n.messages is o.messages else _Haystack(n.messages)
    for f in output_facts(o.output):
        if before.has(f):
            r.facts.append(f)
            if after is not before and not after.has(f):
                r.lost.append(f)
    out_text = text_of((o.output or {}).get("content"))
    if out_text:
        out_sh = shingles(out_text)
        if out_sh:
            for rule in system_rules(o.messages):
                if shingles(rule) & out_sh:
                    r.rules.append(rule)
                    if after is not before and rule not in after.norm:
                        r.rules_lost.append(rule)
    return r


def paired_calls(original_run: Run, new_run: Run) -> list[tuple[Span, Span]]:
    """Calls of both runs, paired (:func:`tokprof.profiler.pairing.pair_calls`): by span id when the new
    run was derived from the original by passes, else by call order within the same call path (span ids
    restart in every process, so equal ids of two separate recordings mean nothing)."""
    return pair_calls(original_run, new_run)


def run_bag_retention_detail(original_run: Run, new_run: Run) -> list[BagRetention]:
    """Per-call retention of every call present in both runs (matched by span id, else by call order)."""
    out = []
    for s, n in paired_calls(original_run, new_run):
        if n.llm is s.llm or (n.llm is not None and s.llm is not None and n.llm.messages == s.llm.messages):
            # Unchanged input: everything is retained; count what was relied on for the denominator.
            r = call_bag_retention(s, s)
        else:
            r = call_bag_retention(s, n)
        out.append(r)
    return out


def run_bag_retention(original_run: Run, new_run: Run) -> float | None:
    """Share of all relied-on facts and rules of ``original_run`` still present in ``new_run``'s inputs,
    0..1; ``None`` when no call relied on any."""
    ref = kept = 0
    for r in run_bag_retention_detail(original_run, new_run):
        ref += r.referenced
        kept += r.retained
    return None if ref == 0 else kept / ref

