"""litellm: ``litellm.completion`` / ``litellm.acompletion``, streamed or not, recorded exactly once.

litellm reaches providers in more than one way: the openai SDK's low-level ``client.post`` for OpenAI
routes, its own httpx handlers for others (DeepSeek, Anthropic...). So the call is recorded at litellm's own
entry point: one ``llm`` span per ``completion`` call, filled from litellm's ``ModelResponse`` (whose ``usage``
keeps the provider's dialect fields, e.g. DeepSeek's ``prompt_cache_hit_tokens``; read by
:mod:`usage_dialects`). While litellm runs, the span is the current span, so an SDK call litellm makes
underneath (an instrumented openai/anthropic client) sees an ``llm`` parent and is not recorded again.

A stream keeps its type (``CustomStreamWrapper``: its class is swapped for a subclass that watches the
chunks); usage is asked for with ``stream_options.include_usage`` when the caller did not choose, and the
usage-only chunk that only tokprof asked for is not shown to the caller.

Patched: the module attributes ``litellm.completion`` and ``litellm.acompletion`` (what ``litellm.completion(...)``
calls), and every other module-level name bound to those very functions (``from litellm import completion``
or ``... as ask`` done *before* the profile; see :func:`_rebind`). A reference held elsewhere (a class
attribute, a local variable, a ``functools.partial``) still calls the original and is not recorded.
"""

from __future__ import annotations

import functools
import sys
from typing import Any, Callable

from tokprof.profiler import hooks, keys
from tokprof.profiler.hooks import end_span, internal_error, start_span
from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations.sdk_state import stream_finished
from tokprof.profiler.integrations.openai import ChatAccumulator, ChatAdapter, chat_usage, is_given
from tokprof.profiler.model import Span

API = "litellm.completion"


class _LiteLLMAdapter(ChatAdapter):
    api = API

    def request(self, kwargs: dict[str, Any]) -> Any:
        call = super().request(kwargs)
        model = str(kwargs.get("model") or "")
        # "deepseek/deepseek-chat" -> provider "deepseek", model "deepseek-chat" (what the price table knows)
        if "/" in model:
            call.provider, call.model = model.split("/", 1)
        else:
            call.provider = "litellm"
        return call


_ADAPTER = _LiteLLMAdapter()


def _open(kwargs: dict[str, Any], name: str) -> tuple[Span | None, dict[str, Any], Callable[[Any], bool] | None]:
    """The span (or ``None`` outside a profile / inside another llm span) and the kwargs to send."""
    try:
        parent = hooks.current_span() or hooks.implicit_root()
        if parent is None or parent.kind == "llm":
            return None, kwargs, None
        span = start_span(name, "llm", parent=parent, llm=_ADAPTER.request(kwargs))
        hide = None
        if span is not None and kwargs.get("stream") and not is_given(kwargs.get("stream_options")):
            kwargs = {**kwargs, "stream_options": {"include_usage": True}}
            hide = _usage_only
        return span, kwargs, hide
    except Exception as exc:
        internal_error(f"{API} request", exc)
        return None, kwargs, None


def _usage_only(chunk: Any) -> bool:
    return not getattr(chunk, "choices", None) and getattr(chunk, "usage", None) is not None


def _finish(span: Span, response: Any) -> None:
    try:
        if span.llm is not None:
            _ADAPTER.fill(span.llm, response)
            wire = _sdk.take_sdk_usage(span)
            if wire is not None and wire.sources:  # an instrumented SDK underneath read the provider's block
                span.llm.usage = wire
            if span.llm.model and "/" in span.llm.model:
                span.llm.model = span.llm.model.split("/", 1)[1]
            _sdk.check_usage(span)
    except Exception as exc:
        internal_error(f"{API} response", exc)
    end_span(span)


