"""Embedding calls: ``llm`` spans of their own kind (``llm.operation = "embeddings"``), input tokens only.

A RAG agent pays for every text it embeds; untraced, that spend showed as $0. Each embedding request is one
``llm`` span whose call holds the embedded texts as user messages (so a report can show them), no output,
and usage ``input_tokens`` = what the provider billed, ``output_tokens`` = 0:

* OpenAI-compatible (OpenAI, Azure OpenAI, Volcengine Ark, Zhipu, DashScope compatible mode...): ``usage``
  ``{prompt_tokens, total_tokens}`` (https://platform.openai.com/docs/api-reference/embeddings/object);
  Zhipu also sends ``completion_tokens`` (0) (https://docs.bigmodel.cn/api-reference/模型-api/文本嵌入).
* DashScope native ``TextEmbedding.call``: ``usage.total_tokens``
  (https://help.aliyun.com/zh/model-studio/text-embedding-synchronous-api).
* Gemini API ``embed_content``: no usage at all (https://ai.google.dev/api/embeddings); Vertex AI sends
  ``statistics.token_count`` per embedding. Without it the texts are counted locally with the model's
  tokenizer, labelled ``counted`` (exact tokenizer) or ``estimated``.

The span's attribute tells every consumer that this is not a chat turn: the provider caches nothing on
embedding endpoints (the cache rules say ``mode: none`` for embedding models) and nothing is "history".
"""

from __future__ import annotations

from typing import Any, Callable

from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations.openai import as_plain, is_given
from tokprof.profiler.model import LLMCall, Message, Usage
from tokprof.profiler.providers.prices import pick_model
from tokprof.profiler.providers.tokenizers import tokenizer_for

OPERATION = "embeddings"
"""The value of ``keys.LLM_OPERATION`` on an embedding span."""


def _texts(value: Any) -> list[str]:
    """The embedded inputs as texts: a string, a list of strings, or token arrays (shown as a count)."""
    if value is None or not is_given(value):
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, int) for v in value):  # one pre-tokenized input
            return [f"[{len(value)} tokens]"]
        return [t for v in value for t in _texts(v)]
    plain = as_plain(value)
    if isinstance(plain, dict):  # a genai Content / part dict: its text parts
        if isinstance(plain.get("text"), str):
            return [plain["text"]]
        return [t for p in plain.get("parts") or [] for t in _texts(p)]
    return [str(plain)]


def counted_usage(texts: list[str], model: str | None) -> Usage:
    """Input tokens counted locally (no chat overhead: an embedding input is a plain text)."""
    choice = tokenizer_for(model)
    usage = Usage()
    usage.set("input_tokens", sum(choice.count(t) for t in texts), "counted" if choice.exact else "estimated")
    usage.set("output_tokens", 0, "counted")
    return usage


def provider_usage(raw: Any) -> Usage | None:
    """Usage from an embedding response's usage block (any of the dialects above); ``None`` when it has no
    input count (counted locally instead: partial usage is never taken as truth)."""
    u = as_plain(raw)
    if not isinstance(u, dict):
        return None
    prompt = u.get("prompt_tokens", u.get("input_tokens"))
    total = u.get("total_tokens")
    if not isinstance(prompt, int):
        prompt = total  # DashScope native: total_tokens only, all of it input
    if not isinstance(prompt, int) or prompt < 0:
        return None
    usage = Usage()
    usage.set("input_tokens", prompt, "provider")
    out = u.get("completion_tokens")
    if not isinstance(out, int):
        out = total - prompt if isinstance(total, int) and total >= prompt else 0
    usage.set("output_tokens", out, "provider")  # an embedding has no output: the block says 0 (or total - prompt)
    return usage


def _call(provider: str, model: Any, texts: list[str], params: dict[str, Any]) -> LLMCall:
    messages: list[Message] = [{"role": "user", "content": t} for t in texts]
    return LLMCall(provider=provider, model=str(model) if is_given(model) and model else None,
                   params=params, messages=messages)


