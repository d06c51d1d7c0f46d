"""The response cache in front of a client: a LangChain ``BaseCache`` (built on first use) and
:func:`cached_client` for OpenAI-style SDK clients, whose cache hits say they were served by the cache."""

from __future__ import annotations

import re
from typing import Any, Sequence
from tokprof.optimizers.billing import request_digest
from tokprof.profiler.policy import internal_error
from tokprof.profiler.integrations._sdk import served_copy
from tokprof.optimizers.response_store import ResponseCache


# -- LangChain --------------------------------------------------------------------------------------
_LC_TEMPERATURE = re.compile(r"""['"]temperature['"]\s*[,:]\s*([0-9.]+)""")


_LC_SEED = re.compile(r"""['"]seed['"]\s*[,:]\s*(\d+)""")


def _lc_params(llm_string: str) -> dict[str, Any]:
    """Sampling parameters as LangChain serialises them into ``llm_string``."""
    out: dict[str, Any] = {}
    t = _LC_TEMPERATURE.search(llm_string)
    if t:
        out["temperature"] = float(t.group(1))
    s = _LC_SEED.search(llm_string)
    if s:
        out["seed"] = int(s.group(1))
    return out


def make_langchain_cache_class() -> type:
    from langchain_core.caches import BaseCache
    from langchain_core.load import dumps, loads

    class TokprofLLMCache(BaseCache):
        """A LangChain ``BaseCache`` on a :class:`ResponseCache` (``set_llm_cache(TokprofLLMCache())``).

        LangChain calls ``update`` only after a successful generation, so errors are never stored."""

        def __init__(self, cache: ResponseCache | None = None, **options: Any) -> None:
            self.store = cache if cache is not None else ResponseCache(**options)

        def _key(self, prompt: str, llm_string: str) -> str:
            return request_digest(["langchain", self.store.namespace, prompt, llm_string])

        def lookup(self, prompt: str, llm_string: str) -> Any:
            if not self.store.cacheable(_lc_params(llm_string)):
                return None
            value = self.store.get(self._key(prompt, llm_string))
            if value is None:
                return None
            import warnings

            with warnings.catch_warnings():  # loads() is marked beta; what we load we wrote ourselves
                warnings.simplefilter("ignore")
                return [loads(g) for g in value]

        def update(self, prompt: str, llm_string: str, return_val: Sequence[Any]) -> None:
            if not self.store.cacheable(_lc_params(llm_string)):
                return
            self.store.set(self._key(prompt, llm_string), [dumps(g) for g in return_val])

        def clear(self, **kwargs: Any) -> None:
            self.store.clear()

    return TokprofLLMCache


# -- SDK clients ------------------------------------------------------------------------------------
_REQUEST_FIELDS = ("messages", "tools", "system", "model")


def _response_type(provider: str) -> Any:
    """The SDK's response class for a provider — fixed here, never read from the cache (an entry naming a
    module would otherwise make the cache import it)."""
    if provider == "anthropic":
        from anthropic.types import Message

        return Message
    from openai.types.chat import ChatCompletion

    return ChatCompletion


SERVED_BY_CACHE = "response-cache"


class _CachedCreate:
    """Wraps one ``create`` method: a hit returns the stored response as the SDK's own type.

    Works for sync and async clients (``AsyncOpenAI``, ``AsyncAnthropic``): an async ``create`` gets an
    async wrapper."""

    def __init__(self, create: Any, cache: ResponseCache, provider: str, is_async: bool = False) -> None:
        self._create = create
        self._cache = cache
        self._provider = provider
        import inspect

        # the SDKs wrap their methods, which hides the coroutine function: the client class says it
        self._is_async = is_async or inspect.iscoroutinefunction(create)

    def _lookup(self, kwargs: dict[str, Any]) -> tuple[str | None, Any]:
        """(key to store under or None, cached response or None). Never raises."""
        try:
            messages = list(kwargs.get("messages") or [])
            if kwargs.get("system") is not None:  # Anthropic's system prompt is a separate field
                messages = [{"role": "system", "content": kwargs["system"]}, *messages]
            params = {k: v for k, v in kwargs.items() if k not in _REQUEST_FIELDS}
            if isinstance(kwargs.get("extra_body"), dict):  # sampling parameters an SDK has no argument for
                params.update(kwargs["extra_body"])
            if not self._cache.cacheable(params):
                return None, None
            key = self._cache.key(self._provider, kwargs.get("model"), messages, kwargs.get("tools"), params)
            hit = self._cache.get(key)
            if isinstance(hit, dict) and hit.get("provider") == self._provider and isinstance(
                    hit.get("response"), dict):
                return key, served_copy(_response_type(self._provider).model_validate(hit["response"]))
            return key, None
        except Exception as exc:  # the cache must never break the user's call
            internal_error("response_cache.lookup", exc)
            return None, None

    def _store(self, key: str | None, response: Any) -> None:
        if key is None:
            return
        try:
            self._cache.set(key, {"provider": self._provider, "response": response.model_dump(mode="json")})
        except Exception as exc:
            internal_error("response_cache.store", exc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # positional calls are not part of the SDKs' API; streams are passed through and never stored
        if args or kwargs.get("stream"):
            return self._create(*args, **kwargs)
        if self._is_async:
            return self._acall(kwargs)
        key, hit = self._lookup(kwargs)
        if hit is not None:
            return hit
        response = self._create(**kwargs)  # errors propagate unchanged and store nothing
        self._store(key, response)
        return response

    async def _acall(self, kwargs: dict[str, Any]) -> Any:
        key, hit = self._lookup(kwargs)
        if hit is not None:
            return hit
        response = await self._create(**kwargs)
        self._store(key, response)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._create, name)


class _Proxy:
    def __init__(self, target: Any, overrides: dict[str, Any]) -> None:
        self._target = target
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._target, name)


def cached_client(client: Any, cache: ResponseCache | None = None, **options: Any) -> Any:
    """An OpenAI (``chat.completions.create``) or Anthropic (``messages.create``) client whose
    non-streaming deterministic requests are answered from ``cache`` when they repeat.

    Everything else on the client is the original object."""
    store = cache if cache is not None else ResponseCache(**options)
    module = type(client).__module__.split(".")[0]
    is_async = type(client).__name__.startswith("Async")
    if module == "anthropic" or hasattr(client, "messages") and not hasattr(client, "chat"):
        messages = client.messages
        create = _CachedCreate(messages.create, store, "anthropic", is_async)
        return _Proxy(client, {"messages": _Proxy(messages, {"create": create})})
    completions = client.chat.completions
    wrapped = _Proxy(completions, {"create": _CachedCreate(completions.create, store, "openai", is_async)})
    return _Proxy(client, {"chat": _Proxy(client.chat, {"completions": wrapped})})
