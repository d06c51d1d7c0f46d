"""The generic fallback: LLM API calls made by client libraries tokprof has no SDK patch for (groq, mistralai,
cohere, together, ollama, a hand-written ``httpx``/``requests`` post...) are recorded at the HTTP level.

``httpx`` and ``httpx2`` (``Client.send`` / ``AsyncClient.send``, here) and ``requests`` (``Session.send``,
``http_requests.py``) are hooked, automatically inside ``profile()`` like the SDKs (:mod:`.auto`;
``TOKPROF_HTTP_FALLBACK=0`` turns this hook alone off). A POST whose path and JSON body are an LLM API's (:mod:`.http_routes`) becomes one ``llm``
span: the request as messages, the response's usage read by the SDK integrations' own dialect code
(:mod:`.usage_dialects`, :mod:`.usage_native`), marked ``recorded_by: "http"``.

Never twice: a request made inside a call an SDK patch is recording (``sdk_state.IN_SDK_CALL``) is left to
it; one made under a model span (LangChain, litellm) only hands its provider usage up to that span, as an SDK
call does there (``take_sdk_usage``).

Never in the way: the caller gets the very response object back. A streamed body (SSE, NDJSON) is watched by
swapping the response's byte stream for one that yields the same bytes while parsing a copy; a stream the
caller does not finish is recorded incomplete, its usage counted locally and labelled. Every tokprof error is
logged once and swallowed; the caller's exceptions and HTTP errors reach the caller unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import urlsplit

from tokprof.profiler import hooks, keys
from tokprof.profiler.hooks import internal_error, start_span
from tokprof.profiler.integrations import http_routes
from tokprof.profiler.integrations.http_body import MAX_BODY, NO_BODY, Sink, loads
from tokprof.profiler.integrations.sdk_patching import Patch, patch, unpatch
from tokprof.profiler.integrations.sdk_state import HTTP_WATCH, IN_SDK_CALL, CallState
from tokprof.profiler.integrations.sdk_streams import _track, _untrack
from tokprof.profiler.model import Span

__all__ = ["patch_httpx", "patch_httpx2", "HTTPStatusError", "Exchange", "begin_exchange", "answered"]

_PATH_ENDS = ("/chat/completions", "/completions", "/embeddings", "/responses", "/messages", ":generateContent",
              ":streamGenerateContent", "/api/chat", "/api/generate", "/v2/chat")
"""A cheap first filter on the URL path, before any body is parsed (:func:`http_routes.match` decides)."""


class HTTPStatusError(Exception):
    """What the span records for an HTTP error answer (the caller gets the response itself, unchanged)."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}")
        self.status_code = status_code


class Exchange:
    """One recognised request and the span it fills."""

    def __init__(self, state: CallState) -> None:
        self.state = state
        self.sink: Sink | None = None
        self.broken = False

    def fail(self, exc: BaseException) -> None:
        self.state.fail(exc)

    def start_body(self, headers: Any) -> Sink:
        self.sink = Sink(self.state.adapter, str(headers.get("content-type") or ""),
                          str(headers.get("content-encoding") or ""))
        return self.sink

    def feed(self, chunk: Any) -> None:
        if self.broken or self.sink is None or self.state.done:
            return  # (done: recorded already, e.g. by the profile's exit while the caller reads on)
        try:
            self.sink.feed(bytes(chunk))
        except Exception as exc:  # never the caller's problem: stop reading this body
            self.broken = True
            internal_error("http fallback response body", exc)

    def end(self, error: BaseException | None, complete: bool) -> None:
        if self.state.done:
            return
        _untrack(self.state)
        # an unreadable body still ends through an accumulator, so the usage check counts the call locally
        self.state.end_stream(NO_BODY if self.broken or self.sink is None else self.sink, error, complete)
        self.sink = None  # the call is recorded: the copy is not kept as long as the caller keeps the response