class OpenAIEmbeddingsAdapter:
    """``embeddings.create`` of the OpenAI SDK and its forks (Azure, Ark, zai-sdk)."""

    operation = OPERATION

    def __init__(self, provider: str = "openai", api: str = "openai.embeddings") -> None:
        self.provider, self.api = provider, api

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        params = {k: as_plain(kwargs[k]) for k in ("dimensions", "encoding_format") if is_given(kwargs.get(k))}
        return _call(self.provider, kwargs.get("model"), _texts(kwargs.get("input")), params)

    def prepare_stream(self, kwargs: dict[str, Any]) -> tuple[dict[str, Any], Callable[[Any], bool] | None]:
        return kwargs, None  # embeddings never stream

    def fill(self, call: LLMCall, response: Any) -> None:
        call.model = pick_model(call.model, getattr(response, "model", None))
        usage = provider_usage(getattr(response, "usage", None))
        call.usage = usage if usage is not None else counted_usage(_texts_of(call), call.model)

    def accumulator(self) -> Any:
        raise TypeError("embeddings do not stream")


def _texts_of(call: LLMCall) -> list[str]:
    return [m.get("content") for m in call.messages if isinstance(m.get("content"), str)]  # type: ignore[misc]


class GeminiEmbedAdapter(OpenAIEmbeddingsAdapter):
    """google-genai ``models.embed_content`` (sync and ``aio``)."""

    def __init__(self) -> None:
        super().__init__("google", "google.models.embed_content")

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        config = as_plain(kwargs.get("config")) if is_given(kwargs.get("config")) else {}
        params = {k: config[k] for k in ("task_type", "output_dimensionality") if isinstance(config, dict) and k in config}
        return _call(self.provider, kwargs.get("model"), _texts(kwargs.get("contents")), params)

    def fill(self, call: LLMCall, response: Any) -> None:
        counts = [getattr(getattr(e, "statistics", None), "token_count", None)
                  for e in getattr(response, "embeddings", None) or []]
        if counts and all(isinstance(c, (int, float)) for c in counts):  # Vertex AI reports them
            call.usage = Usage()
            call.usage.set("input_tokens", int(sum(c for c in counts if c is not None)), "provider")
            call.usage.set("output_tokens", 0, "provider")
        else:  # the Gemini API reports no usage for embeddings
            call.usage = counted_usage(_texts_of(call), call.model)


class DashScopeEmbedAdapter(OpenAIEmbeddingsAdapter):
    """DashScope native ``TextEmbedding.call`` (a classmethod; errors are returned, not raised)."""

    def __init__(self) -> None:
        super().__init__("alibaba", "dashscope.text_embedding")

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        params = {k: kwargs[k] for k in ("dimension", "text_type", "output_type") if kwargs.get(k) is not None}
        return _call(self.provider, kwargs.get("model"), _texts(kwargs.get("input")), params)

    def fill(self, call: LLMCall, response: Any) -> None:
        status = getattr(response, "status_code", 200)
        usage = provider_usage(getattr(response, "usage", None)) if status == 200 else None
        if status != 200:
            call.finish_reason = f"error {status}: {getattr(response, 'code', '')}"
            call.usage = Usage()
            return
        call.usage = usage if usage is not None else counted_usage(_texts_of(call), call.model)


