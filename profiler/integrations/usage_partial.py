"""Partial and impossible provider usage: the one check every provider path runs after reading a usage block in
its dialect (:func:`reconcile`), and a call with no usage at all counted locally and labelled ``estimated``
(:func:`estimate_missing`).

Principle: provider usage wins, but partial or impossible usage is never accepted as truth. Used by every SDK
adapter (:func:`tokprof.profiler.integrations.sdk_state.check_usage`, also for litellm's own streams) and the
LangChain handler, after the dialect is read (:mod:`tokprof.profiler.integrations.usage_dialects`, which
re-exports both). Junk values (negative, fractional, non-finite, bool, text) never get this far: the dialect
reader reads them as unknown, and this check then sees a partial block. Run files from elsewhere are repaired
at the loader boundary instead (:mod:`tokprof.profiler.integrity`)."""

from __future__ import annotations

from typing import Any

from tokprof.profiler.model import LLMCall

_INPUT_SIDE = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens")
_OUTPUT_SIDE = ("output_tokens", "reasoning_tokens")


def _drop(call: LLMCall, names: tuple[str, ...]) -> None:
    u = call.usage
    for name in names:
        u.sources.pop(name, None)
        setattr(u, name, 0)


def _has_output(output: Any) -> bool:
    """Did the answer hold anything (text, tool calls)? Then 0 output tokens cannot be true."""
    if not isinstance(output, dict):
        return False
    content = output.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return bool(isinstance(content, str) and content.strip()) or bool(output.get("tool_calls"))


def reconcile(call: LLMCall, *, output_final: bool = True) -> str | None:
    """Check ``call.usage`` (as read from the provider) against the call; fix or drop what cannot be true.
    Returns why (the span's ``usage_note``), or ``None`` when the usage is sound.

    * ``output_final=False`` (a stream that ended before its final chunk): the output counts seen so far
      (Anthropic's ``message_start`` placeholder, vLLM's running totals, DashScope's cumulative blocks) are
      not the call's; they are dropped and the output counted locally, labelled ``estimated``.
    * the provider's ``total_tokens`` below input + output: one of them is false and nothing says which, so
      the whole block is dropped and the call counted locally (``estimated``).
    * no input and no output count (no usage, or only ``total_tokens``): counted locally, ``estimated``.
    * cached (read + write) > input: the provider reported input *excluding* the cache (Anthropic's
      convention on an OpenAI-shaped route): the cache tokens are added back in.
    * input 0 for a non-empty prompt with nothing cached, or output 0 for a non-empty answer: not a real
      count; that side is dropped so local counting fills it (labelled ``counted``/``estimated``).
    * reasoning > output: reasoning counted beside the output (xAI's way) unless the total says the output
      already holds everything, in which case the reasoning count is the false one and is dropped.
    * one of input/output missing (absent or junk): the other is kept, the missing one counted locally.
    """
    u = call.usage
    total, u.reported_total = u.reported_total, None  # checked once, here
    notes: list[str] = []
    if not output_final and any(u.source(n) == "provider" for n in _OUTPUT_SIDE):
        _drop(call, _OUTPUT_SIDE)
        notes.append("the stream ended before its final chunk: the provider's output count so far is not the "
                     "call's, output counted locally (estimated)")
    has_in, has_out = u.known("input_tokens"), u.known("output_tokens")
    if has_in and has_out and total is not None and total < u.input_tokens + u.output_tokens:
        seen = f"total_tokens {total} < input {u.input_tokens} + output {u.output_tokens}"
        _drop(call, _INPUT_SIDE + _OUTPUT_SIDE)
        return _joined(notes, f"impossible provider usage ({seen}): not taken as truth; "
                       + estimate_missing(call).replace("the provider reported no usage: ", ""))
    if not (has_in or has_out):
        note = estimate_missing(call)
        if total is not None:
            note = (f"the provider reported only total_tokens ({total}), not its input and output: "
                    "tokens counted locally and labelled estimated")
        return _joined(notes, note)
    if not output_final:
        _estimate_output(call)
    if has_in:
        cached = u.cache_read_tokens + u.cache_write_tokens
        if cached > u.input_tokens:
            fresh = u.input_tokens
            u.set("input_tokens", fresh + cached, u.source("input_tokens") or "provider")
            notes.append(f"provider input ({fresh}) excluded its cache tokens ({cached}): read as input excluding "
                         f"cache, input = {fresh + cached}")
        elif u.input_tokens == 0 and (call.messages or call.tools):
            _drop(call, _INPUT_SIDE)
            notes.append("provider reported 0 input tokens for a non-empty prompt: not taken as truth, counted "
                         "locally")
    if has_out and output_final:
        if u.output_tokens == 0 and _has_output(call.output):
            _drop(call, _OUTPUT_SIDE)
            notes.append("provider reported 0 output tokens for a non-empty answer: not taken as truth, counted "
                         "locally")
        elif u.reasoning_tokens > u.output_tokens:
            notes.append(_reasoning_beyond_output(call, total))
    if output_final and has_in != has_out:
        missing = "output" if has_in else "input"
        notes.append(f"the provider's usage had no valid {missing} count (absent or not a count): "
                     f"{missing} counted locally")
    return _joined(notes, None)


def _reasoning_beyond_output(call: LLMCall, total: int | None) -> str:
    u = call.usage
    out, reasoning = u.output_tokens, u.reasoning_tokens
    if total is not None and total == u.input_tokens + out:
        _drop(call, ("reasoning_tokens",))
        return (f"provider reasoning tokens ({reasoning}) exceed its output ({out}) while its total holds no more: "
                "the reasoning count is dropped")
    u.set("output_tokens", out + reasoning, u.source("output_tokens") or "provider")
    return (f"provider reasoning tokens ({reasoning}) exceed its output ({out}): read as counted beside the output, "
            f"output = {out + reasoning}")


def _estimate_output(call: LLMCall) -> None:
    """Count a cut stream's output locally now, labelled ``estimated`` (the server may have generated more)."""
    from tokprof.profiler.accounting import fill_usage

    fill_usage(call)
    for name in _OUTPUT_SIDE:
        if call.usage.source(name) is not None and call.usage.source(name) != "provider":
            call.usage.sources[name] = "estimated"


def _joined(notes: list[str], last: str | None) -> str | None:
    out = [*notes, *([last] if last else [])]
    return "; ".join(out) if out else None


def estimate_missing(call: LLMCall) -> str:
    """The provider reported no usage: count the call locally now and label every count ``estimated``,
    since a local count cannot know cache hits or hidden reasoning tokens. Returns the span note."""
    from tokprof.profiler.accounting import fill_usage

    fill_usage(call)
    for name in list(call.usage.sources):
        call.usage.sources[name] = "estimated"
    return ("the provider reported no usage: tokens counted locally and labelled estimated "
            "(cache hits and hidden reasoning tokens cannot be known)")
