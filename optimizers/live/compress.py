"""The message passes on one message list: what a live request goes through, usable on its own.

Every compression pass is a pure function of one call's message list (see
:mod:`tokprof.optimizers.compression.common`), so the code that rewrites recorded runs in simulation is the
code that runs live:

>>> from tokprof.optimizers.live import compress_messages
>>> messages = compress_messages(messages, passes=["minify", "observation-mask", "dedupe"])

and inside a LangChain agent, before the model call
(:func:`tokprof.optimizers.live.langchain.message_transform`):

>>> from tokprof.optimizers.live import message_transform
>>> chain = message_transform(["minify", "observation-mask"]) | chat_model

``history-budget`` takes a ``summarizer``: a langchain-core chat model (or any ``callable(messages) -> str``)
that writes the summary; summaries are memoised by the content they summarise, so a block is summarised
once and the prompt prefix stays stable until the next compaction.

Errors inside a pass never break the agent: they are reported once through
:func:`tokprof.profiler.hooks.internal_error` and the messages go through that pass unchanged.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable, Sequence

from tokprof.optimizers.base import make_pass
from tokprof.optimizers.compression.common import count_message_tokens, digest, message_text
from tokprof.profiler.policy import internal_error
from tokprof.profiler.model import Message
from tokprof.profiler.providers.chat_format import count_prompt

DEFAULT_MESSAGE_PASSES: tuple[str, ...] = ("dedupe",)
"""The lossless message pass, the default of :func:`compress_messages`."""

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


def tokens_of(messages: list[Message], model: str | None) -> tuple[int, str]:
    """Input tokens of the prompt ``messages`` as ``model``'s provider bills them (per-prompt overhead
    included), and how they were counted (``counted``/``estimated``)."""
    try:
        pc = count_prompt(messages, model or "gpt-4o")
        return pc.tokens, pc.source
    except Exception as exc:  # a tokenizer failure must not stop the pass: fall back, labelled
        internal_error("live: counting a prompt", exc)
    counts, _ = count_message_tokens(messages, model)
    return sum(counts), "estimated"


class MessageCompressor:
    """A configured chain of message passes (``compress(messages, model)``), in the order given."""

    def __init__(self, passes: Sequence[str] = DEFAULT_MESSAGE_PASSES,
                 options: dict[str, dict[str, Any]] | None = None, *, summarizer: Any = None) -> None:
        options = dict(options or {})
        self.passes: list[Any] = []
        for name in passes:
            opts = _pass_options(name, options)
            if name == "history-budget" and summarizer is not None and "summarizer" not in opts:
                opts["summarizer"] = summarizer if not hasattr(summarizer, "invoke") else chat_model_summarizer(summarizer)
            p = make_pass(name, **opts)
            if not hasattr(p, "compress"):
                raise ValueError(f"pass {name!r} does not rewrite messages and cannot run on a message list; "
                                 f"use one of the compression passes")
            self.passes.append(p)

    def compress(self, messages: list[Message], model: str | None = None) -> list[Message]:
        """``messages`` after every pass (the input list is not modified)."""
        return self.rewrite(messages, model, count=False)[0]

    def rewrite(self, messages: list[Message], model: str | None = None, *,
                count: bool = True) -> tuple[list[Message], dict[str, dict[str, Any]]]:
        """``messages`` after every pass, and what each pass that changed them did: tokens before and after
        (counted with ``model``'s tokenizer, with the source of the count) and characters removed."""
        out = list(messages)
        deltas: dict[str, dict[str, Any]] = {}
        tokens, source = tokens_of(out, model) if count else (0, "counted")
        for p in self.passes:
            try:
                new = p.compress(list(out), model).messages
            except Exception as exc:  # never break the user's agent: this pass is skipped
                internal_error(f"live {p.name}", exc)
                continue
            if new == out:
                continue
            chars = sum(len(message_text(m)) for m in out) - sum(len(message_text(m)) for m in new)
            if count:
                after, source = tokens_of(new, model)
                deltas[p.name] = {"tokens_before": tokens, "tokens_after": after, "source": source,
                                  "chars_removed": chars}
                tokens = after
            else:
                deltas[p.name] = {"chars_removed": chars}
            out = new
        return out, deltas


def compress_messages(messages: Iterable[Message], passes: Sequence[str] = DEFAULT_MESSAGE_PASSES, *,
                      model: str | None = None, options: dict[str, dict[str, Any]] | None = None,
                      summarizer: Any = None, **pass_options: dict[str, Any]) -> list[Message]:
    """``messages`` (OpenAI chat format) rewritten by ``passes``; the input list is not modified.

    Options per pass: ``options={"observation-mask": {"keep_turns": 2}}`` or, equivalently, keyword
    arguments with underscores (``observation_mask={"keep_turns": 2}``)."""
    opts = dict(options or {})
    opts.update(pass_options)
    return MessageCompressor(passes, opts, summarizer=summarizer).compress(list(messages), model)
