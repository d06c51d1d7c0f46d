"""Live optimization: ``profile("name", optimize=[...])`` switches passes on for the agent inside the block.

Importing this module registers :func:`activate_live` / :func:`deactivate_live` as profile enter/exit
hooks (``profiler`` never imports upward, so the app layer plugs this in: ``tokprof.demo`` imports it;
import it yourself, or ``tokprof`` once its façade does).

>>> from tokprof.profiler import profile
>>> import tokprof.live_hooks  # noqa: F401
>>> with profile("support", optimize=["response-cache", "observation-mask"]) as run:
...     agent.invoke(...)
>>> run.metadata["live_passes"]
['response-cache', 'observation-mask']

Passes that can act live (their recorded-run counterparts are in ``optimizers``; unknown names are kept in
``run.metadata["live_passes_unavailable"]``):

``response-cache``   a response cache for the block, empty at its start: an identical deterministic request
                     (temperature 0 or a seed) is answered from it and bills no tokens. LangChain:
                     ``set_llm_cache`` with ``tokprof.optimizers.response_cache.TokprofLLMCache`` on a temporary
                     store; SDK clients: the middleware's lookup.
``minify``           JSON tool outputs without whitespace and empty fields; very long outputs cut to
                     head + tail (``tokprof.optimizers.compression.minify``).
``dedupe``           a tool output identical to an earlier one becomes a pointer to it (lossless).
``observation-mask`` old tool outputs become placeholders keeping their ids, in blocks so the prompt
                     prefix stays cacheable (``tokprof.optimizers.compression.mask``, ``keep_turns=3`` live).
``prompt-cache``     prompt-cache planning: ``cache_control`` breakpoints on the system prompt and the
                     newest message, so a provider with explicit caching (Anthropic) re-reads the stable
                     prefix at the cache price. Models that ignore the marker are unaffected.

How: while a live profile is active, ``BaseChatModel.generate``/``agenerate`` are wrapped so the message
transforms run *before* LangChain's callbacks (the profiler records the prompt that was really sent).
Instrumented SDK clients (``profile(..., instrument=["openai"])``) get the same through
``tokprof.profiler.integrations``' middleware seam: OpenAI chat messages are compressed, Anthropic requests get
cache breakpoints, and a repeated deterministic request is answered from the block's memory.
Transforms apply in the order minify, dedupe, observation-mask, prompt-cache whatever order they were
asked in. ``minify``, ``dedupe`` and ``observation-mask`` run engineer E's ``tokprof.optimizers.compression``
passes (the code the simulated pipeline uses) with :data:`LIVE_PASS_OPTIONS`; the small local transforms
below are the fallback when those are missing or fail. Every failure inside is reported once through
``tokprof.profiler.hooks.internal_error`` and swallowed: the agent then runs unoptimized, never broken.
"""

from __future__ import annotations

import contextvars
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from tokprof.profiler import hooks as _hooks

LIVE_PASSES: tuple[str, ...] = ("response-cache", "minify", "dedupe", "observation-mask", "prompt-cache")
"""Every pass that can act live, in the order they act (the response cache is consulted after the message
transforms, on the transformed request; prompt-cache markers go on last)."""

DEFAULT_LIVE_PASSES: tuple[str, ...] = LIVE_PASSES
"""The default live pipeline (``tokprof demo`` uses it)."""

ALIASES = {
    "prompt-cache-plan": "prompt-cache", "prompt-caching": "prompt-cache", "cache-plan": "prompt-cache",
    "mask": "observation-mask", "observation-masking": "observation-mask",
    "minify-json": "minify", "json-minify": "minify", "tool-output-minify": "minify",
    "dedup": "dedupe", "dedupe-tool-outputs": "dedupe", "response_cache": "response-cache",
}