def begin_exchange(method: Any, url: Any, read_body: Callable[[], Any]) -> Exchange | None:
    """The exchange to record, or ``None`` (not an LLM call, recorded elsewhere, or outside a profile).
    Never raises."""
    sdk = IN_SDK_CALL.get()
    if sdk is not None and sdk.done:
        sdk = None
    try:
        if sdk is not None:
            sdk.http_requests += 1  # any request, whatever its path: the call did send something
            if sdk.span is not None:
                return None  # an SDK patch records this call
        if str(method).upper() != "POST":
            return None
        url = str(url)
        path = urlsplit(url).path.rstrip("/")
        if not path.endswith(_PATH_ENDS):
            return None
        parent = hooks.current_span() or hooks.implicit_root()
        if parent is None:
            return None
        raw = read_body()
        if raw is None or len(raw) > MAX_BODY:
            return None
        body = loads(raw)  # not JSON (form data, binary, absurdly nested): not an LLM call, left alone
        route = http_routes.match("POST", url, body)
        if route is None:
            return None
        call = route.adapter.request(body)
        if route.provider:
            call.provider = route.provider
        state = CallState(route.adapter, body)
        state.raw = "http"  # the live middleware never sees these (it rewrites SDK calls, not bytes)
        if parent.kind == "llm":
            # under a model span (LangChain, litellm) the call is already recorded: watched on a detached
            # span, its provider usage handed up, as _sdk.begin does for an SDK call there
            state.enriches = parent
            span: Span | None = Span("http-" + parent.span_id, parent.span_id, parent.run_id, "llm", route.name,
                                     hooks.perf_ns(), hooks.wall_ns(), None, "ok", None, None, None, call)
        else:
            span = start_span(route.name, "llm", parent=parent, llm=call)
        if span is None:
            return None
        state.span = span
        span.set_attribute(keys.RECORDED_BY, "http")
        operation = getattr(route.adapter, "operation", None)
        if operation is not None:
            span.set_attribute(keys.LLM_OPERATION, operation)
        return Exchange(state)
    except Exception as exc:
        if sdk is None or not sdk.internal_failure:  # the SDK layer already said it failed on this call
            internal_error("http fallback request", exc)
        return None


def answered(ex: Exchange, status: Any, headers: Any, content: Callable[[], Any] | None) -> bool:
    """Record the answer's status; a body already read (``content``) is parsed now. ``True`` when the body
    is still to come (the caller streams it)."""
    try:
        if isinstance(status, int) and 300 <= status < 400:
            # a redirect is not an answer: the request sent on to the new location is the call (httpx follows
            # inside send(); requests sends it through Session.send again). The span is dropped, never ended.
            ex.state.done = True
            return False
        if isinstance(status, int) and status >= 400:
            ex.fail(HTTPStatusError(status))
            return False
        sink = ex.start_body(headers)
        if content is not None:
            sink.decoder = None  # the library already decoded it
            ex.feed(content())
            ex.end(None, True)
            return False
        _track(ex.state, sink)
        return True
    except Exception as exc:
        internal_error("http fallback response", exc)
        ex.end(None, False)
        return False


# ---------------------------------------------------------------------------------------------------
# httpx / httpx2
# ---------------------------------------------------------------------------------------------------
def _httpx_body(request: Any) -> Any:
    try:
        return request.content
    except Exception:  # a streaming request body (RequestNotRead): not an LLM call tokprof can read
        return None


def tee_chunks(inner: Iterable[Any], ex: Exchange, feed: Callable[[Any], None]) -> Iterator[Any]:
    """The chunks of ``inner`` unchanged, each passed to ``feed`` first; the exchange ends when the stream
    does (complete, or with the error the caller sees). A stream the caller drops is ended by ``close``."""
    complete, error = False, None
    try:
        for chunk in inner:
            feed(chunk)
            yield chunk
        complete = True
    except GeneratorExit:
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        if complete or error is not None:
            ex.end(error, complete)


_tee_classes: dict[tuple[str, bool], type] = {}