def _wrap(adapter: Any, original: Callable[..., Any], name: str, *, is_async: bool) -> Callable[..., Any]:
    """A recording wrapper of a keyword-called method (genai's ``embed_content``): no streams, and tokprof's
    live middleware stays out (``_sdk.begin`` skips it for an adapter with an ``operation``)."""
    import functools

    if is_async:
        @functools.wraps(original)
        async def acall(self: Any, *args: Any, **kwargs: Any) -> Any:
            state = _sdk.begin(adapter, kwargs, name=name, resource=self)
            try:
                result = await original(self, *args, **kwargs)
            except BaseException as exc:
                state.fail(exc)
                raise
            return state.finish(result)
        acall.__tokprof_original__ = original  # type: ignore[attr-defined]
        return acall

    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(adapter, kwargs, name=name, resource=self)
        try:
            result = original(self, *args, **kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        return state.finish(result)
    call.__tokprof_original__ = original  # type: ignore[attr-defined]
    return call


def _dashscope_call(original: Any, name: str) -> Callable[..., Any]:
    """``TextEmbedding.call(model, input, ...)``: the inner function of a layered classmethod."""
    adapter = DashScopeEmbedAdapter()

    def call(cls: type, *args: Any, **kwargs: Any) -> Any:
        bound = original.__get__(None, cls)
        view = {**dict(zip(("model", "input"), args)), **kwargs}
        state = _sdk.begin(adapter, view, name=name)
        try:
            result = bound(*args, **kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        return state.finish(result)
    return call


# ---------------------------------------------------------------------------------------------------
# patches (called from each SDK's own patch())
# ---------------------------------------------------------------------------------------------------
def patch_openai_like(sync_owner: type, async_owner: type | None, adapter: OpenAIEmbeddingsAdapter,
                      name: str) -> list[_sdk.Patch]:
    """Patch ``create`` of an OpenAI-shaped ``Embeddings`` / ``AsyncEmbeddings`` pair (raw accessors too)."""
    patches: list[_sdk.Patch] = []
    try:
        patches.append(_sdk.patch(sync_owner, "create",
                                  lambda f: _sdk.sync_create(adapter, f, name)))
        if async_owner is not None:
            patches.append(_sdk.patch(async_owner, "create",
                                      lambda f: _sdk.async_create(adapter, f, name)))
        for owner in (sync_owner, async_owner):
            if owner is not None:
                patches.extend(_sdk.patch_raw_accessors(owner))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches


def patch_gemini() -> list[_sdk.Patch]:
    from google.genai.models import AsyncModels, Models

    adapter, name = GeminiEmbedAdapter(), "google.models.embed_content"
    patches: list[_sdk.Patch] = []
    try:
        patches.append(_sdk.patch(Models, "embed_content", lambda f: _wrap(adapter, f, name, is_async=False)))
        patches.append(_sdk.patch(AsyncModels, "embed_content", lambda f: _wrap(adapter, f, name, is_async=True)))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches


def patch_dashscope() -> list[_sdk.Patch]:
    """``TextEmbedding.call`` is a classmethod: installed as a layered classmethod like ``Generation.call``."""
    from dashscope import TextEmbedding
    from tokprof.profiler.integrations.dashscope import patch_classmethod

    return [patch_classmethod(TextEmbedding, "call", _dashscope_call, "dashscope.TextEmbedding.call")]


class LiteLLMEmbedAdapter(OpenAIEmbeddingsAdapter):
    """``litellm.embedding`` / ``aembedding``: litellm posts the request itself (it bypasses the OpenAI SDK's
    ``embeddings.create``), so the call is recorded at litellm's level, from its ``EmbeddingResponse``."""

    def __init__(self) -> None:
        super().__init__("litellm", "litellm.embedding")

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        call = super().request(kwargs)
        model = str(kwargs.get("model") or "")
        if "/" in model:  # "openai/text-embedding-3-small" -> provider openai (what the price table knows)
            call.provider, call.model = model.split("/", 1)
        return call

    def fill(self, call: LLMCall, response: Any) -> None:
        model = call.model
        super().fill(call, response)
        call.model = model if model and call.model and "/" in str(call.model) else call.model


def litellm_wrapper(original: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
    """Wrap ``litellm.embedding`` (or ``aembedding``); an SDK call underneath sees an ``llm`` parent and
    only passes its usage up (never recorded twice)."""
    import functools

    from tokprof.profiler import hooks

    adapter = LiteLLMEmbedAdapter()
    name = "litellm.aembedding" if is_async else "litellm.embedding"

    if is_async:
        @functools.wraps(original)
        async def aembedding(*args: Any, **kwargs: Any) -> Any:
            state = _sdk.begin(adapter, kwargs, name=name)
            token = hooks.activate(state.span) if state.span is not None and state.enriches is None else None
            try:
                result = await original(*args, **kwargs)
            except BaseException as exc:
                state.fail(exc)
                raise
            finally:
                if token is not None:
                    hooks.deactivate(token)
            _sdk.take_sdk_usage(state.span)  # an SDK call underneath (encoding_format given) passed it up
            return state.finish(result)
        aembedding.__tokprof_original__ = original  # type: ignore[attr-defined]
        return aembedding

    @functools.wraps(original)
    def embedding(*args: Any, **kwargs: Any) -> Any:
        state = _sdk.begin(adapter, kwargs, name=name)
        token = hooks.activate(state.span) if state.span is not None and state.enriches is None else None
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            state.fail(exc)
            raise
        finally:
            if token is not None:
                hooks.deactivate(token)
        # an SDK call underneath (litellm uses the OpenAI SDK when encoding_format is given) passed its usage
        # up: litellm's response carries the same counts, so it is only taken off the stash
        _sdk.take_sdk_usage(state.span)
        return state.finish(result)
    embedding.__tokprof_original__ = original  # type: ignore[attr-defined]
    return embedding