class _Watch:
    """Per-stream state: the accumulator, what to hide, and the span to end once."""

    def __init__(self, span: Span, hide: Callable[[Any], bool] | None) -> None:
        self.span, self.hide, self.acc, self.done = span, hide, ChatAccumulator(), False
        self.raw_usage: Any = None
        """The usage as the provider's own chunk carried it (litellm rebuilds streamed usage and drops
        dialect fields such as Moonshot's top-level ``cached_tokens``)."""

    def tap(self, chunk: Any) -> None:
        """Watch a provider chunk underneath litellm (an openai SDK ``Stream``'s)."""
        try:
            usage = getattr(chunk, "usage", None)
            if usage is None:
                for choice in getattr(chunk, "choices", None) or []:
                    usage = getattr(choice, "usage", None) or usage  # Kimi: choices[0].usage
            if usage is not None:
                self.raw_usage = usage
        except Exception as exc:
            internal_error(f"{API} provider chunk", exc)

    def see(self, chunk: Any) -> bool:
        try:
            self.acc.observe(chunk)
            # litellm attaches the usage to the last chunk it yields (choices present): hide only a bare one
            return self.hide is not None and self.hide(chunk)
        except Exception as exc:
            internal_error(f"{API} stream chunk", exc)
            return False

    def end(self, error: BaseException | None, complete: bool) -> None:
        if self.done:
            return
        self.done = True
        try:
            if self.span.llm is not None:
                self.acc.finish(self.span.llm)
                if self.raw_usage is not None:
                    self.span.llm.usage = chat_usage(self.raw_usage)
                wire = _sdk.take_sdk_usage(self.span)
                if wire is not None and wire.sources:
                    self.span.llm.usage = wire
                if self.span.llm.model and "/" in self.span.llm.model:
                    self.span.llm.model = self.span.llm.model.split("/", 1)[1]
                final = stream_finished(self.span.llm)
                _sdk.check_usage(self.span, output_final=final)
                complete = complete and final  # the server closed before its final chunk: a cut answer
            if not complete and error is None:
                self.span.set_attribute(keys.STREAM_INCOMPLETE, True)
        except Exception as exc:
            internal_error(f"{API} stream end", exc)
        end_span(self.span, error)


def _watch_stream(stream: Any, watch: _Watch) -> Any:
    """Swap the stream's class for a subclass whose ``__next__``/``__anext__`` record (``isinstance`` holds)."""
    base = type(stream)
    try:
        stream.__class__ = _traced_class(base)  # type: ignore[arg-type]  # classes are hashable
        stream.__dict__["_tokprof_watch"] = watch
        inner = getattr(stream, "completion_stream", None)
        if inner is not None and hasattr(inner, "_iterator"):
            inner._iterator = (_tap_async(inner._iterator, watch) if hasattr(inner._iterator, "__anext__")
                               else _tap_sync(inner._iterator, watch))
    except Exception as exc:
        internal_error(f"{API} stream", exc)
        watch.end(None, False)
    return stream


def _tap_sync(inner: Any, watch: _Watch) -> Any:
    for chunk in inner:
        watch.tap(chunk)
        yield chunk


async def _tap_async(inner: Any, watch: _Watch) -> Any:
    async for chunk in inner:
        watch.tap(chunk)
        yield chunk


@functools.lru_cache(maxsize=None)
def _traced_class(base: type) -> type:
    def __next__(self: Any) -> Any:  # noqa: N807
        watch: _Watch = self.__dict__["_tokprof_watch"]
        while True:
            try:
                chunk = base.__next__(self)  # type: ignore[attr-defined]
            except StopIteration:
                watch.end(None, True)
                raise
            except BaseException as exc:
                watch.end(exc, False)
                raise
            if not watch.see(chunk):
                return chunk

    async def __anext__(self: Any) -> Any:  # noqa: N807
        watch: _Watch = self.__dict__["_tokprof_watch"]
        while True:
            try:
                chunk = await base.__anext__(self)  # type: ignore[attr-defined]
            except StopAsyncIteration:
                watch.end(None, True)
                raise
            except BaseException as exc:
                watch.end(exc, False)
                raise
            if not watch.see(chunk):
                return chunk

    return type(base.__name__, (base,), {"__next__": __next__, "__anext__": __anext__,
                                         "__module__": base.__module__, "__qualname__": base.__qualname__})


def _is_stream(result: Any, kwargs: dict[str, Any]) -> bool:
    return bool(kwargs.get("stream")) and (hasattr(result, "__next__") or hasattr(result, "__anext__"))


