"""The collector behind an active profile: receives finished spans, drops payloads when capture is off,
and streams spans to the run file."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

from tokprof.profiler import keys
from tokprof.profiler.model import Run, Span
from tokprof.profiler.policy import internal_error


class Collector:
    """Receives finished spans of one run; optionally streams them to a run file as they finish.

    ``capture=False`` strips payloads (messages, outputs, arguments, return values) from every span
    before it is kept or written; ``keep=False`` (with a writer) keeps only the root span in memory, so
    an endless run streams to disk in bounded memory. Both live in a subclass (:func:`make_collector`
    picks it), so the default collector's :meth:`finish`, on every traced call, does no extra work.
    """

    __slots__ = ("run", "_writer", "finish_hooks", "capture", "keep", "append", "wall_offset")

    def __init__(self, run: Run, writer: Any = None, *, capture: bool = True, keep: bool = True) -> None:
        self.run = run
        self.finish_hooks: list[Callable[[Span], None]] = []
        self.capture = capture
        self.keep = keep or writer is None  # without a file, memory is the only place spans go
        self.writer = writer
        # Wall clock minus monotonic clock, read once: a traced span's wall start is its monotonic start
        # plus this (one addition instead of a second clock read on every call).
        self.wall_offset = time.time_ns() - time.perf_counter_ns()

    @property
    def writer(self) -> Any:
        """The run file's writer, or ``None`` (spans kept in memory only)."""
        return self._writer

    @writer.setter
    def writer(self, writer: Any) -> None:
        self._writer = writer
        # ``append``: what finishing a span without an LLM call amounts to, as one C call, or ``None`` when
        # :meth:`finish` has more to do (a file, a filter). ``@trace``'s wrapper calls it directly: it saves
        # a Python frame on every traced call.
        self.append: Callable[[Span], None] | None = (
            self.run.spans.append if writer is None and type(self) is Collector else None)

    def finish(self, span: Span) -> None:
        # list.append is atomic under the GIL: no lock on the hot path.
        self.run.spans.append(span)
        if span.llm is not None:
            for hook in self.finish_hooks:
                try:
                    hook(span)
                except Exception as exc:
                    internal_error("llm span hook", exc)
        if self._writer is not None:
            try:
                self._writer.write_span(span)
            except Exception as exc:
                internal_error("run writer", exc)


class FilteringCollector(Collector):
    """A :class:`Collector` for ``capture=False`` and/or ``keep=False``."""

    __slots__ = ()

    def finish(self, span: Span) -> None:
        if self.keep or span.parent_id is None:
            self.run.spans.append(span)
        if span.llm is not None:
            for hook in self.finish_hooks:
                try:
                    hook(span)
                except Exception as exc:
                    internal_error("llm span hook", exc)
        if not self.capture:
            # After the hooks (they may count tokens from the messages), before anything is written.
            try:
                strip_payloads(span)
            except Exception as exc:
                internal_error("dropping payloads (capture=False)", exc)
                return  # fail closed: a span whose payload could not be dropped is not written
        if self.writer is not None:
            try:
                self.writer.write_span(span)
            except Exception as exc:
                internal_error("run writer", exc)


def make_collector(run: Run, writer: Any = None, *, capture: bool = True, keep: bool = True) -> Collector:
    """The collector for a profile: the plain one unless payloads are off or spans are not kept."""
    cls = Collector if capture and (keep or writer is None) else FilteringCollector
    return cls(run, writer, capture=capture, keep=keep)


# Attributes that describe a span without quoting the user's data: kept when capture is off (an
# allowlist, so a payload attribute some integration adds later is dropped by default).
_METADATA_KEYS = frozenset({keys.LANGCHAIN_RUN_ID, keys.TIME_TO_FIRST_TOKEN, keys.STREAM_INCOMPLETE,
                            keys.TRANSFORMED_BY, keys.SERVED_BY, *keys.LEGACY_SERVED_BY, keys.CACHED_USAGE,
                            "documents", keys.BILLING, keys.BILLING_PLAN})
_METADATA_PREFIXES = ("tokprof.", "optimizer.")


def strip_payloads(span: Span) -> None:
    """Drop what the user's code said from ``span`` (``capture=False``): message contents, the model's
    output, arguments, return values and every attribute not known to be metadata (tool inputs/outputs,
    retrieved text...). Kept: the span's shape, timing, model, parameters, tool definitions, usage, error
    type, and metadata attributes (``tokprof.*``, ``optimizer.*``, cache and streaming markers)."""
    dropped = False
    attrs = span.attributes
    if attrs:
        kept = {k: v for k, v in attrs.items() if k in _METADATA_KEYS or k.startswith(_METADATA_PREFIXES)}
        dropped = len(kept) != len(attrs)
        span.attributes = kept or None
    llm = span.llm
    if llm is not None:
        if llm.messages:
            # Keep the roles: the shape of the conversation is not payload, and counts stay explainable.
            llm.messages = [{"role": m.get("role", "user") if isinstance(m, dict) else "user", "content": None}
                            for m in llm.messages]
        if llm.output is not None:
            llm.output = None
        dropped = True
    if dropped:
        span.set_attribute(keys.PAYLOAD_NOTE, "not captured")
    if span.error is not None and span.status == "error":
        # ``ValueError: <user data>`` -> ``ValueError``: the message can quote the payload.
        span.error = span.error.split(":", 1)[0]


def capture_enabled(capture: bool = True) -> bool:
    """Payload capture for a new profile: ``capture`` unless ``$TOKPROF_CAPTURE`` is ``0``/``false``/``no``."""
    return bool(capture) and os.environ.get("TOKPROF_CAPTURE", "1").strip().lower() not in ("0", "false", "no", "off")
