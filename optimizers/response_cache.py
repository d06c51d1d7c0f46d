"""Exact response caching: the ``response-cache`` pass (simulated) and a live cache.

A request is identified by a canonical hash of what changes the model's answer: provider, model,
messages, tool definitions and the output-changing parameters (:func:`request_key`). Transport details
(``stream``, ``timeout``, ``user``, headers...) are not part of it.

* :class:`ResponseCachePass` replays a recorded run (or every run of one invocation, e.g. the trials of a
  benchmark, through ``ctx.state``): a call whose request was already seen is served from the cache, so
  it costs nothing and sends no tokens. Only deterministic requests are served by default.
* :class:`ResponseCache` is the live cache: SQLite-backed, JSON values only (safe under concurrent processes),
  with a TTL, a size cap and a namespace. :class:`TokprofLLMCache` plugs it into LangChain
  (``set_llm_cache(TokprofLLMCache())``) and :func:`cached_client` wraps an OpenAI or Anthropic client.
  Errors and streams are never stored: a failed call raises as it would without the cache and leaves no
  entry behind.

Deterministic means ``temperature == 0`` or a fixed ``seed``; anything else could legitimately return a
different answer, so it is not cached unless ``deterministic_only=False``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

from tokprof.optimizers.base import Evidence, LedgerRow, PassContext, register
from tokprof.profiler import keys
from tokprof.profiler.model import Run, Usage
from tokprof.optimizers.request_keys import (
    call_key, is_deterministic, output_params, request_key, TRANSPORT_PARAMS
)
from tokprof.optimizers.response_store import CacheError, default_cache_dir, ResponseCache
from tokprof.optimizers.cached_clients import cached_client, make_langchain_cache_class, SERVED_BY_CACHE

# The public names of this module, including those re-exported from the modules it was split into.
__all__ = ["cached_client", "CacheError", "call_key", "default_cache_dir", "is_deterministic", "output_params", "repeated_requests",
           "request_key", "ResponseCache", "ResponseCachePass", "SERVED_BY_CACHE", "TRANSPORT_PARAMS"]


# ---------------------------------------------------------------------------------------------------
# simulated pass
# ---------------------------------------------------------------------------------------------------
@register
class ResponseCachePass:
    """Serve calls whose full request repeats an earlier one (in this run or an earlier run of the same
    invocation) from an exact response cache."""

    name: ClassVar[str] = "response-cache"
    description: ClassVar[str] = ("serve calls whose exact request (model, messages, tools, output "
                                  "parameters) was already answered, across the runs of one invocation")
    evidence: ClassVar[Evidence] = "simulated"
    reads: ClassVar[frozenset[str]] = frozenset({"messages", "tools", "params", "model"})
    changes: ClassVar[frozenset[str]] = frozenset({"usage", "cache"})
    lossless: ClassVar[bool] = True
    """Serves only deterministic requests (temperature 0 or a seed) by default: the answer is the one the
    provider gave to the identical request."""

    def __init__(self, deterministic_only: bool = True, unknown_temperature: str = "serve",
                 namespace: str = "") -> None:
        """``unknown_temperature``: ``serve`` (with a medium risk note) or ``skip`` requests whose
        sampling parameters were not recorded."""
        if unknown_temperature not in ("serve", "skip"):
            raise ValueError("response-cache: unknown_temperature must be 'serve' or 'skip'")
        self.deterministic_only = deterministic_only
        self.unknown_temperature = unknown_temperature
        self.namespace = namespace

    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]:
        new = run.copy()
        seen: dict[str, dict[str, str]] = ctx.state.setdefault(self.name, {}).setdefault("seen", {})
        rows = []
        ordered = sorted(new.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id))
        for span in ordered:
            call = span.llm
            assert call is not None
            if span.status == "error" or keys.served_by(span.attributes):
                continue  # a failed call left nothing to serve; an already served one sent nothing
            embedding = keys.is_embedding(span.attributes)
            # an embedding has no sampling: the same input to the same model is the same vector
            det = True if embedding else is_deterministic(call.params)
            if self.deterministic_only and (det is False or (det is None and self.unknown_temperature == "skip")):
                continue
            key = call_key(call, self.namespace)
            origin = seen.get(key)
            if origin is None:
                # only a completed answer can be served later
                if call.output is not None or span.status == "ok":
                    seen[key] = {"run_id": new.run_id, "span_id": span.span_id}
                continue
            before = call.usage.copy()
            served = Usage()
            for f in ("input_tokens", "output_tokens"):
                served.set(f, 0, call.usage.source(f) or "estimated")
            call.usage = served
            span.set_attribute(keys.SERVED_BY, self.name)
            span.set_attribute(keys.CACHE_ORIGIN, origin)
            risk = ("low: the same input embedded again by the same model" if embedding
                    else "low: identical request at temperature 0 / fixed seed")
            if det is None:
                risk = "medium: sampling parameters not recorded; a repeat may have answered differently"
            where = "this run" if origin["run_id"] == new.run_id else f"run {origin['run_id']}"
            rows.append(LedgerRow(
                pass_name=self.name, span_id=span.span_id, model=call.model,
                change=f"served from response cache (same request as span {origin['span_id']} in {where})",
                evidence=self.evidence,
                input_tokens_before=before.input_tokens, input_tokens_after=0,
                output_tokens_before=before.output_tokens, output_tokens_after=0,
                risk=risk, details={"origin": origin, "key": key}))
        return new, rows


def repeated_requests(runs: Iterable[Run]) -> int:
    """How many calls repeat the full request of an earlier call (all runs in order; no filters)."""
    seen: set[str] = set()
    n = 0
    for run in runs:
        for span in sorted(run.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id)):
            assert span.llm is not None
            k = call_key(span.llm)
            n += k in seen
            seen.add(k)
    return n


def __getattr__(name: str) -> Any:
    # langchain-core is imported only when the LangChain cache is asked for.
    if name == "TokprofLLMCache":
        cls = make_langchain_cache_class()
        globals()["TokprofLLMCache"] = cls
        return cls
    raise AttributeError(name)


