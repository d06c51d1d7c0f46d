"""The low-level span API for integrations and manual recording: open a span, a span around a block,
and one model call recorded by hand."""

from __future__ import annotations

import contextvars
from typing import Any, Iterable

from tokprof.profiler.context import SPAN_IDS, activate, current_span, deactivate, end_span, perf_ns, wall_ns
from tokprof.profiler.model import USAGE_FIELDS, LLMCall, Message, Span, Usage
from tokprof.profiler.policy import internal_error
from tokprof.profiler.session import implicit_root


def start_span(
    name: str,
    kind: str = "function",
    *,
    parent: Span | None = None,
    attributes: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
    llm: LLMCall | None = None,
) -> Span | None:
    """Open a span under ``parent`` (default: the current span). Returns ``None`` outside a profile.

    The span is *not* made current; use :func:`activate` for that, or :func:`span` as a context manager.
    Close it with :func:`end_span`.
    """
    if parent is None:
        parent = current_span()
        if parent is None:
            parent = implicit_root()
            if parent is None:
                return None
    sink = parent._sink
    s = Span(next(SPAN_IDS), parent.span_id, parent.run_id, kind, name, perf_ns(), wall_ns(), None, "ok", None,
             attributes, tags, llm)
    s._sink = sink
    return s


class span:
    """``with span("retrieve", kind="retriever") as s:`` — a span around a block of code."""

    __slots__ = ("_args", "_span", "_token")

    def __init__(self, name: str, kind: str = "function", **kwargs: Any) -> None:
        self._args = (name, kind, kwargs)
        self._span: Span | None = None
        self._token: contextvars.Token[Span | None] | None = None

    def __enter__(self) -> Span | None:
        name, kind, kwargs = self._args
        self._span = start_span(name, kind, **kwargs)
        self._token = activate(self._span)
        return self._span

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        deactivate(self._token)
        end_span(self._span, exc)

    async def __aenter__(self) -> Span | None:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def _usage_of(raw: dict[str, Any]) -> Usage:
    """A usage dict given to :func:`record_llm_call`: tokprof's own keys (a value that is not a token count
    is unknown, never provider truth), else a provider's block in its dialect."""
    from tokprof.profiler.integrity import token_count

    if not any(k in USAGE_FIELDS for k in raw):
        from tokprof.profiler.integrations.usage_dialects import any_usage

        return any_usage(raw)
    return Usage.from_provider(**{k: token_count(v) for k, v in raw.items() if k in USAGE_FIELDS})


def record_llm_call(
    *,
    model: str,
    messages: Iterable[Message] = (),
    output: Message | str | None = None,
    usage: Usage | dict[str, int] | None = None,
    provider: str | None = None,
    tools: Iterable[dict[str, Any]] = (),
    params: dict[str, Any] | None = None,
    name: str | None = None,
    duration_ns: int | None = None,
    error: str | None = None,
) -> Span | None:
    """Record one model call made by code no integration covers.

    ``usage`` as a dict is taken as provider-reported (keys: ``input_tokens``, ``output_tokens``,
    ``cache_read_tokens``, ``cache_write_tokens``, ``reasoning_tokens``; or a provider's own usage block,
    read in its dialect); counts it lacks are filled by local counting. Such a dict goes through the same
    check as every provider path (``usage_partial.reconcile``): a count that cannot be true is repaired or
    counted locally, and the span says why. A :class:`Usage` object is kept as given (its sources are the
    caller's: e.g. zeros for an answer served from a cache). Returns the finished span, or ``None`` outside a
    profile.
    """
    try:
        if isinstance(output, str):
            output = {"role": "assistant", "content": output}
        given = isinstance(usage, dict)  # a Usage object is the caller's own reading, its sources chosen
        if isinstance(usage, dict):
            usage = _usage_of(usage)
        call = LLMCall(
            provider=provider,
            model=model,
            params=dict(params or {}),
            messages=[dict(m) for m in messages],
            tools=list(tools),
            output=output,
            usage=usage or Usage(),
        )
        s = start_span(name or model, "llm", llm=call)
        if s is None:
            return None
        if given:
            from tokprof.profiler.integrations.usage_partial import reconcile

            note = reconcile(call)
            if note:
                s.set_attribute("usage_note", note)
        if duration_ns is not None:
            s.start_ns -= duration_ns
            s.wall_start_ns -= duration_ns
        end_span(s, error)
        return s
    except Exception as exc:
        internal_error("record_llm_call", exc)
        return None
