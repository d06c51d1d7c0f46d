"""LangChain / LangGraph: a callback handler that turns runs into tokprof spans.

Chains become ``chain`` spans (a top-level graph or agent executor becomes ``agent``), chat models and
LLMs ``llm`` spans carrying an :class:`~tokprof.profiler.model.LLMCall` (provider, model, request parameters, the
input messages in OpenAI format, tool definitions, the output message and ``usage_metadata`` as provider
usage), tools ``tool`` spans and retrievers ``retriever`` spans.

Parents follow LangChain's ``run_id``/``parent_run_id``. The top-level LangChain run hangs off whatever
tokprof span is active when it starts (an enclosing ``@trace`` or the ``profile()`` root), and each
LangChain span is made the active tokprof span while it runs, so ``@trace`` functions and instrumented SDK
calls made inside a tool or a chat model nest under it.

Inside ``profile()`` the handler is attached automatically through langchain-core's configure hook: a
ContextVar holds the profile's handler and langchain-core adds it to every callback manager it builds, so
an existing agent needs no ``callbacks=`` argument. The handler is synchronous with ``run_inline = True``:
langchain-core then calls it directly (in the running task's context) for async runs too, rather than in
a thread pool, which keeps the active-span ContextVar right.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from tokprof.profiler import hooks
from tokprof.profiler.hooks import end_span, internal_error, start_span
from tokprof.profiler.model import LLMCall, Message, Span
from tokprof.profiler.integrations.langchain_convert import (
    MISSING,
    PARAM_KEYS,
    fill_response,
    jsonable,
    messages_to_openai,
    provider,
    serialized_name,
    to_text,
    tools_to_openai,
    truncate,
)

if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.messages import BaseMessage
    from langchain_core.outputs import LLMResult

__all__ = ["TokprofCallbackHandler", "attach", "detach"]


# Top-level chains that are agents rather than plain pipelines.
_AGENT_NAMES = {"LangGraph", "AgentExecutor", "CompiledStateGraph", "Pregel"}
_HIDDEN_TAG = "langsmith:hidden"


class TokprofCallbackHandler(BaseCallbackHandler):
    """Records LangChain runs as tokprof spans under the active profile.

    Attached automatically inside ``profile()``; pass it yourself (``callbacks=[TokprofCallbackHandler()]``)
    only when the configure hook is not available. Outside a profile it records nothing.
    """

    run_inline = True  # called directly for async runs too: keeps the active-span ContextVar right
    raise_error = False

    def __init__(self) -> None:
        super().__init__()
        self._spans: dict[UUID, Span | None] = {}
        """LangChain run id -> its span (``None`` when nothing is recorded, e.g. outside a profile)."""
        """Run id -> the tokprof span that was active before the run's span was activated."""
        self._hidden: dict[UUID, UUID | None] = {}
        """Run ids of hidden internal runs (LangGraph channel writes...) -> their parent run id."""

    # ---- span bookkeeping ---------------------------------------------------------------------
    def _parent(self, parent_run_id: UUID | None) -> Span | None:
        # Hidden runs are skipped: their children attach to the nearest visible ancestor.
        while parent_run_id is not None and parent_run_id in self._hidden:
            parent_run_id = self._hidden[parent_run_id]
        current = hooks.current_span()
        if parent_run_id is None or parent_run_id not in self._spans:
            return current
        parent = self._spans[parent_run_id]
        # A @trace function called inside a LangChain run that starts another LangChain run sits between
        # the two: prefer the active span when it is a live span opened since the LangChain parent.
        if (
            parent is not None
            and current is not None
            and current is not parent
            and current.end_ns is None
            and current.run_id == parent.run_id
            and current.start_ns >= parent.start_ns
        ):
            return current
        return parent

    def _open(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str,
        kind: str,
        tags: list[str] | None,
        attributes: dict[str, Any] | None = None,
        llm: LLMCall | None = None,
    ) -> Span | None:
        if tags and _HIDDEN_TAG in tags:
            self._hidden[run_id] = parent_run_id
            return None
        parent = self._parent(parent_run_id)
        if parent is None:
            self._spans[run_id] = None
            return None
        span = start_span(name, kind, parent=parent, attributes=attributes, llm=llm)
        self._spans[run_id] = span
        if span is not None:
            # ``_prev``: the span to restore at the end. If the end event arrives in another context (async
            # LangChain ends runs inside gather tasks), this span stays current here once finished; hooks
            # then step back to ``_prev`` too.
            hooks.push_span(span)
        return span

    def _close(self, run_id: UUID, error: BaseException | None = None) -> Span | None:
        if self._hidden.pop(run_id, MISSING) is not MISSING:
            return None
        span = self._spans.pop(run_id, None)
        if span is None:
            return None
        # Restore the previously active span only where ours is still the active one: an end event
        # delivered in another context must not clobber that context's active span.
        hooks.pop_span(span)
        end_span(span, error)
        return span

    # ---- chains ---------------------------------------------------------------------------------
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = kwargs.get("name") or serialized_name(serialized) or "chain"
            ids = (serialized or {}).get("id") or []
            is_agent = parent_run_id is None and (
                name in _AGENT_NAMES or any(str(i) in _AGENT_NAMES for i in ids)
            )
            self._open(run_id, parent_run_id, str(name), "agent" if is_agent else "chain", tags,
                       {"langchain.run_id": str(run_id)})
        except Exception as exc:
            internal_error("langchain on_chain_start", exc)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id)
        except Exception as exc:
            internal_error("langchain on_chain_end", exc)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, error)
        except Exception as exc:
            internal_error("langchain on_chain_error", exc)

    # ---- models ---------------------------------------------------------------------------------
    def _open_llm(
        self,
        serialized: dict[str, Any] | None,
        messages: list[Message],
        run_id: UUID,
        parent_run_id: UUID | None,
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        metadata = metadata or {}
        invocation = kwargs.get("invocation_params") or {}
        model = (
            metadata.get("ls_model_name")
            or invocation.get("model")
            or invocation.get("model_name")
            or invocation.get("model_id")
        )
        params = {k: jsonable(invocation[k]) for k in PARAM_KEYS if invocation.get(k) is not None}
        for key, ls_key in (("temperature", "ls_temperature"), ("max_tokens", "ls_max_tokens"), ("stop", "ls_stop")):
            if key not in params and metadata.get(ls_key) is not None:
                params[key] = metadata[ls_key]
        call = LLMCall(
            provider=provider(serialized, metadata),
            model=None if model is None else str(model),
            params=params,
            messages=messages,
            tools=tools_to_openai(invocation.get("tools") or invocation.get("functions")),
        )
        name = kwargs.get("name") or serialized_name(serialized) or call.model or "llm"
        self._open(run_id, parent_run_id, str(name), "llm", tags, {"langchain.run_id": str(run_id)}, call)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: "list[list[BaseMessage]]",
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            # langchain-core sends one prompt per run id; a batch arrives as several events.
            prompt = [m for batch in messages for m in batch]
            self._open_llm(serialized, messages_to_openai(prompt), run_id, parent_run_id, tags, metadata,
                           kwargs)
        except Exception as exc:
            internal_error("langchain on_chat_model_start", exc)

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            messages: list[Message] = [{"role": "user", "content": p} for p in prompts]
            self._open_llm(serialized, messages, run_id, parent_run_id, tags, metadata, kwargs)
        except Exception as exc:
            internal_error("langchain on_llm_start", exc)

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], *, chunk: Any = None, run_id: UUID,
                         parent_run_id: UUID | None = None, tags: list[str] | None = None, **kwargs: Any) -> None:
        try:
            span = self._spans.get(run_id)
            if span is not None and (span.attributes is None or "time_to_first_token_ns" not in span.attributes):
                span.set_attribute("time_to_first_token_ns", hooks.perf_ns() - span.start_ns)
        except Exception as exc:
            internal_error("langchain on_llm_new_token", exc)

    def on_llm_end(self, response: "LLMResult", *, run_id: UUID, **kwargs: Any) -> None:
        try:
            span = self._spans.get(run_id)
            if span is not None and span.llm is not None:
                fill_response(span.llm, response, span)
            self._close(run_id)
        except Exception as exc:
            internal_error("langchain on_llm_end", exc)
            self._close_quietly(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, error)
        except Exception as exc:
            internal_error("langchain on_llm_error", exc)

    # ---- tools ----------------------------------------------------------------------------------
    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = kwargs.get("name") or serialized_name(serialized) or "tool"
            attributes: dict[str, Any] = {
                "langchain.run_id": str(run_id),
                "input": to_text(inputs if inputs is not None else input_str),
            }
            if kwargs.get("tool_call_id"):
                attributes["tool_call_id"] = kwargs["tool_call_id"]
            self._open(run_id, parent_run_id, str(name), "tool", tags, attributes)
        except Exception as exc:
            internal_error("langchain on_tool_start", exc)

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            span = self._spans.get(run_id)
            if span is not None:
                span.set_attribute("output", to_text(output))
            self._close(run_id)
        except Exception as exc:
            internal_error("langchain on_tool_end", exc)
            self._close_quietly(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, error)
        except Exception as exc:
            internal_error("langchain on_tool_error", exc)

    # ---- retrievers -----------------------------------------------------------------------------
    def on_retriever_start(
        self,
        serialized: dict[str, Any],
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            name = kwargs.get("name") or serialized_name(serialized) or "retriever"
            self._open(run_id, parent_run_id, str(name), "retriever", tags,
                       {"langchain.run_id": str(run_id), "input": truncate(str(query))})
        except Exception as exc:
            internal_error("langchain on_retriever_start", exc)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            span = self._spans.get(run_id)
            if span is not None:
                span.set_attribute("documents", len(documents) if hasattr(documents, "__len__") else None)
                span.set_attribute(
                    "output", truncate("\n\n".join(str(getattr(d, "page_content", d)) for d in documents))
                )
            self._close(run_id)
        except Exception as exc:
            internal_error("langchain on_retriever_end", exc)
            self._close_quietly(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        try:
            self._close(run_id, error)
        except Exception as exc:
            internal_error("langchain on_retriever_error", exc)

    def _close_quietly(self, run_id: UUID) -> None:
        try:
            self._close(run_id)
        except Exception:  # already reported by the caller
            pass


# ---------------------------------------------------------------------------------------------------
# automatic attachment inside profile()
# ---------------------------------------------------------------------------------------------------
_active_handler: contextvars.ContextVar[TokprofCallbackHandler | None] = contextvars.ContextVar(
    "tokprof_langchain_handler", default=None
)
# handle_class makes langchain-core skip ours when the user already passed a TokprofCallbackHandler.
register_configure_hook(_active_handler, True, TokprofCallbackHandler)


def attach(profile: Any) -> None:
    """Profile enter hook: make every LangChain run in this context report to a fresh handler."""
    if not getattr(profile, "langchain", True):
        return
    profile.extras["langchain_token"] = _active_handler.set(TokprofCallbackHandler())


def detach(profile: Any) -> None:
    """Profile exit hook: stop attaching the handler."""
    token = profile.extras.pop("langchain_token", None)
    if token is None:
        return
    try:
        _active_handler.reset(token)
    except ValueError:  # exited in another context than entered (async generators...)
        _active_handler.set(None)
