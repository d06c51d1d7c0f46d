"""What makes two LLM requests the same request: the key of a request (its output-relevant parameters,
not transport ones) and whether it is deterministic enough to answer from a cache."""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence
from tokprof.optimizers.billing import request_digest
from tokprof.profiler.model import LLMCall


TRANSPORT_PARAMS = frozenset({
    "stream", "stream_options", "timeout", "request_timeout", "user", "metadata", "extra_headers",
    "extra_query", "extra_body", "api_key", "base_url", "api_base", "organization", "max_retries",
    "http_client", "default_headers", "callbacks", "tags", "run_name", "service_tier", "store",
})
"""Parameters that change how a request travels, not what the model answers."""


def output_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters that change the model's output (everything but transport)."""
    return {k: v for k, v in (params or {}).items() if k not in TRANSPORT_PARAMS and v is not None}


def request_key(provider: str | None, model: str | None, messages: Sequence[Any],
                tools: Iterable[Any] | None = None, params: Mapping[str, Any] | None = None,
                namespace: str = "") -> str:
    """The canonical hash of a request (hex)."""
    return request_digest([namespace, (provider or "").lower(), model or "", list(messages),
                           list(tools or []), output_params(params)])


def call_key(call: LLMCall, namespace: str = "") -> str:
    return request_key(call.provider, call.model, call.messages, call.tools, call.params, namespace)


def is_deterministic(params: Mapping[str, Any] | None) -> bool | None:
    """True for temperature 0 or a fixed seed; False for a sampling temperature; None when unknown."""
    params = params or {}
    if params.get("seed") is not None:
        return True
    t = params.get("temperature")
    if t is None:
        return None
    try:
        return float(t) == 0.0
    except (TypeError, ValueError):
        return None
