"""openai-agents: ``Runner.run`` / ``run_sync`` / ``run_streamed`` as a nested span tree.

The Agents SDK traces its own runs; a :class:`TracingProcessor` (its public extension point,
https://openai.github.io/openai-agents-python/tracing/#custom-tracing-processors) turns its agent, tool
(``function``), handoff, guardrail and custom spans into tokprof spans as they start and end. Each tokprof
span is made current for the SDK span's lifetime, exactly as the SDK makes its own span current (same
context, same start/finish points), so the model calls the run makes, recorded by the openai SDK
instrumentation, nest under the agent (or tool) that made them. The SDK's ``response``/``generation`` spans
are *not* turned into spans: the openai instrumentation records those calls with their real usage, once.

The processor is added to the SDK once (``agents.add_trace_processor``; the user's processors stay) and is
inert while ``openai-agents`` is not instrumented. When the SDK's tracing is disabled
(``OPENAI_AGENTS_DISABLE_TRACING``), only the model calls are recorded (flat).
"""

from __future__ import annotations

import threading
from typing import Any

from tokprof.profiler import hooks
from tokprof.profiler.hooks import end_span, internal_error, start_span
from tokprof.profiler.integrations import _sdk

_KINDS = {"agent": "agent", "function": "tool", "handoff": "chain", "guardrail": "chain", "custom": "function",
          "task": "chain", "turn": "chain", "mcp_tools": "tool"}
"""SDK span type -> tokprof span kind. Types absent here (response, generation, speech...) are skipped."""


class _Switch:
    active = False
    """Set by :func:`patch`, cleared by unpatching (the processor stays registered, inert)."""


def _name(data: Any) -> str:
    kind = getattr(data, "type", "")
    if kind == "handoff":
        return f"handoff {getattr(data, 'from_agent', None)} -> {getattr(data, 'to_agent', None)}"
    return str(getattr(data, "name", None) or kind)


class TokprofProcessor:
    """An Agents SDK ``TracingProcessor`` that mirrors its spans into the active tokprof profile."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[Any, Any]] = {}
        """SDK span id -> (tokprof span, context token)."""
        self._lock = threading.Lock()

    def on_trace_start(self, trace: Any) -> None:
        pass

    def on_trace_end(self, trace: Any) -> None:
        pass

    def on_span_start(self, span: Any) -> None:
        if not _Switch.active:
            return
        try:
            data = span.span_data
            kind = _KINDS.get(getattr(data, "type", ""))
            parent = hooks.current_span() or hooks.implicit_root()
            if kind is None or parent is None or parent.kind == "llm":
                return
            if span.span_id in self._open:  # the processor registered twice (see patch()): one span is enough
                return
            ours = start_span(_name(data), kind, parent=parent)
            if ours is None:
                return
            ours.set_attribute("agents.span_type", data.type)
            if data.type == "function" and getattr(data, "input", None) is not None and hooks.capture_enabled():
                ours.set_attribute("input", data.input)
            token = hooks.activate(ours)
            with self._lock:
                self._open[span.span_id] = (ours, token)
        except Exception as exc:
            internal_error("openai-agents span start", exc)

    def on_span_end(self, span: Any) -> None:
        with self._lock:
            key: Any = getattr(span, "span_id", None)
            entry = self._open.pop(key, None)
        if entry is None:
            return
        ours, token = entry
        try:
            hooks.deactivate(token)
            data = span.span_data
            ours.name = _name(data)  # a handoff learns its destination only at its end
            if data.type == "function" and getattr(data, "output", None) is not None and hooks.capture_enabled():
                ours.set_attribute("output", str(data.output))
            error = getattr(span, "error", None)
            end_span(ours, None if not error else str(error.get("message") if isinstance(error, dict) else error))
        except Exception as exc:
            internal_error("openai-agents span end", exc)
            end_span(ours)

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


_processor: TokprofProcessor | None = None
_registered = threading.Lock()


def _is_registered(processor: Any) -> bool:
    """Whether the SDK's trace provider still calls ``processor`` (``set_trace_processors`` replaces all)."""
    try:
        from agents.tracing import get_trace_provider

        multi = getattr(get_trace_provider(), "_multi_processor", None)
        return processor in tuple(getattr(multi, "_processors", ()))
    except Exception:  # an SDK whose internals differ: add again; duplicates are ignored per span
        return False


def patch() -> list[_sdk.Patch]:
    """Register the processor (once) and switch it on. The model calls themselves are recorded by the openai
    instrumentation (automatic inside ``profile()``, since the Agents SDK imports openai)."""
    global _processor
    import agents
    from agents.tracing import TracingProcessor

    with _registered:
        if _processor is None:
            cls = type("TokprofTracingProcessor", (TokprofProcessor, TracingProcessor), {})
            _processor = cls()
        if not _is_registered(_processor):  # first time, or the user replaced the processors since
            agents.add_trace_processor(_processor)  # type: ignore[arg-type]  # a TracingProcessor subclass, built above
    return [_sdk.patch(_Switch, "active", lambda _old: True)]