_TRANSFORM_ORDER = ("minify", "dedupe", "observation-mask", "prompt-cache")
_OPTIMIZER_PASSES = ("minify", "dedupe", "observation-mask")
LIVE_PASS_OPTIONS: dict[str, dict[str, Any]] = {"observation-mask": {"keep_turns": 3}, "minify": {"max_tokens": 3000}}
"""Options of the live compression passes, pinned (a live agent acts on what it is sent): masking keeps the
outputs of the last three steps, as an agent re-reads recent outputs (the recorded-run default of one step
is tuned for simulation); minify cuts only outputs over 3,000 tokens."""
MASK_KEEP_LAST = LIVE_PASS_OPTIONS["observation-mask"]["keep_turns"]
MASK_MIN_CHARS = 200
"""Tool outputs shorter than this are not worth masking (the placeholder is about as long)."""

_session: contextvars.ContextVar["LiveSession | None"] = contextvars.ContextVar("tokprof_live", default=None)


@dataclass
class LiveSession:
    """The live passes of one profile block, their state and what they did."""

    passes: list[str]
    unknown: list[str] = field(default_factory=list)
    keep_last: int = MASK_KEEP_LAST
    cache: Any = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-pass options for the compression passes of ``optimizers`` (e.g. ``{"observation-mask":
    {"keep_turns": 3}}``)."""
    use_optimizers: bool = True
    """Run ``minify``/``dedupe``/``observation-mask`` with engineer E's ``tokprof.optimizers.compression`` passes
    (the same code the simulated pipeline uses) when they are importable; the local versions otherwise."""
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    sdk_cache: dict[str, Any] = field(default_factory=dict)
    """Responses of instrumented SDK calls in this block, by request (the response cache for SDK clients)."""
    _external: dict[str, Any] = field(default_factory=dict)
    _previous_cache: Any = None
    _token: contextvars.Token | None = None

    def bump(self, name: str, key: str, n: int = 1) -> None:
        self.stats.setdefault(name, {}).setdefault(key, 0)
        self.stats[name][key] += n

    def transform(self, messages: list[Any], model: str | None = None) -> list[Any]:
        """The messages with every active message transform applied (the input list is not modified)."""
        out = list(messages)
        for name in _TRANSFORM_ORDER:
            if name not in self.passes:
                continue
            external = self._pass(name)
            if external is not None:
                try:
                    out = _via_optimizer_pass(self, name, external, out, model)
                    continue
                except Exception as exc:  # fall back to the local transform, logged once
                    _hooks.internal_error(f"live pass {name} (optimizers)", exc)
            out = _TRANSFORMS[name](self, out)
        return out

    def transform_dicts(self, messages: list[dict[str, Any]], model: str | None = None) -> list[dict[str, Any]]:
        """The same compression for an OpenAI-format message list (instrumented SDK calls). Only the
        ``optimizers`` passes act here; without them the messages are sent unchanged."""
        out = list(messages)
        for name in _OPTIMIZER_PASSES:
            if name in self.passes:
                p = self._pass(name)
                if p is not None:
                    new = p.compress(list(out), model).messages
                    removed = sum(len(str(m.get("content") or "")) for m in out) - sum(
                        len(str(m.get("content") or "")) for m in new)
                    if new != out:
                        self.bump(name, "chars_removed", removed)
                    out = new
        return out

    def _pass(self, name: str) -> Any:
        """The ``optimizers`` compression pass for ``name``, or ``None`` (not installed / not used)."""
        if not self.use_optimizers or name not in _OPTIMIZER_PASSES:
            return None
        if name not in self._external:
            try:
                import tokprof.optimizers.compression  # noqa: F401  (registers the passes)
                from tokprof.optimizers.base import make_pass

                p = make_pass(name, **self.options.get(name, {}))
                self._external[name] = p if hasattr(p, "compress") else None
            except Exception as exc:
                _hooks.internal_error(f"loading live pass {name} from optimizers", exc)
                self._external[name] = None
        return self._external[name]


def canonical_pass(name: str) -> str:
    return ALIASES.get(name, name)


def current_session() -> LiveSession | None:
    """The live session of the innermost active ``profile(optimize=...)`` block, if any."""
    return _session.get()


# ---------------------------------------------------------------------------------------------------
# message transforms (LangChain messages in, new LangChain messages out)
# ---------------------------------------------------------------------------------------------------
def _text(message: Any) -> str | None:
    content = message.content
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(b, dict) and b.get("type") == "text" for b in content):
        return "".join(b.get("text", "") for b in content)
    return None  # images or other parts: leave the message alone


def _is_tool(message: Any) -> bool:
    return getattr(message, "type", None) == "tool"


def _with_text(message: Any, text: str) -> Any:
    return message.model_copy(update={"content": text})


def _dedupe(session: LiveSession, messages: list[Any]) -> list[Any]:
    first_seen: dict[str, str] = {}
    out = []
    for m in messages:
        text = _text(m) if _is_tool(m) else None
        if text is not None and len(text) >= MASK_MIN_CHARS:
            earlier = first_seen.get(text)
            if earlier is not None:
                pointer = f"[same output as tool call {earlier} above]"
                session.bump("dedupe", "chars_removed", len(text) - len(pointer))
                out.append(_with_text(m, pointer))
                continue
            first_seen[text] = m.tool_call_id
        out.append(m)
    return out


def _mask(session: LiveSession, messages: list[Any]) -> list[Any]:
    tool_positions = [i for i, m in enumerate(messages) if _is_tool(m)]
    keep = set(tool_positions[-session.keep_last:]) if session.keep_last > 0 else set()
    # A kept output that points at an earlier one (dedupe) keeps its target readable too.
    referenced = {(_text(messages[i]) or "") for i in keep}
    out = []
    for i, m in enumerate(messages):
        if i in tool_positions and i not in keep:
            text = _text(m)
            if text is not None and len(text) >= MASK_MIN_CHARS and not any(
                    m.tool_call_id in r for r in referenced):
                placeholder = (f"[output of tool call {m.tool_call_id} elided by tokprof observation-mask: "
                               f"{len(text)} characters; call the tool again if you need it]")
                session.bump("observation-mask", "chars_removed", len(text) - len(placeholder))
                out.append(_with_text(m, placeholder))
                continue
        out.append(m)
    return out


def _minify(session: LiveSession, messages: list[Any]) -> list[Any]:
    out = []
    for m in messages:
        text = _text(m) if _is_tool(m) else None
        if text and text.lstrip()[:1] in ("{", "["):
            try:
                compact = json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":"))
            except ValueError:
                compact = text
            if len(compact) < len(text):
                session.bump("minify", "chars_removed", len(text) - len(compact))
                out.append(_with_text(m, compact))
                continue
        out.append(m)
    return out


def _mark(message: Any) -> Any:
    content = message.content
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(b) for b in content]
    if not blocks:
        return message
    blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
    return message.model_copy(update={"content": blocks})


def _prompt_cache(session: LiveSession, messages: list[Any]) -> list[Any]:
    if not messages:
        return messages
    out = list(messages)
    # Breakpoints: end of the system prompt (stable for the whole run) and the newest message (so the
    # next turn re-reads everything up to here). Two of Anthropic's four allowed breakpoints.
    targets = {len(out) - 1}
    if getattr(out[0], "type", None) == "system":
        targets.add(0)
    for i in targets:
        if _text(out[i]) is not None or isinstance(out[i].content, list):
            out[i] = _mark(out[i])
    session.bump("prompt-cache", "breakpoints", len(targets))
    return out


_TRANSFORMS: dict[str, Callable[[LiveSession, list[Any]], list[Any]]] = {
    "dedupe": _dedupe,
    "observation-mask": _mask,
    "minify": _minify,
    "prompt-cache": _prompt_cache,
}


def _via_optimizer_pass(session: LiveSession, name: str, p: Any, messages: list[Any], model: str | None) -> list[Any]:
    """Run an ``optimizers`` message pass (OpenAI-format dicts) on LangChain messages, keeping each message
    object and changing only the content of the messages the pass rewrote."""
    from langchain_core.messages import convert_to_messages, convert_to_openai_messages

    dicts = [convert_to_openai_messages([m])[0] for m in messages]
    rewritten = p.compress(list(dicts), model).messages
    if len(rewritten) != len(dicts):  # the pass dropped or merged messages: rebuild them all
        session.bump(name, "messages_removed", len(dicts) - len(rewritten))
        return list(convert_to_messages(rewritten))
    out = []
    for m, before, after in zip(messages, dicts, rewritten):
        new = after.get("content")
        if after is before or new == before.get("content") or not isinstance(new, str):
            out.append(m)
            continue
        session.bump(name, "chars_removed", len(_text(m) or "") - len(new))
        out.append(_with_text(m, new))
    return out


# ---------------------------------------------------------------------------------------------------
# the response cache
# ---------------------------------------------------------------------------------------------------
def make_response_cache() -> Any:
    """A LangChain ``BaseCache`` for one block, empty at the start (a cache that outlived the block would
    make a re-run look free): engineer D's :class:`tokprof.optimizers.response_cache.TokprofLLMCache` on a
    temporary store when available (it serves only deterministic requests: temperature 0 or a seed), else
    LangChain's ``InMemoryCache``. Either way a hit reports zero billed tokens and says it was a hit."""
    try:
        import tempfile

        from tokprof.optimizers.response_cache import ResponseCache, TokprofLLMCache

        class LiveLLMCache(TokprofLLMCache):  # type: ignore[misc, valid-type]
            def lookup(self, prompt: str, llm_string: str) -> Any:
                return _served(super().lookup(prompt, llm_string))

            def discard(self) -> None:
                import shutil

                self.store.close()
                shutil.rmtree(self.store.directory, ignore_errors=True)

        folder = tempfile.mkdtemp(prefix="tokprof-live-cache-")
        return LiveLLMCache(ResponseCache(folder, namespace="live"))
    except Exception as exc:
        _hooks.internal_error("opening tokprof.optimizers.response_cache for the live response cache", exc)
    return _ZeroUsageCache()


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
    meta = {**(message.response_metadata or {}), "tokprof_response_cache": "hit"}
    return gen.model_copy(update={"message": message.model_copy(
        update={"usage_metadata": usage, "response_metadata": meta})})


