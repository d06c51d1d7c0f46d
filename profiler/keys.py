"""Every span-attribute and run-metadata key that one module writes and another reads.

A key is a protocol between modules; naming it here makes a typo an ``ImportError`` instead of a silent
miss, and gives each fact one name. This module imports nothing (any layer may use it).


"""

from __future__ import annotations

from typing import Any, Mapping

# ---- span attributes --------------------------------------------------------------------------------
SERVED_BY = "served_by"
"""The call never reached the provider: the name of what answered it (``response-cache`` for tokprof's
caches, live or simulated; ``langchain-cache`` for LangChain's own cache). Billing bills such a call
nothing. One name for live and simulated hits (older run files used the two names in
:data:`LEGACY_SERVED_BY`; :func:`served_by` reads those too)."""
LEGACY_SERVED_BY: tuple[str, ...] = ("served_from", "optimizer.served_by")
CACHED_USAGE = "cached_usage"
"""Usage the cached answer reported when it was first produced (what a cache hit saved)."""
CACHE_ORIGIN = "optimizer.cache_origin"
"""For a simulated response-cache hit: which earlier call (``run_id/span_id``) it reused."""
BILLING_PLAN = "billing.plan"
"""Explicit prompt-cache breakpoints the ``prompt-cache`` pass planned for the call
(``{"breakpoints": [message index, ...], "ttl": "5m"|"1h", "provider": ...}``)."""
BILLING = "billing"
"""How the billing simulator billed the call (basis, cache tokens, cost); also a run-metadata key holding
the run's billing mode (``{"mode": "recorded"|"automatic"|"simulate", "by": pass}``)."""
TRANSFORMED_BY = "transformed_by"
"""Names of the middlewares (e.g. the live layer) that rewrote the request before it was sent."""
LIVE_DELTAS = "tokprof.live_deltas"
"""Per live pass, what it did to this request: ``{pass: {"tokens_before", "tokens_after", ...}}``."""
TIME_TO_FIRST_TOKEN = "time_to_first_token_ns"
STREAM_INCOMPLETE = "stream_incomplete"
LANGCHAIN_RUN_ID = "langchain.run_id"
NOT_SENT = "llm.not_sent"
"""``True`` on a failed ``llm`` span whose client raised before sending any request (counts 0: not billed)."""
RECORDED_BY = "recorded_by"
"""``"http"`` on an ``llm`` span recorded by the HTTP-level fallback (``integrations/http_fallback.py``), not
by an SDK patch."""
CAPTURE = "tokprof.capture"
"""``False`` on a root span whose profile did not capture payloads."""
PAYLOAD_NOTE = "tokprof.payload"
"""Set to ``"not captured"`` on a span whose payload was dropped."""

# ---- run metadata -----------------------------------------------------------------------------------
SOURCE = "source"
"""Where the run came from: ``live``, ``pytest``, or an importer's format name."""
LIVE_PASSES = "live_passes"
"""Live passes that were active in a ``profile(optimize=[...])`` block."""
LIVE_PASSES_UNAVAILABLE = "live_passes_unavailable"
"""Requested live passes that could not be switched on (unknown names, or no live layer loaded)."""
LIVE_STATS = "live_stats"
"""What each live pass did over the block (``{pass: {counter: n}}``)."""
OPTIMIZED_BY = "optimized_by"
"""Names of the simulated passes a run went through."""

# ---- message markers (inside a response's metadata, not a span) ---------------------------------------
RESPONSE_CACHE_MARK = "tokprof_response_cache"
"""Set to ``"hit"`` in a LangChain message's ``response_metadata`` by the live response cache."""


def served_by(attributes: Mapping[str, Any] | None) -> str | None:
    """What served the call without reaching the provider, or ``None`` (reads the legacy names too)."""
    if not attributes:
        return None
    for key in (SERVED_BY, *LEGACY_SERVED_BY):
        value = attributes.get(key)
        if value:
            return str(value)
    return None

LLM_OPERATION = "llm.operation"
"""An ``llm`` span that is not a chat/completion turn: ``"embeddings"`` (input tokens only; no prompt cache,
no conversation history). Absent on chat calls."""
EMBEDDINGS = "embeddings"
"""The ``LLM_OPERATION`` value of an embedding call."""


def is_embedding(attributes: Mapping[str, Any] | None) -> bool:
    """Whether a span's attributes mark an embedding call."""
    return bool(attributes) and attributes.get(LLM_OPERATION) == EMBEDDINGS  # type: ignore[union-attr]
