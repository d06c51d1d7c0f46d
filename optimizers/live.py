"""The compression passes acting on a running agent: plain functions and langchain-core transforms.

Every compression pass is a pure function of one call's message list (see
:mod:`tokprof.optimizers.compression.common`), so the code that rewrites recorded runs in simulation is the
code that runs live:

>>> from tokprof.optimizers.live import compress_messages
>>> messages = compress_messages(messages, passes=["minify", "observation-mask", "dedupe"])

and inside a LangChain agent, before the model call:

>>> from tokprof.optimizers.live import message_transform
>>> chain = message_transform(["minify", "observation-mask"]) | chat_model

``history-budget`` live takes a ``summarizer``: a langchain-core chat model (or any
``callable(messages) -> str``) that writes the summary; summaries are memoised by the content they
summarise, so a block is summarised once and the prompt prefix stays stable until the next compaction.

Errors inside a transform never break the agent: they are reported once through
``tokprof.profiler.hooks.internal_error`` and the messages go through unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

from tokprof.optimizers.compression.common import digest, message_text
from tokprof.profiler.model import Message

DEFAULT_LIVE_PASSES = ("minify", "observation-mask", "dedupe")

SUMMARY_INSTRUCTIONS = (
    "Summarise the following part of a conversation between a user, an assistant and its tools, so the "
    "assistant can continue without it. Keep every decision, request, and open question. Copy every "
    "identifier, number, name, date and code verbatim. Be brief.")


def _pass_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    return dict(options.get(name) or options.get(name.replace("-", "_")) or {})


def chat_model_summarizer(model: Any, instructions: str = SUMMARY_INSTRUCTIONS) -> Callable[[list[Message]], str]:
    """A ``summarizer`` for ``history-budget`` backed by a langchain-core chat model, memoised by content."""
    memo: dict[str, str] = {}

    def summarize(messages: list[Message]) -> str:
        transcript = "\n".join(f"{m.get('role')}: {message_text(m)}" for m in messages)
        key = digest(transcript)
        if key not in memo:
            from langchain_core.messages import HumanMessage, SystemMessage

            reply = model.invoke([SystemMessage(content=instructions), HumanMessage(content=transcript)])
            content = getattr(reply, "content", reply)
            memo[key] = content if isinstance(content, str) else json.dumps(content, default=str)
        return memo[key]

    return summarize


class MessageCompressor:
    """A configured chain of compression passes for live use (``compress(messages, model)``)."""

    def __init__(self, passes: Sequence[str] = DEFAULT_LIVE_PASSES, options: dict[str, dict[str, Any]] | None = None,
                 *, summarizer: Any = None) -> None:
        import tokprof.optimizers.compression  # noqa: F401  (registers the passes)
        from tokprof.optimizers.base import make_pass

        options = dict(options or {})
        self.passes = []
        for name in passes:
            opts = _pass_options(name, options)
            if name == "history-budget" and summarizer is not None and "summarizer" not in opts:
                opts["summarizer"] = summarizer if not hasattr(summarizer, "invoke") else chat_model_summarizer(summarizer)
            p = make_pass(name, **opts)
            if not hasattr(p, "compress"):
                raise ValueError(f"pass {name!r} does not rewrite messages and cannot run live; "
                                 f"use one of the compression passes")
            self.passes.append(p)

    def compress(self, messages: list[Message], model: str | None = None) -> list[Message]:
        out = list(messages)
        for p in self.passes:
            try:
                out = p.compress(out, model).messages
            except Exception as exc:  # never break the user's agent
                from tokprof.profiler.hooks import internal_error

                internal_error(f"live {p.name}", exc)
        return out


def compress_messages(messages: Iterable[Message], passes: Sequence[str] = DEFAULT_LIVE_PASSES, *,
                      model: str | None = None, options: dict[str, dict[str, Any]] | None = None,
                      summarizer: Any = None, **pass_options: dict[str, Any]) -> list[Message]:
    """``messages`` (OpenAI chat format) rewritten by ``passes``; the input list is not modified.

    Options per pass: ``options={"observation-mask": {"keep_turns": 2}}`` or, equivalently, keyword
    arguments with underscores (``observation_mask={"keep_turns": 2}``)."""
    opts = dict(options or {})
    opts.update(pass_options)
    return MessageCompressor(passes, opts, summarizer=summarizer).compress(list(messages), model)


# ---- langchain-core -----------------------------------------------------------------------------------
def _to_dicts(messages: Sequence[Any]) -> list[Message]:
    from langchain_core.messages import convert_to_openai_messages

    out = convert_to_openai_messages(list(messages))
    return out if isinstance(out, list) else [out]


def _back(original: Sequence[Any], before: list[Message], after: list[Message]) -> list[Any]:
    """LangChain messages for ``after``: unchanged messages are the original objects; rewritten ones are
    copies with the new content; inserted ones are new messages."""
    from langchain_core.messages import convert_to_messages

    pool: dict[str, list[int]] = {}
    for i, m in enumerate(before):
        pool.setdefault(json.dumps(m, sort_keys=True, default=str), []).append(i)
    by_tool_id = {m.get("tool_call_id"): i for i, m in enumerate(before) if m.get("tool_call_id")}
    out: list[Any] = []
    for m in after:
        key = json.dumps(m, sort_keys=True, default=str)
        if pool.get(key):
            out.append(original[pool[key].pop(0)])
            continue
        src = by_tool_id.get(m.get("tool_call_id")) if m.get("tool_call_id") else None
        if src is not None and hasattr(original[src], "model_copy"):
            out.append(original[src].model_copy(update={"content": m.get("content")}))
            continue
        same_role = [i for i, b in enumerate(before) if b.get("role") == m.get("role")
                     and b.get("content") != m.get("content") and m.get("role") in ("system", "user")]
        if m.get("role") == "system" and same_role:
            out.append(original[same_role[0]].model_copy(update={"content": m.get("content")}))
            continue
        out.extend(convert_to_messages([m]))
    return out


def message_transform(passes: Sequence[str] = DEFAULT_LIVE_PASSES, *, model: str | None = None,
                      options: dict[str, dict[str, Any]] | None = None, summarizer: Any = None) -> Any:
    """A langchain-core ``RunnableLambda`` from ``list[BaseMessage]`` to the compressed ``list[BaseMessage]``,
    to put before the model call (``message_transform([...]) | chat_model``)."""
    from langchain_core.runnables import RunnableLambda

    compressor = MessageCompressor(passes, options, summarizer=summarizer)

    def transform(messages: Any) -> Any:
        if hasattr(messages, "to_messages"):  # a ChatPromptValue
            messages = messages.to_messages()
        msgs = list(messages)
        try:
            before = _to_dicts(msgs)
            after = compressor.compress(before, model)
            return msgs if after == before else _back(msgs, before, after)
        except Exception as exc:  # never break the user's agent
            from tokprof.profiler.hooks import internal_error

            internal_error("live message_transform", exc)
            return msgs

    return RunnableLambda(transform, name="tokprof_compress")