def _zero_usage_cache_class() -> type:
    from langchain_core.caches import InMemoryCache

    class ZeroUsageCache(InMemoryCache):
        """``InMemoryCache`` whose hits bill nothing: the provider was never called."""

        def lookup(self, prompt: str, llm_string: str) -> Any:
            return _served(super().lookup(prompt, llm_string))

    return ZeroUsageCache


_cache_cls: type | None = None


def _ZeroUsageCache() -> Any:  # noqa: N802 - a lazily built class
    global _cache_cls
    if _cache_cls is None:
        _cache_cls = _zero_usage_cache_class()
    return _cache_cls()


# ---------------------------------------------------------------------------------------------------
# wrapping LangChain chat models while a live session is active
# ---------------------------------------------------------------------------------------------------
_patch_lock = threading.Lock()
_patch_depth = 0
_originals: dict[str, Any] = {}


def _patch_models() -> None:
    global _patch_depth
    from langchain_core.language_models.chat_models import BaseChatModel

    with _patch_lock:
        _patch_depth += 1
        if _patch_depth > 1:
            return
        generate, agenerate = BaseChatModel.generate, BaseChatModel.agenerate
        _originals["generate"], _originals["agenerate"] = generate, agenerate

        def live_generate(self: Any, messages: list[list[Any]], *args: Any, **kwargs: Any) -> Any:
            return generate(self, _transform_batch(self, messages), *args, **kwargs)

        async def live_agenerate(self: Any, messages: list[list[Any]], *args: Any, **kwargs: Any) -> Any:
            return await agenerate(self, _transform_batch(self, messages), *args, **kwargs)

        BaseChatModel.generate = live_generate  # type: ignore[method-assign]
        BaseChatModel.agenerate = live_agenerate  # type: ignore[method-assign]