def _tee_class(module: Any, is_async: bool) -> type:
    """A byte stream of ``module`` (``SyncByteStream`` / ``AsyncByteStream``, which httpx checks with
    ``isinstance``) that yields the inner stream's bytes unchanged and feeds a copy to the exchange."""
    key = (module.__name__, is_async)
    if key in _tee_classes:
        return _tee_classes[key]
    if is_async:
        class AsyncTee(module.AsyncByteStream):
            def __init__(self, inner: Any, ex: Exchange) -> None:
                self._inner, self._ex = inner, ex

            async def __aiter__(self) -> Any:
                complete, error = False, None
                try:
                    async for chunk in self._inner:
                        self._ex.feed(chunk)
                        yield chunk
                    complete = True
                except GeneratorExit:
                    raise
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    if complete or error is not None:
                        self._ex.end(error, complete)

            async def aclose(self) -> None:
                try:
                    await self._inner.aclose()
                finally:
                    self._ex.end(None, False)

        _tee_classes[key] = AsyncTee
    else:
        class SyncTee(module.SyncByteStream):
            def __init__(self, inner: Any, ex: Exchange) -> None:
                self._inner, self._ex = inner, ex

            def __iter__(self) -> Any:
                return tee_chunks(self._inner, self._ex, self._ex.feed)

            def close(self) -> None:
                try:
                    self._inner.close()
                finally:
                    self._ex.end(None, False)

        _tee_classes[key] = SyncTee
    return _tee_classes[key]


def _watch_httpx(ex: Exchange, response: Any, module: Any, is_async: bool) -> Any:
    """Returns ``response`` itself; its byte stream swapped for a tee when the body is still to come."""
    read = bool(getattr(response, "is_stream_consumed", False)) or hasattr(response, "_content")
    if answered(ex, getattr(response, "status_code", None), response.headers,
                 (lambda: response.content) if read else None):
        try:
            response.stream = _tee_class(module, is_async)(response.stream, ex)
        except Exception as exc:
            internal_error("http fallback stream", exc)
            ex.end(None, False)
    return response


def _httpx_factories(module: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    def make_sync(original: Any) -> Any:
        @functools.wraps(original)
        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            ex = begin_exchange(getattr(request, "method", ""), getattr(request, "url", ""), lambda: _httpx_body(request))
            if ex is None:
                return original(self, request, *args, **kwargs)
            try:
                response = original(self, request, *args, **kwargs)
            except BaseException as exc:
                ex.fail(exc)
                raise
            return _watch_httpx(ex, response, module, False)
        return send

    def make_async(original: Any) -> Any:
        @functools.wraps(original)
        async def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            ex = begin_exchange(getattr(request, "method", ""), getattr(request, "url", ""), lambda: _httpx_body(request))
            if ex is None:
                return await original(self, request, *args, **kwargs)
            try:
                response = await original(self, request, *args, **kwargs)
            except BaseException as exc:
                ex.fail(exc)
                raise
            return _watch_httpx(ex, response, module, True)
        return send

    return make_sync, make_async


def _patch_httpx_like(name: str) -> list[Patch]:
    import importlib

    module = importlib.import_module(name)
    make_sync, make_async = _httpx_factories(module)
    patches: list[Patch] = []
    try:
        patches.append(patch(module.Client, "send", make_sync))
        patches.append(patch(module.AsyncClient, "send", make_async))
    except BaseException:
        unpatch(patches)
        raise
    return patches


def _watching() -> bool:
    """Whether this module's hook is installed on every imported httpx-like library (those the patched SDKs
    send through: httpx2 for OpenAI and Anthropic, httpx for zai-sdk and Ark)."""
    import sys

    modules = [m for m in (sys.modules.get("httpx2"), sys.modules.get("httpx")) if m is not None]
    for module in modules:
        for cls in (getattr(module, "Client", None), getattr(module, "AsyncClient", None)):
            layer = getattr(getattr(cls, "__dict__", {}).get("send"), "__tokprof_layer__", None)
            if layer is None or not layer.active:
                return False
    return bool(modules)


HTTP_WATCH[0] = _watching


def patch_httpx() -> list[Patch]:
    return _patch_httpx_like("httpx")


def patch_httpx2() -> list[Patch]:
    """httpx2: the httpx fork the OpenAI and Anthropic SDKs (and mistralai) are built on."""
    return _patch_httpx_like("httpx2")
