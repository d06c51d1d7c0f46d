"""The state of one instrumented SDK call: the provider adapter's view of it (:class:`Adapter`, its stream
:class:`Accumulator`), the span it fills, and the usage an SDK call hands to an enclosing integration."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol
from tokprof.profiler.hooks import end_span, internal_error
from tokprof.profiler import keys
from tokprof.profiler.integrations import middleware, usage_dialects
from tokprof.profiler.model import LLMCall, Span, Usage


RAW_HEADER = "X-Stainless-Raw-Response"


IN_SDK_CALL: contextvars.ContextVar[CallState | None] = contextvars.ContextVar("tokprof_sdk_call", default=None)
"""The SDK call in flight in this context (set by ``_sdk.begin``): while it is not done and has a span, the
HTTP requests it makes are its own, and the HTTP-level fallback (``http_fallback.py``) leaves them alone (a
call tokprof failed to open a span for is recorded by the fallback if it can). Never reset: a finished call
(``done``) no longer counts, which also covers a stream's request sent after the call returned (Anthropic's
``messages.stream`` manager)."""


class Accumulator(Protocol):
    """Collects a streamed response, event by event."""

    def observe(self, item: Any) -> None: ...

    def finish(self, call: LLMCall) -> None:
        """Write the output message, usage, response id and finish reason seen so far into ``call``."""


class Adapter(Protocol):
    """How one SDK endpoint's requests and responses map onto an :class:`LLMCall`."""

    api: str
    """``openai.chat.completions``, ``openai.responses``, ``anthropic.messages``."""

    def request(self, kwargs: dict[str, Any]) -> LLMCall: ...

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        """Adjust a streaming request (e.g. ask for usage); returns the kwargs and a predicate of events to
        hide from the caller (those only tokprof asked for), or ``None``."""

    def fill(self, call: LLMCall, response: Any) -> None: ...

    def accumulator(self) -> Accumulator: ...


@dataclass
class CallState:
    """One instrumented call in flight."""

    adapter: Adapter
    kwargs: dict[str, Any]
    span: Span | None = None
    hide: Callable[[Any], bool] | None = None
    cached: Any = None
    raw: str | None = None
    """``"true"`` (``with_raw_response``) or ``"stream"`` (``with_streaming_response``): the call returns the
    HTTP response wrapper, which is recorded through its parsed body (see :func:`watch_raw`)."""
    done: bool = False
    transformed: list[str] = field(default_factory=list)
    enriches: Span | None = None
    """The model span above this call (LangChain, litellm) that gets the usage read here."""
    http_requests: int = 0
    """HTTP requests the HTTP-level hook saw this call make (``http_fallback.py``; 0 when it is off)."""
    internal_failure: bool = False
    """tokprof failed (and said so) while preparing this call: no span; the HTTP fallback may record it."""

    def _usage_read(self, output_final: bool = True) -> None:
        assert self.span is not None and self.span.llm is not None
        if self.enriches is None:
            check_usage(self.span, output_final=output_final)
            return
        usage = self.span.llm.usage
        if set(usage.sources.values()) != {"provider"} and usage.reported_total is None:
            return  # nothing read from the provider: the layer above counts the call itself
        # the one check runs here, where the provider's own block (its total, a cut stream) is known; the
        # layer above takes the checked usage and the note (its own copy may have lost what showed it false)
        note = usage_dialects.reconcile(self.span.llm, output_final=output_final)
        _stash(self.enriches, self.span.llm.usage)
        if note:
            self.enriches.set_attribute("usage_note", note)

    def fail(self, exc: BaseException) -> None:
        if self.span is not None and not self.done:
            self.done = True
            if self.enriches is None and not self._not_sent(exc):
                failed_usage(self.span, exc)
            end_span(self.span, exc)

    def _not_sent(self, exc: BaseException) -> bool:
        """A call the client refused before sending anything (an argument check: pydantic-ai's Anthropic
        model calls ``create`` without streaming, the SDK raises ``ValueError`` "Streaming is required ..." and
        pydantic-ai retries streaming) reached no provider and was not billed: its counts are 0 (tokprof's
        own observation, ``counted``), not an estimate of the prompt, and the span says so
        (``keys.NOT_SENT``). Known only while the HTTP hook watches the SDK's HTTP library and saw no request
        from this call. Never raises."""
        try:
            watching = HTTP_WATCH[0]
            call = self.span.llm if self.span is not None else None
            if (type(exc) not in (ValueError, TypeError) or self.http_requests or watching is None
                    or not watching() or call is None or self.span is None):
                return False
            call.usage = Usage()
            call.usage.set("input_tokens", 0, "counted")
            call.usage.set("output_tokens", 0, "counted")
            self.span.set_attribute(keys.NOT_SENT, True)
            self.span.set_attribute("usage_note", "the client raised before sending any request: nothing reached "
                                    "the provider, nothing was billed")
            return True
        except Exception as err:  # noqa: BLE001 - best effort; the user's exception goes on unchanged
            internal_error("a call refused before sending", err)
            return False

    def finish(self, response: Any) -> Any:
        """Record a complete (non-streamed) response; returns it unchanged."""
        try:
            if self.span is not None and self.span.llm is not None:
                self.adapter.fill(self.span.llm, response)
                self._usage_read()
                _vendor_error(self.span, usage_dialects.vendor_status_error(response))
        except Exception as exc:
            internal_error(f"{self.adapter.api} response", exc)
        if self.span is not None and not self.done:
            self.done = True
            end_span(self.span)
        if not self.kwargs.get("stream") and self.raw is None and getattr(self.adapter, "operation", None) is None:
            middleware.apply_after(self.adapter.api, self.kwargs, response)
        return response

    def end_stream(self, acc: Accumulator | None, error: BaseException | None, complete: bool) -> None:
        if self.done:
            return
        self.done = True
        if self.span is None:
            return
        try:
            final = True
            if self.span.llm is not None and acc is not None:
                acc.finish(self.span.llm)
                final = stream_finished(self.span.llm)
                self._usage_read(output_final=final)
                _vendor_error(self.span, getattr(acc, "vendor_error", None))
            if (not complete or not final) and error is None:
                # closed by the caller, or by the server before its final chunk (no finish reason): a cut
                # answer, whose output tokens are counted locally (estimated)
                self.span.set_attribute(keys.STREAM_INCOMPLETE, True)
        except Exception as exc:
            internal_error(f"{self.adapter.api} stream end", exc)
        end_span(self.span, error)


