"""ByteDance Doubao through the Volcengine Ark runtime SDK (``pip install volcengine-python-sdk[ark]``, module
``volcenginesdkarkruntime``): ``Ark(...).chat.completions.create`` and ``AsyncArk``'s, streamed or not.

The Ark runtime is a fork of the OpenAI SDK (same resource classes, same ``Stream`` with an ``_iterator``, same
raw-response header), so the OpenAI chat adapter and wrappers are reused; only the provider label and the API
name differ. Usage is OpenAI-shaped (https://www.volcengine.com/docs/82379/1494384): ``prompt_tokens``
(cache included), ``completion_tokens`` (reasoning included), ``prompt_tokens_details.cached_tokens``,
``completion_tokens_details.reasoning_tokens``. A stream carries usage only with
``stream_options={"include_usage": True}``: when the caller did not set it, it is added and the extra
usage-only chunk is hidden from the caller, as for OpenAI.
"""

from __future__ import annotations

from typing import Any

from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations.openai import ChatAdapter, ResponsesAdapter
from tokprof.profiler.model import LLMCall

PROVIDER = "bytedance"


class ArkChatAdapter(ChatAdapter):
    api = "ark.chat.completions"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        call = super().request(kwargs)
        call.provider = PROVIDER
        return call


class ArkResponsesAdapter(ResponsesAdapter):
    """Ark's Responses API (``Ark(...).responses.create``), OpenAI's shape and usage block
    (``input_tokens``, ``input_tokens_details.cached_tokens``, ``output_tokens``...):
    https://www.volcengine.com/docs/82379/1569618"""

    api = "ark.responses"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        call = super().request(kwargs)
        call.provider = PROVIDER
        return call


def patch() -> list[_sdk.Patch]:
    """Patch the Ark runtime's ``Completions.create`` and ``AsyncCompletions.create``."""
    from volcenginesdkarkruntime.resources.chat.completions import AsyncCompletions, Completions

    chat = ArkChatAdapter()
    name = "ark.chat.completions.create"
    patches: list[_sdk.Patch] = []
    try:
        patches.append(_sdk.patch(Completions, "create", lambda f: _sdk.sync_create(chat, f, name)))
        patches.append(_sdk.patch(AsyncCompletions, "create", lambda f: _sdk.async_create(chat, f, name)))
        for owner in (Completions, AsyncCompletions):
            patches.extend(_sdk.patch_raw_accessors(owner))
        from volcenginesdkarkruntime.resources.responses import AsyncResponses, Responses

        responses, rname = ArkResponsesAdapter(), "ark.responses.create"
        patches.append(_sdk.patch(Responses, "create", lambda f: _sdk.sync_create(responses, f, rname)))
        patches.append(_sdk.patch(AsyncResponses, "create", lambda f: _sdk.async_create(responses, f, rname)))
        from volcenginesdkarkruntime.resources.embeddings import AsyncEmbeddings, Embeddings

        from tokprof.profiler.integrations import embeddings

        patches.extend(embeddings.patch_openai_like(
            Embeddings, AsyncEmbeddings, embeddings.OpenAIEmbeddingsAdapter(PROVIDER, "ark.embeddings"),
            "ark.embeddings.create"))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
