"""Partial provider usage: a usage block that cannot be true is fixed or dropped (:func:`reconcile`), and a
call with no usage at all is counted locally and labelled ``estimated`` (:func:`estimate_missing`).

Principle: provider usage wins, but partial usage is never accepted as truth. Used by every SDK adapter
(:mod:`tokprof.profiler.integrations.sdk_state`) and the LangChain handler, after the dialect is read
(:mod:`tokprof.profiler.integrations.usage_dialects`, which re-exports both)."""

from __future__ import annotations

from tokprof.profiler.model import LLMCall

_INPUT_SIDE = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")


def reconcile(call: LLMCall) -> str | None:
    """Check ``call.usage`` against the call; fix or drop what cannot be true. Returns why, or ``None``.

    * cached (read + write) > input: the provider reported input *excluding* the cache (Anthropic's
      convention on an OpenAI-shaped route): the cache tokens are added back in.
    * input 0 for a non-empty prompt with nothing cached: not a real count; the input side is dropped so local
      counting fills it (labelled ``counted``/``estimated``).
    """
    u = call.usage
    if not u.known("input_tokens"):
        return None
    cached = u.cache_read_tokens + u.cache_write_tokens
    if cached > u.input_tokens:
        fresh = u.input_tokens
        u.set("input_tokens", fresh + cached, u.source("input_tokens") or "provider")
        return (f"provider input ({fresh}) excluded its cache tokens ({cached}): read as input excluding cache, "
                f"input = {fresh + cached}")
    if u.input_tokens == 0 and (call.messages or call.tools):
        for name in _INPUT_SIDE:
            u.sources.pop(name, None)
            setattr(u, name, 0)
        return "provider reported 0 input tokens for a non-empty prompt: not taken as truth, counted locally"
    return None


def estimate_missing(call: LLMCall) -> str:
    """The provider reported no usage: count the call locally now and label every count ``estimated``,
    since a local count cannot know cache hits or hidden reasoning tokens. Returns the span note."""
    from tokprof.profiler.accounting import fill_usage

    fill_usage(call)
    for name in list(call.usage.sources):
        call.usage.sources[name] = "estimated"
    return ("the provider reported no usage: tokens counted locally and labelled estimated "
            "(cache hits and hidden reasoning tokens cannot be known)")