def _vendor_error(span: Span, error: str | None) -> None:
    """A body that says the call failed beside HTTP 200 (MiniMax ``base_resp``): the span is failed (the
    caller's response is untouched; ``end_span`` keeps a status set before it)."""
    if error:
        span.status, span.error = "error", error


HTTP_WATCH: list[Callable[[], bool] | None] = [None]
"""Set by ``http_fallback.py``: whether its hook is installed on the HTTP library of the patched SDKs (httpx2,
httpx), i.e. whether ``CallState.http_requests`` can be trusted."""


_sdk_usage: dict[str, Usage] = {}
"""Model span id -> the usage its SDK call reported (see :func:`take_sdk_usage`)."""


_SDK_USAGE_MAX = 1024


def _stash(span: Span, usage: Usage) -> None:
    if len(_sdk_usage) >= _SDK_USAGE_MAX:  # a layer above that never takes it: keep the newest only
        _sdk_usage.pop(next(iter(_sdk_usage)))
    previous = _sdk_usage.get(span.span_id)
    # several SDK calls under one model span (a retry...): all of them were billed
    _sdk_usage[span.span_id] = usage if previous is None else previous + usage


def take_sdk_usage(span: Span | None) -> Usage | None:
    """The usage that SDK calls made under ``span`` (a LangChain / litellm model span) reported, read in the
    provider's own dialect; ``None`` when no instrumented SDK call happened underneath."""
    if span is None:
        return None
    return _sdk_usage.pop(span.span_id, None)


def failed_usage(span: Span, exc: BaseException) -> None:
    """A call that raised before the provider reported usage: the prompt is counted locally (so the run
    shows what was sent), every count labelled ``estimated``, and the span says why: whether the provider
    billed a failed request is not known offline (a rejected one, e.g. HTTP 429, usually is not; a request
    cut after the model ran may be)."""
    call = span.llm
    if call is None or call.usage.known("input_tokens") or call.usage.known("output_tokens"):
        return
    try:
        usage_dialects.estimate_missing(call)
        status = getattr(exc, "status_code", None)
        how = f" with HTTP {status}" if isinstance(status, int) and not isinstance(status, bool) else ""
        span.set_attribute("usage_note", f"the call failed{how} before the provider reported usage: the prompt "
                           "is counted locally and labelled estimated; whether the provider billed it is not known")
    except Exception as err:  # noqa: BLE001 - counting is best effort; the user's exception goes on unchanged
        internal_error("counting a failed call", err)


def check_usage(span: Span, *, output_final: bool = True) -> None:
    """Partial or impossible provider usage is not truth: the one check (``usage_partial.reconcile``) fixes or
    drops it and the span says why; a response with no usage at all says so too (local counting fills it,
    labelled). ``output_final=False``: a stream cut before its final chunk (see :func:`stream_finished`)."""
    call = span.llm
    if call is None:
        return
    note = usage_dialects.reconcile(call, output_final=output_final)
    if note:
        span.set_attribute("usage_note", note)


_NOT_FINISHED = ("", "null", "none", "in_progress", "queued")
"""Finish reasons that say the answer is still going: DashScope streams send the text ``"null"`` on every chunk
before the last; an OpenAI Responses stream's last seen ``status`` is ``in_progress`` until
``response.completed`` (or ``incomplete``/``failed``, which are final)."""


def stream_finished(call: LLMCall) -> bool:
    """Did a stream reach its final chunk? Every SDK's accumulator copies the finish reason the last chunk
    carries (OpenAI-compatible ``finish_reason``, Anthropic ``stop_reason``, Gemini ``finishReason``,
    DashScope, Responses ``status``); a server that closes the connection quietly after some deltas leaves
    none, and its usage (none, or a running count) is not the call's."""
    reason = call.finish_reason
    return reason is not None and str(reason).strip().lower() not in _NOT_FINISHED
