"""The live layer on LangChain: chat models' requests rewritten inside a live block, and the block's
response cache.

While a live session is active, ``BaseChatModel.generate``/``agenerate`` are wrapped so the passes run
*before* LangChain's callbacks (the profiler records the prompt that was really sent). Messages are
converted to OpenAI format, rewritten by :meth:`LiveSession.rewrite`, and converted back: an unchanged
message is the caller's own object; a rewritten one is a copy with the new content; the prompt-cache
plan's breakpoints become ``cache_control`` on the last content block of the planned messages.

langchain-core is imported inside the functions: this module is loaded with ``tokprof`` and must not
make every import of it pay for langchain.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from typing import Any, Sequence

import tokprof.optimizers.response_cache as response_cache
from tokprof.optimizers.live.compress import MessageCompressor
from tokprof.optimizers.live.session import LiveSession, current_session, expect_requests, forget_requests
from tokprof.profiler import keys
from tokprof.profiler.policy import internal_error
from tokprof.profiler.model import Message


# ---- conversion --------------------------------------------------------------------------------------
def to_dicts(messages: Sequence[Any]) -> list[Message]:
    """LangChain messages as OpenAI-format dicts (the format every pass reads)."""
    from langchain_core.messages import convert_to_openai_messages

    out = convert_to_openai_messages(list(messages))
    return out if isinstance(out, list) else [out]


def back(original: Sequence[Any], before: list[Message], after: list[Message]) -> list[Any]:
    """LangChain messages for ``after``: unchanged messages are the original objects; rewritten ones are
    copies with the new content; inserted ones are new messages."""
    from langchain_core.messages import convert_to_messages

    if len(after) == len(before):
        # Same shape (the usual case): message i is message i, rewritten or not.
        out = []
        for m, b, a in zip(original, before, after):
            new = a.get("content")
            if a == b or new == b.get("content") or not hasattr(m, "model_copy"):
                out.append(m)
            else:
                out.append(m.model_copy(update={"content": new}))
        return out
    pool: dict[str, list[int]] = {}
    for i, m in enumerate(before):
        pool.setdefault(json.dumps(m, sort_keys=True, default=str), []).append(i)
    by_tool_id = {m.get("tool_call_id"): i for i, m in enumerate(before) if m.get("tool_call_id")}
    out = []
    for m in after:
        key = json.dumps(m, sort_keys=True, default=str)
        if pool.get(key):
            out.append(original[pool[key].pop(0)])
            continue
        src = by_tool_id.get(m.get("tool_call_id")) if m.get("tool_call_id") else None
        if src is not None and hasattr(original[src], "model_copy"):
            out.append(original[src].model_copy(update={"content": m.get("content")}))
            continue
        if m.get("role") == "system":  # a rewritten system prompt (history-budget's summary goes there)
            same = [i for i, b in enumerate(before) if b.get("role") == "system"]
            if same and hasattr(original[same[0]], "model_copy"):
                out.append(original[same[0]].model_copy(update={"content": m.get("content")}))
                continue
        out.extend(convert_to_messages([m]))
    return out


def mark(message: Any, ttl: str = "5m") -> Any:
    """A copy of ``message`` whose last content block carries a ``cache_control`` breakpoint."""
    content = message.content
    blocks: list[dict[str, Any]] = (
        [{"type": "text", "text": content}] if isinstance(content, str) else [dict(b) for b in content])
    if not blocks:
        return message
    marker: dict[str, Any] = {"type": "ephemeral"}
    if ttl == "1h":
        marker["ttl"] = "1h"
    blocks[-1] = {**blocks[-1], "cache_control": marker}
    return message.model_copy(update={"content": blocks})


def model_name(model: Any) -> str | None:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def rewrite_messages(session: LiveSession, messages: list[Any], model: str | None = None,
                     provider: str | None = None) -> tuple[list[Any], dict[str, Any]]:
    """One request's LangChain messages after the session's passes, and the per-pass record."""
    before = to_dicts(messages)
    rw = session.rewrite(before, model, provider)
    out = back(messages, before, rw.messages)
    for i in rw.plan.get("breakpoints", ()):
        if 0 <= i < len(out):
            out[i] = mark(out[i], rw.plan.get("ttl", "5m"))
    return out, rw.deltas


def _rewrite_batch(chat_model: Any, batch: list[list[Any]]) -> tuple[list[list[Any]], Any]:
    live = current_session()
    if live is None:
        return batch, None
    try:
        name = model_name(chat_model)
        provider = getattr(chat_model, "provider", None)
        done = [rewrite_messages(live, list(messages), name, provider if isinstance(provider, str) else None)
                for messages in batch]
        live.bump("requests", "transformed", len(done))
        token = expect_requests([(len(msgs), deltas) for msgs, deltas in done])
        return [msgs for msgs, _ in done], token
    except Exception as exc:  # never break the agent: send the messages unchanged
        internal_error("live message transforms", exc)
        return batch, None


# ---- patching BaseChatModel while a live block is active -------------------------------------------------
_patch_lock = threading.Lock()
_patch_depth = 0
_originals: dict[str, Any] = {}


def patch_models() -> None:
    """Wrap ``BaseChatModel.generate``/``agenerate`` (reference-counted across nested blocks)."""
    global _patch_depth
    from langchain_core.language_models.chat_models import BaseChatModel

    with _patch_lock:
        _patch_depth += 1
        if _patch_depth > 1:
            return
        generate, agenerate = BaseChatModel.generate, BaseChatModel.agenerate
        _originals["generate"], _originals["agenerate"] = generate, agenerate

        def live_generate(self: Any, messages: list[list[Any]], *args: Any, **kwargs: Any) -> Any:
            batch, token = _rewrite_batch(self, messages)
            try:
                return generate(self, batch, *args, **kwargs)
            finally:
                if token is not None:
                    forget_requests(token)

        async def live_agenerate(self: Any, messages: list[list[Any]], *args: Any, **kwargs: Any) -> Any:
            batch, token = _rewrite_batch(self, messages)
            try:
                return await agenerate(self, batch, *args, **kwargs)
            finally:
                if token is not None:
                    forget_requests(token)

        BaseChatModel.generate = live_generate  # type: ignore[method-assign]
        BaseChatModel.agenerate = live_agenerate  # type: ignore[method-assign]


def unpatch_models() -> None:
    global _patch_depth
    from langchain_core.language_models.chat_models import BaseChatModel

    with _patch_lock:
        _patch_depth -= 1
        if _patch_depth == 0 and _originals:
            BaseChatModel.generate = _originals.pop("generate")  # type: ignore[method-assign]
            BaseChatModel.agenerate = _originals.pop("agenerate")  # type: ignore[method-assign]


# ---- the response cache of a block --------------------------------------------------------------------
def open_response_cache() -> Any:
    """A LangChain ``BaseCache`` for one block, empty at its start (a cache that outlived the block would
    make a re-run look free): :class:`tokprof.optimizers.response_cache.TokprofLLMCache` on a temporary
    store. It serves only deterministic requests (temperature 0 or a seed); a hit reports zero billed
    tokens and is marked as a hit. ``None`` (logged) if the store cannot be opened: the block then runs
    without a response cache."""
    try:
        base: Any = response_cache.TokprofLLMCache

        class LiveLLMCache(base):
            def lookup(self, prompt: str, llm_string: str) -> Any:
                return _served(super().lookup(prompt, llm_string))

            def discard(self) -> None:
                self.store.close()
                shutil.rmtree(self.store.directory, ignore_errors=True)

        folder = tempfile.mkdtemp(prefix="tokprof-live-cache-")
        return LiveLLMCache(response_cache.ResponseCache(folder, namespace="live"))
    except Exception as exc:
        internal_error("opening the live response cache", exc)
        return None


def _served(hit: Any) -> Any:
    if hit is None:
        return None
    live = current_session()
    if live is not None:
        live.bump("response-cache", "hits")
    return [_zero_usage(g) for g in hit]


def _zero_usage(gen: Any) -> Any:
    message = getattr(gen, "message", None)
    if message is None or getattr(message, "usage_metadata", None) is None:
        return gen
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0,
             "input_token_details": {"cache_read": 0, "cache_creation": 0}}
    meta = {**(message.response_metadata or {}), keys.RESPONSE_CACHE_MARK: "hit"}
    return gen.model_copy(update={"message": message.model_copy(
        update={"usage_metadata": usage, "response_metadata": meta})})


def enter(session: LiveSession) -> None:
    """Switch the LangChain side of ``session`` on: the response cache and the model wrappers."""
    if "response-cache" in session.passes:
        from langchain_core.globals import get_llm_cache, set_llm_cache

        session.cache = open_response_cache()
        if session.cache is not None:
            session.previous_cache = get_llm_cache()
            set_llm_cache(session.cache)
    if any(n != "response-cache" for n in session.passes):
        patch_models()


def exit(session: LiveSession) -> None:  # noqa: A001 - the pair of enter()
    """Undo :func:`enter`."""
    if session.cache is not None:
        from langchain_core.globals import set_llm_cache

        set_llm_cache(session.previous_cache)
        discard = getattr(session.cache, "discard", None)
        if discard is not None:
            try:
                discard()
            except Exception as exc:
                internal_error("closing the live response cache", exc)
    if any(n != "response-cache" for n in session.passes):
        unpatch_models()


def message_transform(passes: Sequence[str], *, model: str | None = None,
                      options: dict[str, dict[str, Any]] | None = None, summarizer: Any = None) -> Any:
    """A langchain-core ``RunnableLambda`` from ``list[BaseMessage]`` to the rewritten ``list[BaseMessage]``,
    to put before the model call (``message_transform(["minify", "observation-mask"]) | chat_model``). The
    message passes run in the order given (see :class:`tokprof.optimizers.live.compress.MessageCompressor`)."""
    from langchain_core.runnables import RunnableLambda

    compressor = MessageCompressor(passes, options, summarizer=summarizer)

    def transform(messages: Any) -> Any:
        if hasattr(messages, "to_messages"):  # a ChatPromptValue
            messages = messages.to_messages()
        msgs = list(messages)
        try:
            before = to_dicts(msgs)
            after = compressor.compress(before, model)
            return msgs if after == before else back(msgs, before, after)
        except Exception as exc:  # never break the user's agent
            internal_error("live message_transform", exc)
            return msgs

    return RunnableLambda(transform, name="tokprof_compress")
