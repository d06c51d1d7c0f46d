"""Context fidelity: does a rewritten prompt still hold what the model relied on, *where* it was?

For each call of a recorded run, the values the model relied on are observable in hindsight: its
tool-call argument values, the fact tokens (ids, numbers, codes, names) and quoted strings of its answer,
and every short value of a JSON record in its input that the answer repeats word for word ("cancelled",
"no"), plus the system-prompt sentences it echoes. A value counts only if the original input held it.

The rewrite keeps a value only if the rewritten input still holds it **in every context the original
held it in**: a JSON value under the same key path (list positions ignored, so a deleted neighbour does
not move a record) in a record with the same other scalar fields; a value in prose inside the same
sentence; a tool-call argument under the same tool and key with the same other arguments. So a
placeholder that keeps a record's ids, a summary that keeps its numbers, two records whose values were
swapped, a prompt replaced by a bag of its fact tokens, or a deleted record all lose values, where the old
bag-of-tokens measure (:mod:`tokprof.optimizers.bag_retention`) scored them 1.00. Whitespace-only changes
(``minify``) and an exact copy replaced by a reference to the same earlier record (``dedupe``) keep them.

Reported per call (:func:`run_fidelity_detail`, :func:`distribution`: min, p10, median, calls below
:data:`DEFAULT_THRESHOLD`) and pooled per run (:func:`run_fidelity`, what the pipeline shows).
Only this measure looks ahead (at the output); passes never do. ``run_fidelity`` is what
:func:`tokprof.optimizers.pipeline.optimize` calls after every pass.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable

from tokprof.optimizers.bag_retention import (  # noqa: F401  (helpers shared with the passes)
    QUOTED, arg_values, fact_tokens, output_facts, paired_calls, shingles, system_rules,
)
from tokprof.optimizers.compression.common import message_text, text_of
from tokprof.profiler.model import LLMCall, Message, Run, Span

DEFAULT_THRESHOLD = 0.9
"""A call whose fidelity is below this is flagged (the report and ``verify`` use it)."""

_SENTENCE = re.compile(r"(?<=[.!?;])\s+|\n+")
_WORDS = re.compile(r"[\w$.@:/\-]+", re.UNICODE)
MAX_LEAF = 80
"""JSON string values longer than this are prose: indexed by their sentences and fact tokens."""


@dataclass(frozen=True)
class Ctx:
    """Where a value sits: ``json`` (key path + the record's other scalar fields), ``text`` (its sentence),
    ``args`` (tool name + key path + the other arguments)."""

    kind: str
    path: tuple[str, ...] = ()
    record: Any = None


def _scalar(v: Any) -> str | None:
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, (int, float)):
        return str(v)
    return None


def _sentences(text: str) -> list[str]:
    return [" ".join(s.split()) for s in _SENTENCE.split(text) if s.strip()]


def _text_entries(text: str, kind: str = "text", path: tuple[str, ...] = (), record: Any = None,
                  ) -> Iterable[tuple[str, Ctx]]:
    for sent in _sentences(text):
        ctx = Ctx(kind, path, sent if record is None else record)
        for w in set(_WORDS.findall(sent)) | set(fact_tokens(sent)):
            w = w.strip(".:-/,;")
            if w:
                yield w.casefold(), ctx


def _walk(node: Any, path: tuple[str, ...], out: list[tuple[str, Ctx]], kind: str, whole: set[str]) -> None:
    if isinstance(node, dict):
        scalars = {str(k): s for k, v in node.items() if (s := _scalar(v)) is not None}
        for k, v in node.items():
            k = str(k)
            if k in scalars:
                rec = frozenset((kk, vv) for kk, vv in scalars.items() if kk != k)
                _leaf(scalars[k], path + (k,), rec, out, kind, whole)
            else:
                _walk(v, path + (k,), out, kind, whole)
    elif isinstance(node, list):
        for x in node:  # positions are not part of the path: deleting a neighbour must not move a record
            _walk(x, path, out, kind, whole)
    else:
        s = _scalar(node)
        if s is not None:
            _leaf(s, path, frozenset(), out, kind, whole)


def _leaf(value: str, path: tuple[str, ...], rec: frozenset, out: list[tuple[str, Ctx]], kind: str,
          whole: set[str]) -> None:
    ctx = Ctx(kind, path, rec)
    if len(value) <= MAX_LEAF:
        out.append((value.casefold(), ctx))
        if len(value.split()) <= 3:
            whole.add(value.casefold())
    # the words and fact tokens inside a string value sit in the same record
    if " " in value or len(value) > MAX_LEAF:
        out.extend((w, ctx) for w, _ in _text_entries(value, kind, path, rec))


@lru_cache(maxsize=50_000)
def _message_index(key: str) -> tuple[dict[str, frozenset[Ctx]], tuple[str, ...], frozenset[str]]:
    """(value -> contexts, sentences, JSON/argument leaf values) of one message, memoised: an agent
    re-sends its history on every call, so each message is indexed once."""
    m = json.loads(key)
    out: list[tuple[str, Ctx]] = []
    whole: set[str] = set()
    for tc in m.get("tool_calls") or []:
        fn = (tc.get("function") or tc) if isinstance(tc, dict) else {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                args = {"": args}
        _walk(args, (str(fn.get("name")),), out, "args", whole)
    text = message_text(m) if m.get("content") is not None else ""
    sentences: list[str] = []
    stripped = text.strip()
    data: Any = None
    if stripped[:1] in ("{", "["):
        try:
            data = json.loads(stripped)
        except ValueError:
            data = None
    if data is not None:
        _walk(data, (), out, "json", whole)
    elif text:
        sentences = _sentences(text)
        out.extend(_text_entries(text))
    index: dict[str, set[Ctx]] = {}
    for v, c in out:
        index.setdefault(v, set()).add(c)
    return {v: frozenset(c) for v, c in index.items()}, tuple(sentences), frozenset(whole)


def _key(m: Message) -> str:
    return json.dumps(m, sort_keys=True, ensure_ascii=False, default=str)


class _Index:
    """Every value of a message list with the contexts it sits in (per-message indexes, queried lazily)."""

    def __init__(self, messages: list[Message]) -> None:
        self.parts = [_message_index(_key(m)) for m in messages]
        self._norm: str | None = None
        self._leaves: frozenset[str] | None = None

    @property
    def norm(self) -> str:
        if self._norm is None:
            self._norm = "\n".join(s for _, sents, _ in self.parts for s in sents)
        return self._norm

    def is_leaf(self, phrase: str) -> bool:
        if self._leaves is None:
            self._leaves = frozenset().union(*(leaves for _, _, leaves in self.parts))
        return phrase in self._leaves

    def contexts(self, value: str) -> set[Ctx]:
        v = value.casefold()
        found: set[Ctx] = set()
        for index, sents, _ in self.parts:
            c = index.get(v)
            if c:
                found |= c
            if " " in v:  # a phrase in prose: the sentences holding it
                found |= {Ctx("text", (), s) for s in sents if v in s.casefold()}
        return found


def relied_values(output: Message | None, index: _Index) -> list[str]:
    """Values of ``output`` the model took from its input (see the module docstring)."""
    if not output:
        return []

    text = text_of(output.get("content"))
    vals: dict[str, None] = dict.fromkeys(fact_tokens(text))
    for m in QUOTED.finditer(text):
        vals[(m.group(1) or m.group(2)).strip()] = None
    for tc in output.get("tool_calls") or []:
        if isinstance(tc, dict):
            fn = tc.get("function") or tc
            for v in arg_values(fn.get("arguments")):
                if v.strip() and len(v) <= 200:
                    vals[v.strip()] = None
    # short record values the answer repeats word for word ("cancelled", "no", "basic economy")
    words = [w.strip(".,;:!?()\"'").casefold() for w in text.split()]
    for n in (1, 2, 3):
        for i in range(len(words) - n + 1):
            phrase = " ".join(words[i:i + n])
            if index.is_leaf(phrase):
                vals[phrase] = None
    seen: set[str] = set()
    out = []
    for v in vals:
        if v and v.casefold() not in seen and index.contexts(v):
            seen.add(v.casefold())
            out.append(v)
    return out


@dataclass
class CallFidelity:
    """Context fidelity of one call's rewritten input."""

    span_id: str
    values: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    """System-prompt sentences the output echoes (five words in a row)."""
    rules_lost: list[str] = field(default_factory=list)

    @property
    def referenced(self) -> int:
        return len(self.values) + len(self.rules)

    @property
    def retained(self) -> int:
        return self.referenced - len(self.lost) - len(self.rules_lost)

    @property
    def share(self) -> float | None:
        return None if self.referenced == 0 else self.retained / self.referenced

    def to_dict(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "share": self.share, "values": len(self.values), "lost": self.lost[:20],
                "rules": len(self.rules), "rules_lost": [r[:80] for r in self.rules_lost]}


def _call(x: Span | LLMCall) -> LLMCall | None:
    return x.llm if isinstance(x, Span) else x


def call_fidelity(original: Span | LLMCall, new: Span | LLMCall) -> CallFidelity:
    """Which values and rule sentences the original call relied on, and which the rewrite lost from
    their original context."""
    o, n = _call(original), _call(new)
    r = CallFidelity(original.span_id if isinstance(original, Span) else "")
    if o is None or n is None:
        return r
    before = _Index(o.messages)
    same = n.messages is o.messages or n.messages == o.messages
    after = before if same else _Index(n.messages)
    for v in relied_values(o.output, before):
        r.values.append(v)
        if not same and not before.contexts(v) <= after.contexts(v):
            r.lost.append(v)

    out_text = text_of((o.output or {}).get("content"))
    out_sh = shingles(out_text) if out_text else set()
    if out_sh:
        for sent, sh in _rule_sentences(tuple(_key(m) for m in o.messages if m.get("role") in ("system", "developer"))):
            if sh & out_sh:
                r.rules.append(sent)
                if not same and sent not in after.norm and sent not in _flat(n.messages):
                    r.rules_lost.append(sent)
    return r


@lru_cache(maxsize=256)
def _rule_sentences(system_keys: tuple[str, ...]) -> tuple[tuple[str, frozenset], ...]:
    """The sentences of the system prompt's rules with their word shingles (memoised: the same system
    prompt is sent on every call)."""
    messages = [json.loads(k) for k in system_keys]
    return tuple((sent, frozenset(shingles(sent))) for rule in system_rules(messages) for sent in _sentences(rule))


def _flat(messages: list[Message]) -> str:
    return " ".join(" ".join(message_text(m).split()) for m in messages)


def _paired(original_run: Run, new_run: Run) -> list[tuple[Span, Span]]:
    return paired_calls(original_run, new_run)


def run_fidelity_detail(original_run: Run, new_run: Run) -> list[CallFidelity]:
    """Per-call context fidelity of every call present in both runs."""
    return [call_fidelity(s, n) for s, n in _paired(original_run, new_run)]


def run_fidelity(original_run: Run, new_run: Run) -> float | None:
    """Share of all relied-on values and rule sentences of ``original_run`` still in their original
    context in ``new_run``, pooled over calls; ``None`` when no call relied on any."""
    ref = kept = 0
    for r in run_fidelity_detail(original_run, new_run):
        ref += r.referenced
        kept += r.retained
    return None if ref == 0 else kept / ref


def distribution(details: Iterable[CallFidelity], threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    """Per-call fidelity summary: calls scored, min, p10, median, mean, and how many fall below ``threshold``."""
    shares = sorted(s for d in details if (s := d.share) is not None)
    if not shares:
        return {"calls": 0, "min": None, "p10": None, "median": None, "mean": None, "below_threshold": 0,
                "threshold": threshold}
    return {"calls": len(shares), "min": shares[0], "p10": shares[int(0.1 * (len(shares) - 1))],
            "median": shares[(len(shares) - 1) // 2], "mean": sum(shares) / len(shares),
            "below_threshold": sum(1 for s in shares if s < threshold), "threshold": threshold}
