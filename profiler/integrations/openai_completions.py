"""OpenAI legacy text completions (``client.completions.create``, sync and async, streamed or not), and the
SDK's whole patch (``patch()``: chat, responses, embeddings, legacy completions) that ``instrument("openai")`` runs.

Still used by instruct models, fill-in-the-middle code models and many OpenAI-compatible local servers (vLLM,
llama.cpp, Ollama). The prompt (a string, or a list of strings) becomes a user message and the first choice's
``text`` the assistant reply. Usage is the chat dialect (``prompt_tokens``, ``completion_tokens``:
https://platform.openai.com/docs/api-reference/completions/object); a stream carries it only with
``stream_options={"include_usage": True}``, which is added (and its usage-only chunk hidden) as for chat.
"""

from __future__ import annotations

from typing import Any, Callable

from tokprof.profiler.integrations import _sdk, usage_dialects
from tokprof.profiler.integrations.openai import (
    ChatAdapter, as_plain, chat_usage, is_given, record_reported_cost
)
from tokprof.profiler.model import LLMCall, Message
from tokprof.profiler.providers.prices import pick_model

_PARAMS = ("temperature", "top_p", "max_tokens", "stop", "seed", "n", "best_of", "echo", "suffix",
           "frequency_penalty", "presence_penalty", "logit_bias", "logprobs")


def _prompt_messages(prompt: Any) -> list[Message]:
    if not is_given(prompt) or prompt is None:
        return []
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if isinstance(prompt, (list, tuple)) and prompt and all(isinstance(p, int) for p in prompt):
        return [{"role": "user", "content": f"[{len(prompt)} tokens]"}]
    return [m for p in prompt for m in _prompt_messages(p)]


class _TextAccumulator:
    """Joins a streamed completion's text (choice 0) and keeps the final usage."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.usage: Any = None
        self.finish_reason: str | None = None
        self.response_id: str | None = None
        self.model: str | None = None

    def observe(self, chunk: Any) -> None:
        self.response_id = getattr(chunk, "id", None) or self.response_id
        self.model = getattr(chunk, "model", None) or self.model
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        elif self.usage is None:
            # Groq's final chunk carries x_groq.usage on this route too, whether or not include_usage was sent
            self.usage = usage_dialects.vendor_stream_usage(chunk)
        for choice in getattr(chunk, "choices", None) or []:
            if getattr(choice, "index", 0) != 0:
                continue
            if getattr(choice, "text", None):
                self.text.append(choice.text)
            if getattr(choice, "finish_reason", None):
                self.finish_reason = choice.finish_reason

    def finish(self, call: LLMCall) -> None:
        call.output = {"role": "assistant", "content": "".join(self.text)}
        call.finish_reason = self.finish_reason
        call.response_id = self.response_id
        call.model = pick_model(call.model, self.model)
        if self.usage is not None:
            call.usage = chat_usage(self.usage)
            record_reported_cost(call, self.usage)


class CompletionsAdapter(ChatAdapter):
    api = "openai.completions"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        return LLMCall(
            provider="openai",
            model=str(kwargs.get("model")) if is_given(kwargs.get("model")) else None,
            params={k: as_plain(kwargs[k]) for k in _PARAMS if is_given(kwargs.get(k))},
            messages=_prompt_messages(kwargs.get("prompt")),
        )

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return super().prepare_stream(kwargs)  # same stream_options rule as chat

    def fill(self, call: LLMCall, response: Any) -> None:
        acc = _TextAccumulator()
        acc.observe(response)
        acc.finish(call)

    def accumulator(self) -> _TextAccumulator:  # type: ignore[override]
        return _TextAccumulator()


def patch_legacy_completions() -> list[_sdk.Patch]:
    from openai.resources.completions import AsyncCompletions, Completions

    adapter, name = CompletionsAdapter(), "openai.completions.create"
    patches: list[_sdk.Patch] = []
    try:
        patches.append(_sdk.patch(Completions, "create", lambda f: _sdk.sync_create(adapter, f, name)))
        patches.append(_sdk.patch(AsyncCompletions, "create", lambda f: _sdk.async_create(adapter, f, name)))
        for owner in (Completions, AsyncCompletions):
            patches.extend(_sdk.patch_raw_accessors(owner))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches


def patch() -> list[_sdk.Patch]:
    """What ``instrument("openai")`` runs: chat completions and responses (:func:`.openai.patch`), plus
    embeddings (:mod:`.embeddings`) and legacy text completions (here)."""
    from openai.resources.embeddings import AsyncEmbeddings, Embeddings

    from tokprof.profiler.integrations import embeddings, openai as _openai

    patches = _openai.patch()
    try:
        patches.extend(embeddings.patch_openai_like(
            Embeddings, AsyncEmbeddings, embeddings.OpenAIEmbeddingsAdapter(), "openai.embeddings.create"))
        patches.extend(patch_legacy_completions())
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
