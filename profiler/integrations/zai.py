"""Zhipu GLM through Z.ai's own SDK (``pip install zai-sdk``): ``ZaiClient(...)`` / ``ZhipuAiClient(...)``
``.chat.completions.create``, streamed or not.

The SDK answers in OpenAI's chat shape, so the OpenAI chat adapter reads requests and responses; usage is
OpenAI-shaped too (``prompt_tokens`` with the cache included, ``completion_tokens``,
``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``;
https://docs.z.ai/api-reference/llm/chat-completion, https://docs.z.ai/guides/capabilities/cache). A stream
sends the usage on its last chunk without being asked (the SDK has no ``stream_options``), so the request is
left as it is. The SDK's stream object (``StreamResponse``) iterates ``_stream_chunks``; that iterator is
swapped for one that watches the chunks go by, so the caller keeps the very same object.

``chat.asyncCompletions`` is GLM's submit-and-poll task API (not asyncio): it is not instrumented.
"""

from __future__ import annotations

from typing import Any, Callable

from tokprof.profiler.hooks import internal_error
from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations.openai import ChatAdapter
from tokprof.profiler.model import LLMCall

PROVIDER = "zhipu"


class ZaiChatAdapter(ChatAdapter):
    api = "zai.chat.completions"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        call = super().request(kwargs)
        call.provider = PROVIDER
        return call

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # GLM's last chunk carries the usage; create() has no stream_options to add


def _wrap_stream(state: _sdk.CallState, stream: Any) -> Any:
    acc = None
    try:
        acc = state.adapter.accumulator()
        stream._stream_chunks = _sdk.observe_sync(state, acc, stream._stream_chunks)
    except Exception as exc:
        internal_error(f"{state.adapter.api} stream", exc)
        state.end_stream(acc, None, False)
    return stream


def _create(adapter: ZaiChatAdapter, original: Callable[..., Any], name: str) -> Callable[..., Any]:
    return _sdk.sync_create(adapter, original, name, stream_wrapper=_wrap_stream)


def patch() -> list[_sdk.Patch]:
    """Patch zai-sdk's ``Completions.create``."""
    from zai.api_resource.chat.completions import Completions

    from zai.api_resource.embeddings import Embeddings

    from tokprof.profiler.integrations import embeddings

    chat = ZaiChatAdapter()
    patches = [_sdk.patch(Completions, "create", lambda f: _create(chat, f, "zai.chat.completions.create"))]
    try:  # zai-sdk has no async client (0.2.x): sync embeddings only
        patches.extend(embeddings.patch_openai_like(
            Embeddings, None, embeddings.OpenAIEmbeddingsAdapter(PROVIDER, "zai.embeddings"), "zai.embeddings.create"))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
