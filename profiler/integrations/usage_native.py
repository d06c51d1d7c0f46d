"""Usage blocks of the native APIs that tokprof reads only at the HTTP level (:mod:`.http_fallback`): Ollama
and Cohere v2. Same conventions as :mod:`.usage_dialects` (input includes cached tokens; a count the provider
did not report stays unknown), and the same integer check (:func:`usage_dialects._int` rejects junk counts).

* Ollama: ``prompt_eval_count`` ("Number of tokens in the prompt") and ``eval_count`` ("Number of tokens
  generated in the response"), on the response, or on a stream's final object (``done: true``)
  (https://docs.ollama.com/api/chat, https://docs.ollama.com/api/usage).
* Cohere v2 chat: ``usage.billed_units.input_tokens`` / ``output_tokens`` are what is billed; ``usage.tokens``
  what was processed, which can be more: tokens Cohere adds itself are not billed
  (https://docs.cohere.com/v2/docs/how-does-cohere-pricing-work). ``usage.cached_tokens``: "the number of
  prompt tokens that hit the inference cache" (Cohere's SDK, generated from its API definition:
  cohere/types/usage.py). A stream carries the block in ``message-end``'s ``delta.usage``
  (https://docs.cohere.com/reference/chat-stream).
"""

from __future__ import annotations

from typing import Any

from tokprof.profiler.integrations.usage_dialects import _d, _first, _int, _usage
from tokprof.profiler.model import Usage

__all__ = ["ollama_usage", "cohere_usage"]


def ollama_usage(body: Any) -> Usage:
    """Usage of an Ollama ``/api/chat`` or ``/api/generate`` response object (the final one of a stream)."""
    b = _d(body)
    return _usage(_int(b.get("prompt_eval_count")), _int(b.get("eval_count")))


def cohere_usage(usage: Any) -> Usage:
    """A Cohere v2 ``usage``: the billed counts win (they are what is paid); the processed ``tokens`` only
    when no billed count was sent."""
    u = _d(usage)
    billed, tokens = _d(u.get("billed_units")), _d(u.get("tokens"))
    return _usage(_first(billed.get("input_tokens"), tokens.get("input_tokens")),
                  _first(billed.get("output_tokens"), tokens.get("output_tokens")),
                  _int(u.get("cached_tokens")))