def _sync(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def completion(*args: Any, **kwargs: Any) -> Any:
        span, kwargs, hide = _open(kwargs, "litellm.completion")
        if span is None:
            return original(*args, **kwargs)
        token = hooks.activate(span)  # an SDK call litellm makes underneath sees an llm parent: not recorded twice
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            end_span(span, exc)
            raise
        finally:
            hooks.deactivate(token)
        if _is_stream(result, kwargs):
            return _watch_stream(result, _Watch(span, hide))
        _finish(span, result)
        return result

    completion.__tokprof_original__ = original  # type: ignore[attr-defined]
    return completion


def _async(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    async def acompletion(*args: Any, **kwargs: Any) -> Any:
        span, kwargs, hide = _open(kwargs, "litellm.acompletion")
        if span is None:
            return await original(*args, **kwargs)
        token = hooks.activate(span)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            end_span(span, exc)
            raise
        finally:
            hooks.deactivate(token)
        if _is_stream(result, kwargs):
            return _watch_stream(result, _Watch(span, hide))
        _finish(span, result)
        return result

    acompletion.__tokprof_original__ = original  # type: ignore[attr-defined]
    return acompletion


class _ModulePatch(_sdk.Patch):
    """A patched module attribute (``_sdk.unpatch`` restores it with ``setattr`` like a class attribute)."""


_SKIP_PREFIXES = ("litellm", "tokprof")
"""Modules never rebound: litellm's own (``litellm.main.acompletion`` calls ``completion`` through its module
globals; rebinding there would route litellm's internals through the wrapper) and tokprof's."""


_clean: dict[str, tuple[int, int]] = {}
"""Module name -> (id, size) of its namespace when a scan found no reference to litellm's functions: an
unchanged namespace is not scanned again (the first scan of a big process costs ~0.1 s, later ones ~ms)."""
_clean_for: tuple[int, ...] = ()
"""The ids of the functions ``_clean`` was computed for (another library re-wrapping them resets it)."""


def _rebind(targets: dict[int, tuple[Any, Any]]) -> list[_sdk.Patch]:
    """Point every module-level name bound to one of litellm's functions (``from litellm import completion
    [as x]`` done before the profile) at tokprof's wrapper. ``targets`` maps ``id(original)`` to
    ``(original, wrapper)``. Identity only, so nothing else is touched; each rebinding is undone by
    ``_sdk.unpatch`` only while the name still holds our wrapper (another library's rebinding is kept)."""
    global _clean_for
    if _clean_for != tuple(sorted(targets)):
        _clean.clear()
        _clean_for = tuple(sorted(targets))
    patches: list[_sdk.Patch] = []
    # dict.copy() is one C call; iterating sys.modules itself fails when a thread imports meanwhile
    for name, module in sys.modules.copy().items():
        if module is None or name.startswith(_SKIP_PREFIXES):
            continue
        try:
            namespace = getattr(module, "__dict__", None)
            if not isinstance(namespace, dict):
                continue
            stamp = (id(namespace), len(namespace))
            if _clean.get(name) == stamp:
                continue
            hits = [(k, v) for k, v in namespace.copy().items() if id(v) in targets and targets[id(v)][0] is v]
            if not hits:
                _clean[name] = stamp
            for attr, original in hits:
                wrapper = targets[id(original)][1]
                setattr(module, attr, wrapper)
                patches.append(_ModulePatch(module, attr, original, wrapper))  # type: ignore[arg-type]
        except Exception as exc:  # an odd module (lazy proxy, read-only namespace) is left as it is
            internal_error(f"{API} rebinding in {name}", exc)
    return patches


def patch() -> list[_sdk.Patch]:
    import litellm

    patches: list[_sdk.Patch] = []
    targets: dict[int, tuple[Any, Any]] = {}
    from tokprof.profiler.integrations import embeddings

    makers: tuple[tuple[str, Callable[[Any], Any]], ...] = (
        ("completion", _sync), ("acompletion", _async),
        ("embedding", lambda f: embeddings.litellm_wrapper(f, is_async=False)),
        ("aembedding", lambda f: embeddings.litellm_wrapper(f, is_async=True)))
    for attr, make in makers:
        original = getattr(litellm, attr)
        wrapper = make(original)
        setattr(litellm, attr, wrapper)
        patches.append(_ModulePatch(litellm, attr, original))  # type: ignore[arg-type]
        targets[id(original)] = (original, wrapper)
    return patches + _rebind(targets)
