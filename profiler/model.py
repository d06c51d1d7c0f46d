"""The trace model: spans, runs, token usage and cost.

Everything that crosses a module boundary in tokprof is a :class:`Run`. A run is a flat list of
:class:`Span` objects linked by ``parent_id``; LLM spans carry an :class:`LLMCall` with the request
(messages in OpenAI chat format, tools, parameters), the response and a :class:`Usage`.

Conventions (they matter for pricing):

* ``Usage.input_tokens`` counts *every* prompt token, cached or not (OpenAI's ``prompt_tokens``).
  ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of it read from / written to a provider
  prompt cache. Importers of Anthropic-style usage (where ``input_tokens`` excludes the cache) add them in.
* ``Usage.output_tokens`` counts every completion token; ``reasoning_tokens`` is the part of it spent on
  hidden reasoning.
* Each count has a source: ``provider`` (reported by the API), ``counted`` (our exact tokenizer for that
  model) or ``estimated`` (a tokenizer of another family, or a heuristic). A count that was never set has
  no source and is treated as unknown.
* Money is :class:`decimal.Decimal`; time is integer nanoseconds.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal

# Usage and Cost live in their own module (also project-import-free); re-exported: they are model types.
from tokprof.profiler.usage import TOKEN_SOURCES as TOKEN_SOURCES
from tokprof.profiler.usage import USAGE_FIELDS as USAGE_FIELDS
from tokprof.profiler.usage import Cost as Cost
from tokprof.profiler.usage import TokenSource as TokenSource
from tokprof.profiler.usage import Usage as Usage

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

    from tokprof.profiler.summary import RunSummary

SCHEMA_VERSION = 1

SpanKind = Literal["agent", "chain", "llm", "tool", "retriever", "function"]
SPAN_KINDS: tuple[str, ...] = ("agent", "chain", "llm", "tool", "retriever", "function")

Message = dict[str, Any]
"""A chat message in OpenAI format: ``role``, ``content`` (str or list of parts), optional ``name``,
``tool_calls`` (``[{"id", "type": "function", "function": {"name", "arguments"}}]``), ``tool_call_id``."""


@dataclass(slots=True)
class LLMCall:
    """The model-call part of an ``llm`` span."""

    provider: str | None = None
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    """Request parameters that change output: temperature, top_p, max_tokens, seed, tool_choice, ..."""
    messages: list[Message] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    """Tool definitions in OpenAI format: ``{"type": "function", "function": {name, description, parameters}}``."""
    output: Message | None = None
    usage: Usage = field(default_factory=Usage)
    cost: Cost | None = None
    """Cost as recorded by the trace source; computed costs come from ``tokprof.profiler.accounting``."""
    response_id: str | None = None
    finish_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "model": self.model,
            "params": self.params,
            "messages": self.messages,
            "tools": self.tools,
            "output": self.output,
            "usage": self.usage.to_dict(),
            "cost": self.cost.to_dict() if self.cost else None,
            "response_id": self.response_id,
            "finish_reason": self.finish_reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LLMCall":
        return cls(
            provider=d.get("provider"),
            model=d.get("model"),
            params=d.get("params") or {},
            messages=d.get("messages") or [],
            tools=d.get("tools") or [],
            output=d.get("output"),
            usage=Usage.from_dict(d.get("usage") or {}),
            cost=Cost.from_dict(d.get("cost")),
            response_id=d.get("response_id"),
            finish_reason=d.get("finish_reason"),
        )


class Span:
    """One step of a run: a traced function, a chain, a tool call, a model call...

    A plain ``__slots__`` class rather than a dataclass: spans are created on the hot path of the user's
    agent and every attribute set costs time there.
    """

    __slots__ = (
        "span_id",
        "parent_id",
        "run_id",
        "kind",
        "name",
        "start_ns",
        "end_ns",
        "wall_start_ns",
        "status",
        "error",
        "attributes",
        "tags",
        "llm",
        "_sink",
        "_prev",  # the span that was active before this one was activated by hand (integrations); unset otherwise
        "_depth",  # how many @trace levels this span is below the nearest other span (recursion headroom)
    )

    def __init__(
        self,
        span_id: str,
        parent_id: str | None,
        run_id: str,
        kind: str,
        name: str,
        start_ns: int,
        wall_start_ns: int,
        end_ns: int | None = None,
        status: str = "ok",
        error: str | None = None,
        attributes: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        llm: LLMCall | None = None,
    ) -> None:
        self.span_id = span_id
        self.parent_id = parent_id
        self.run_id = run_id
        self.kind = kind
        self.name = name
        self.start_ns = start_ns
        """Monotonic clock (``time.perf_counter_ns``) at start; only differences are meaningful."""
        self.end_ns = end_ns
        self.wall_start_ns = wall_start_ns
        """Wall clock (``time.time_ns``) at start."""
        self.status = status
        """``ok`` or ``error``."""
        self.error = error
        self.attributes = attributes
        self.tags = tags
        """Attribution tags of this span (team, feature, customer...); inherited by its descendants."""
        self.llm = llm
        self._sink: Any = None
        self._depth = 0
        self._prev: Span | None  # set by context.activate/push_span only (a slot, left unset otherwise)

    @property
    def duration_ns(self) -> int:
        return 0 if self.end_ns is None else self.end_ns - self.start_ns

    @property
    def wall_end_ns(self) -> int | None:
        return None if self.end_ns is None else self.wall_start_ns + self.duration_ns

    @property
    def usage(self) -> Usage | None:
        return self.llm.usage if self.llm is not None else None

    def set_attribute(self, key: str, value: Any) -> None:
        if self.attributes is None:
            self.attributes = {}
        self.attributes[key] = value

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "run_id": self.run_id,
            "kind": self.kind,
            "name": self.name,
            "start_ns": self.start_ns,
            "end_ns": self.end_ns,
            "wall_start_ns": self.wall_start_ns,
            "status": self.status,
        }
        if self.error is not None:
            d["error"] = self.error
        if self.attributes:
            d["attributes"] = self.attributes
        if self.tags:
            d["tags"] = self.tags
        if self.llm is not None:
            d["llm"] = self.llm.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Span":
        llm = d.get("llm")
        attributes = d.get("attributes")
        if attributes and isinstance(attributes.get("args"), list):
            # Captured positional arguments are a tuple in memory (see tokprof.profiler.hooks); JSON made it a list.
            attributes = {**attributes, "args": tuple(attributes["args"])}
        return cls(
            span_id=str(d["span_id"]),
            parent_id=None if d.get("parent_id") is None else str(d["parent_id"]),
            run_id=str(d.get("run_id", "")),
            kind=d.get("kind", "function"),
            name=d.get("name", ""),
            start_ns=int(d.get("start_ns") or 0),
            end_ns=None if d.get("end_ns") is None else int(d["end_ns"]),
            wall_start_ns=int(d.get("wall_start_ns") or 0),
            status=d.get("status", "ok"),
            error=d.get("error"),
            attributes=attributes,
            tags=d.get("tags"),
            llm=LLMCall.from_dict(llm) if llm is not None else None,
        )

    def __repr__(self) -> str:
        return f"Span({self.kind} {self.name!r} id={self.span_id} parent={self.parent_id})"


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


@dataclass
class Run:
    """A recorded agent run: spans plus the run's identity, tags and metadata."""

    run_id: str = field(default_factory=new_run_id)
    name: str = "run"
    tags: dict[str, str] = field(default_factory=dict)
    spans: list[Span] = field(default_factory=list)
    started_wall_ns: int = field(default_factory=time.time_ns)
    ended_wall_ns: int | None = None
    schema_version: int = SCHEMA_VERSION
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free-form facts about the run: ``source`` (live / imported format), ``source_file``, notes such as
    "tool definitions not recorded", the optimization passes that were active live..."""
    complete: bool = True
    """False when the run was loaded from a file whose end was never written (crash, kill)."""
    path: Path | None = None
    """Where the run was saved or loaded from, if anywhere."""

    # ---- navigation -------------------------------------------------------------------------------
    def llm_spans(self) -> list[Span]:
        """LLM spans in start order."""
        return sorted((s for s in self.spans if s.llm is not None), key=lambda s: (s.start_ns, s.span_id))

    def by_id(self) -> dict[str, Span]:
        return {s.span_id: s for s in self.spans}

    def children(self) -> dict[str | None, list[Span]]:
        """parent id -> children in start order (orphans whose parent is missing hang off ``None``)."""
        ids = {s.span_id for s in self.spans}
        out: dict[str | None, list[Span]] = {}
        for s in self.spans:
            parent = s.parent_id if s.parent_id in ids else None
            out.setdefault(parent, []).append(s)
        for kids in out.values():
            kids.sort(key=lambda s: (s.start_ns, s.span_id))
        return out

    def roots(self) -> list[Span]:
        return self.children().get(None, [])

    def walk(self, kids: dict[str | None, list[Span]] | None = None) -> Iterator[tuple[int, Span]]:
        """Depth-first (depth, span) in call order (``kids``: :meth:`children`, when the caller has it)."""
        kids = kids if kids is not None else self.children()
        stack = [(0, s) for s in reversed(kids.get(None, []))]
        while stack:
            depth, s = stack.pop()
            yield depth, s
            stack.extend((depth + 1, c) for c in reversed(kids.get(s.span_id, [])))

    def span_tags(self, span: Span, _index: dict[str, Span] | None = None) -> dict[str, str]:
        """The attribution tags in force for ``span``: the run's, overridden by each ancestor's, then its own."""
        index = _index or self.by_id()
        chain = []
        cur: Span | None = span
        seen: set[str] = set()
        while cur is not None and cur.span_id not in seen:  # a parent-id cycle must not loop forever
            seen.add(cur.span_id)
            if cur.tags:
                chain.append(cur.tags)
            cur = index.get(cur.parent_id) if cur.parent_id is not None else None
        tags = dict(self.tags)
        for t in reversed(chain):
            tags.update(t)
        return tags

    # ---- totals -----------------------------------------------------------------------------------
    def total_usage(self) -> Usage:
        total = Usage()
        for s in self.spans:
            if s.llm is not None:
                total = total + s.llm.usage
        return total

    @property
    def duration_ns(self) -> int:
        if not self.spans:
            return 0
        starts = [s.start_ns for s in self.spans]
        ends = [s.end_ns for s in self.spans if s.end_ns is not None]
        return (max(ends) - min(starts)) if ends else 0

    def summary(self, top: int = 5, currency: str | None = None) -> "RunSummary":
        """Tokens, cost, calls and top spans. ``str()`` it for a plain-text table, ``.to_dict()`` for JSON
        (:func:`tokprof.profiler.summary.summarize`); ``currency`` defaults to the run's own."""
        return _operations().summarize(self, top=top, currency=currency)

    def graph(self) -> "nx.DiGraph":
        """The call graph with inclusive/exclusive roll-ups; see :mod:`tokprof.profiler.graph`."""
        return _operations().call_graph(self)

    def save(self, directory: str | Path | None = None) -> Path:
        """Write the run to ``<directory>/<run_id>.jsonl`` (default ``.tokprof/runs``, or ``$TOKPROF_DIR``)."""
        return _operations().save_run(self, directory)

    def copy(self) -> "Run":
        """A deep-enough copy for passes to rewrite: new span and LLMCall objects, shared payload values."""
        import copy as _copy

        spans = [
            Span(s.span_id, s.parent_id, s.run_id, s.kind, s.name, s.start_ns, s.wall_start_ns, s.end_ns,
                 s.status, s.error,
                 # own dicts: a pass's set_attribute on the copy must not write into the original run
                 attributes=dict(s.attributes) if s.attributes else None,
                 tags=dict(s.tags) if s.tags else None,
                 llm=_copy.deepcopy(s.llm) if s.llm is not None else None)
            for s in self.spans
        ]
        return Run(
            run_id=self.run_id,
            name=self.name,
            tags=dict(self.tags),
            spans=spans,
            started_wall_ns=self.started_wall_ns,
            ended_wall_ns=self.ended_wall_ns,
            schema_version=self.schema_version,
            metadata=_copy.deepcopy(self.metadata),
            complete=self.complete,
            path=self.path,
        )

    def _repr_html_(self) -> str:
        """Jupyter display: the summary as a small HTML table (the full report lives in ``reports``,
        which ``profiler`` never imports)."""
        return self.summary().to_html()

    def __repr__(self) -> str:
        return f"Run({self.name!r} id={self.run_id} spans={len(self.spans)})"


# ---------------------------------------------------------------------------------------------------
# Run's conveniences (summary, graph, save) are implemented above this module, which imports nothing of
# the project (so every layer can use the trace model without a cycle). The ``tokprof.profiler`` package
# binds them once on import, through this public function; every path to a Run imports that package.
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunOperations:
    """The functions behind :meth:`Run.summary`, :meth:`Run.graph` and :meth:`Run.save`."""

    summarize: Callable[..., "RunSummary"]
    call_graph: Callable[[Run], "nx.DiGraph"]
    save_run: Callable[[Run, "str | Path | None"], Path]


_bound: list[RunOperations] = []


def bind_run_operations(ops: RunOperations) -> None:
    """Install the implementations of ``Run.summary/graph/save`` (done by ``tokprof.profiler``)."""
    _bound[:] = [ops]


def _operations() -> RunOperations:
    if not _bound:
        raise RuntimeError("Run.summary/graph/save need the tokprof.profiler package: import tokprof")
    return _bound[0]