def _unpatch_models() -> None:
    global _patch_depth
    from langchain_core.language_models.chat_models import BaseChatModel

    with _patch_lock:
        _patch_depth -= 1
        if _patch_depth == 0 and _originals:
            BaseChatModel.generate = _originals.pop("generate")  # type: ignore[method-assign]
            BaseChatModel.agenerate = _originals.pop("agenerate")  # type: ignore[method-assign]


def _model_name(model: Any) -> str | None:
    for attr in ("model_name", "model", "model_id", "deployment_name"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return None


def _transform_batch(model: Any, batch: list[list[Any]]) -> list[list[Any]]:
    live = _session.get()
    if live is None:
        return batch
    try:
        name = _model_name(model)
        out = [live.transform(list(messages), name) for messages in batch]
        live.bump("requests", "transformed", len(out))
        return out
    except Exception as exc:  # never break the agent: send the messages unchanged
        _hooks.internal_error("live message transforms", exc)
        return batch


# ---------------------------------------------------------------------------------------------------
# instrumented SDK clients (openai, anthropic): through tokprof.profiler.integrations' middleware seam
# ---------------------------------------------------------------------------------------------------
_SDK_MIDDLEWARE: Any = None
_sdk_depth = 0


def _deterministic(kwargs: dict[str, Any]) -> bool:
    if kwargs.get("seed") is not None:
        return True
    t = kwargs.get("temperature")
    try:
        return t is not None and float(t) == 0.0
    except (TypeError, ValueError):
        return False


def _request_key(api: str, kwargs: dict[str, Any]) -> str:
    return api + "\n" + json.dumps(kwargs, sort_keys=True, ensure_ascii=False, default=str)


def _sdk_before(api: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    live = _session.get()
    if live is None:
        return kwargs
    if api == "openai.chat.completions" and isinstance(kwargs.get("messages"), list):
        messages = [dict(m) for m in kwargs["messages"]]
        new = live.transform_dicts(messages, kwargs.get("model"))
        if new != messages:
            live.bump("requests", "transformed")
            return {**kwargs, "messages": new}
    elif api == "anthropic.messages" and "prompt-cache" in live.passes:
        return _anthropic_breakpoints(live, kwargs)
    return kwargs


def _anthropic_breakpoints(live: LiveSession, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``cache_control`` on the system prompt and on the last block of the newest message."""
    kwargs = dict(kwargs)
    marker = {"type": "ephemeral"}
    system = kwargs.get("system")
    if isinstance(system, str) and system:
        kwargs["system"] = [{"type": "text", "text": system, "cache_control": marker}]
    messages = [dict(m) for m in kwargs.get("messages") or []]
    if messages:
        last = messages[-1]
        content = last.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else [dict(b) for b in content or []]
        if blocks:
            blocks[-1] = {**blocks[-1], "cache_control": marker}
            messages[-1] = {**last, "content": blocks}
            kwargs["messages"] = messages
    live.bump("prompt-cache", "breakpoints", 2 if isinstance(kwargs.get("system"), list) else 1)
    return kwargs


SDK_CACHE_MAX_ENTRIES = 1024
"""At most this many SDK responses are kept per ``profile(optimize=["response-cache"])`` block."""


def _sdk_lookup(api: str, kwargs: dict[str, Any]) -> Any:
    live = _session.get()
    if live is None or "response-cache" not in live.passes or not _deterministic(kwargs):
        return None
    hit = live.sdk_cache.get(_request_key(api, kwargs))
    if hit is not None:
        live.bump("response-cache", "hits")
    return hit


def _sdk_after(api: str, kwargs: dict[str, Any], response: Any) -> None:
    live = _session.get()
    if live is not None and "response-cache" in live.passes and _deterministic(kwargs):
        cache = live.sdk_cache
        cache.setdefault(_request_key(api, kwargs), response)
        while len(cache) > SDK_CACHE_MAX_ENTRIES:  # bounded: drop the oldest responses first
            cache.pop(next(iter(cache)), None)


def _add_sdk_middleware() -> None:
    global _SDK_MIDDLEWARE, _sdk_depth
    with _patch_lock:
        _sdk_depth += 1
        if _sdk_depth > 1:
            return
        try:
            from tokprof.profiler.integrations.middleware import Middleware, add_middleware
        except ImportError:  # no SDK integration in this install: nothing to plug into
            return
        _SDK_MIDDLEWARE = Middleware("tokprof-live", _sdk_before, _sdk_lookup, _sdk_after)
        add_middleware(_SDK_MIDDLEWARE)


def _remove_sdk_middleware() -> None:
    global _SDK_MIDDLEWARE, _sdk_depth
    with _patch_lock:
        _sdk_depth -= 1
        if _sdk_depth == 0 and _SDK_MIDDLEWARE is not None:
            from tokprof.profiler.integrations.middleware import remove_middleware

            remove_middleware(_SDK_MIDDLEWARE)
            _SDK_MIDDLEWARE = None


# ---------------------------------------------------------------------------------------------------
# profile enter / exit hooks
# ---------------------------------------------------------------------------------------------------
def activate_live(p: Any) -> None:
    """Profile enter hook: switch on the passes named in ``p.optimize`` for the block."""
    requested = [canonical_pass(str(n)) for n in (p.optimize or [])]
    if not requested:
        return
    session = LiveSession(passes=[n for n in LIVE_PASSES if n in requested],
                          unknown=[n for n in requested if n not in LIVE_PASSES],
                          options={k: dict(v) for k, v in LIVE_PASS_OPTIONS.items()})
    p.run.metadata["live_passes"] = list(session.passes)
    if session.unknown:
        p.run.metadata["live_passes_unavailable"] = list(session.unknown)
    if "response-cache" in session.passes:
        from langchain_core.globals import get_llm_cache, set_llm_cache

        session._previous_cache = get_llm_cache()
        session.cache = make_response_cache()
        set_llm_cache(session.cache)
    if any(n in session.passes for n in _TRANSFORM_ORDER):
        _patch_models()
    _add_sdk_middleware()
    session._token = _session.set(session)
    p.extras["live"] = session


def deactivate_live(p: Any) -> None:
    """Profile exit hook: undo :func:`activate_live` and record what the live passes did."""
    session: LiveSession | None = p.extras.pop("live", None)
    if session is None:
        return
    if session._token is not None:
        try:
            _session.reset(session._token)
        except ValueError:  # exited from another context
            _session.set(None)
    if "response-cache" in session.passes:
        from langchain_core.globals import set_llm_cache

        set_llm_cache(session._previous_cache)
        discard = getattr(session.cache, "discard", None)
        if discard is not None:
            try:
                discard()
            except Exception as exc:
                _hooks.internal_error("closing the live response cache", exc)
    if any(n in session.passes for n in _TRANSFORM_ORDER):
        _unpatch_models()
    _remove_sdk_middleware()
    p.run.metadata["live_stats"] = {k: dict(v) for k, v in session.stats.items()}


def install() -> None:
    """Register the hooks with ``profiler`` (idempotent; done on import)."""
    if activate_live not in _hooks._profile_enter_hooks:
        _hooks._profile_enter_hooks.append(activate_live)
    if deactivate_live not in _hooks._profile_exit_hooks:
        _hooks._profile_exit_hooks.append(deactivate_live)


install()
