"""Provider usage blocks in each provider's own dialect, read into one shape, and the richest consistent one chosen.

A foreign file may keep several usage blocks for one call: the harness's own ``usage`` (often LiteLLM's
OpenAI-style ``prompt_tokens``/``completion_tokens``) and the provider's raw response beside it (``raw_data``),
which may say more (cache reads and writes, the 1-hour TTL split, reasoning). The dialects differ in one
trap: whether the input count *includes* cached tokens.

* OpenAI Chat Completions ``prompt_tokens`` includes ``prompt_tokens_details.cached_tokens``
  (https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage); Responses API
  ``input_tokens`` includes ``input_tokens_details.cached_tokens``
  (https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage).
* Anthropic ``input_tokens`` *excludes* ``cache_read_input_tokens`` and ``cache_creation_input_tokens``
  ("total input tokens = input_tokens + cache_creation_input_tokens + cache_read_input_tokens";
  ``cache_creation.ephemeral_5m_input_tokens``/``ephemeral_1h_input_tokens`` split the writes by TTL)
  (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance).
* Gemini ``usageMetadata.promptTokenCount`` includes ``cachedContentTokenCount``; ``thoughtsTokenCount`` is
  billed as output beside ``candidatesTokenCount``
  (https://ai.google.dev/api/generate-content#UsageMetadata).
* xAI counts ``reasoning_tokens`` beside ``completion_tokens`` (https://docs.x.ai/docs/guides/reasoning): read
  from the block's arithmetic and added into the output once.
* AWS Bedrock Converse camelCase ``inputTokens`` excludes ``cacheReadInputTokens``/``cacheWriteInputTokens``
  (https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html).
* Some harnesses copy Anthropic's count into ``prompt_tokens``: a cached count larger than the prompt count
  can only mean the prompt count excludes the cache, and it is read that way.

tokprof's :class:`~tokprof.profiler.model.Usage` keeps ``input_tokens`` as the *whole* prompt (cache included),
so every reading here is normalised to that, once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from tokprof.profiler.integrations.usage_dialects import bedrock_usage, reasoning_outside_output
from tokprof.profiler.model import Usage

_COUNT_FIELDS = ("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning")


@dataclass
class Reading:
    """One usage block, normalised: ``input`` is the whole prompt (cache reads and writes included)."""

    dialect: str
    input: int | None = None
    output: int | None = None
    cache_read: int | None = None
    cache_write: int | None = None
    cache_write_1h: int | None = None
    reasoning: int | None = None
    reported_input: int | None = None
    """The input count exactly as the block wrote it (differs from ``input`` when that excluded the cache)."""

    @property
    def richness(self) -> int:
        """How many counts the block states (more = richer)."""
        return sum(getattr(self, f) is not None for f in _COUNT_FIELDS)

    def to_usage(self) -> Usage:
        return Usage.from_provider(input_tokens=self.input, output_tokens=self.output,
                                   cache_read_tokens=self.cache_read, cache_write_tokens=self.cache_write,
                                   cache_write_1h_tokens=self.cache_write_1h, reasoning_tokens=self.reasoning)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _int(value: Any) -> int | None:
    if value is None or value == "None" or value == "" or isinstance(value, bool):
        return None
    try:
        n = int(float(value)) if isinstance(value, (str, float)) else int(value)
    except (TypeError, ValueError):
        return None
    return n if n >= 0 else None


def _first_int(*values: Any) -> int | None:
    for v in values:
        n = _int(v)
        if n is not None:
            return n
    return None


def _sub(d: Any, key: str) -> dict[str, Any]:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def read_usage(block: Any) -> Reading | None:
    """A usage block of any known dialect, normalised; ``None`` when it holds no token count."""
    if not isinstance(block, dict):
        return None
    if isinstance(block.get("usageMetadata"), dict):
        block = block["usageMetadata"]
    if isinstance(block.get("usage"), dict) and not any(k in block for k in ("prompt_tokens", "input_tokens")):
        block = block["usage"]
    if "promptTokenCount" in block or "candidatesTokenCount" in block:
        return _gemini(block)
    if "inputTokens" in block or "outputTokens" in block:
        return _bedrock(block)
    if "prompt_tokens" in block or "completion_tokens" in block:
        return _openai_chat(block)
    if "input_tokens" in block or "output_tokens" in block:
        if "cache_read_input_tokens" in block or "cache_creation_input_tokens" in block or "cache_creation" in block:
            return _anthropic(block)
        return _openai_responses(block)
    return None


def _anthropic(b: dict[str, Any]) -> Reading:
    fresh, read, write = _int(b.get("input_tokens")), _int(b.get("cache_read_input_tokens")), \
        _int(b.get("cache_creation_input_tokens"))
    ttl = _sub(b, "cache_creation")
    w5, w1h = _int(ttl.get("ephemeral_5m_input_tokens")), _int(ttl.get("ephemeral_1h_input_tokens"))
    if write is None and (w5 is not None or w1h is not None):
        write = (w5 or 0) + (w1h or 0)
    total = None if fresh is None else fresh + (read or 0) + (write or 0)
    return Reading("anthropic", total, _int(b.get("output_tokens")), read, write,
                   w1h if w1h is not None and write is not None and w1h <= write else None, None, fresh)


def _openai_chat(b: dict[str, Any]) -> Reading:
    prompt = _int(b.get("prompt_tokens"))
    details = _sub(b, "prompt_tokens_details")
    hit, miss = _int(b.get("prompt_cache_hit_tokens")), _int(b.get("prompt_cache_miss_tokens"))
    if prompt is None and hit is not None and miss is not None:
        prompt = hit + miss  # DeepSeek: prompt = hit + miss (https://api-docs.deepseek.com/guides/kv_cache)
    # cache reads: LiteLLM/Anthropic-style, OpenAI's nested, DeepSeek's hit count, Moonshot's top level
    read = _first_int(b.get("cache_read_input_tokens"), details.get("cached_tokens"), hit, b.get("cached_tokens"))
    # cache writes: LiteLLM/Anthropic-style, LiteLLM's nested, OpenRouter's and Qwen's nested names
    write = _first_int(b.get("cache_creation_input_tokens"), details.get("cache_creation_tokens"),
                       details.get("cache_write_tokens"), details.get("cache_creation_input_tokens"))
    reasoning = _int(_sub(b, "completion_tokens_details").get("reasoning_tokens"))
    output = _int(b.get("completion_tokens"))
    total = prompt
    if prompt is not None and (read or 0) > prompt:
        # More cached than prompted: this prompt count excludes the cache (Anthropic's count under an
        # OpenAI name). Add the cache once, here, and nowhere else.
        total = prompt + (read or 0) + (write or 0)
    if reasoning_outside_output(prompt, output, reasoning, _int(b.get("total_tokens"))):
        # reasoning counted beside completion_tokens (xAI: total = prompt + completion + reasoning): both
        # are billed output, and tokprof's output includes reasoning
        output = (output or 0) + (reasoning or 0)
    w1h = _int(_sub(b, "cache_creation").get("ephemeral_1h_input_tokens"))
    return Reading("openai_chat", total, output, read, write,
                   w1h if w1h is not None and write is not None and w1h <= write else None, reasoning, prompt)


def _openai_responses(b: dict[str, Any]) -> Reading:
    inp = _int(b.get("input_tokens"))
    read = _int(_sub(b, "input_tokens_details").get("cached_tokens"))
    if read is None:
        read = _int(b.get("cached_input_tokens"))  # Codex CLI's token_count events
    reasoning = _int(_sub(b, "output_tokens_details").get("reasoning_tokens"))
    if reasoning is None:
        reasoning = _int(b.get("reasoning_output_tokens"))
    total = inp
    if inp is not None and read is not None and read > inp:
        total = inp + read
    return Reading("openai_responses", total, _int(b.get("output_tokens")), read, None, None, reasoning, inp)


def _gemini(b: dict[str, Any]) -> Reading:
    prompt, cand, thoughts = _int(b.get("promptTokenCount")), _int(b.get("candidatesTokenCount")), \
        _int(b.get("thoughtsTokenCount"))
    output = None if cand is None and thoughts is None else (cand or 0) + (thoughts or 0)
    return Reading("gemini", prompt, output, _int(b.get("cachedContentTokenCount")), None, None, thoughts, prompt)


def _bedrock(b: dict[str, Any]) -> Reading:
    """AWS Bedrock Converse camelCase usage (input excluding the cache; see
    :func:`tokprof.profiler.integrations.usage_dialects.bedrock_usage`, which decides it)."""
    u = bedrock_usage(b)
    fields_ = u.sources
    return Reading("bedrock", u.input_tokens if "input_tokens" in fields_ else None,
                   u.output_tokens if "output_tokens" in fields_ else None,
                   u.cache_read_tokens if "cache_read_tokens" in fields_ else None,
                   u.cache_write_tokens if "cache_write_tokens" in fields_ else None, None, None,
                   _int(b.get("inputTokens")))


def consistent(a: Reading, b: Reading) -> bool:
    """Do two readings describe the same call? Same output (when both say), and the same prompt either as a
    whole or as one's cache-excluding count seen in the other."""
    if a.output is not None and b.output is not None and a.output != b.output:
        return False
    if a.input is None or b.input is None:
        return True
    return a.input == b.input or a.reported_input == b.reported_input


def choose(readings: list[Reading | None]) -> tuple[Reading | None, list[str]]:
    """The richest reading consistent with the first (the harness's own ``usage``); notes say what was set aside.

    When the first reading states its prompt count the way a richer one's cache-excluding count is written,
    the richer reading's normalised input (cache added once) wins: that is how a hidden 90% of cached input
    is recovered without ever adding the cache twice.
    """
    present = [r for r in readings if r is not None and r.richness]
    if not present:
        return None, []
    primary = present[0]
    notes: list[str] = []
    best = primary
    for r in present[1:]:
        if not consistent(primary, r):
            notes.append(f"a {r.dialect} usage block disagrees with the recorded usage "
                         f"(input {r.input} vs {primary.input}, output {r.output} vs {primary.output}); "
                         "the recorded usage is kept")
            continue
        if r.richness > best.richness or (r.richness == best.richness and (r.input or 0) > (best.input or 0)):
            best = r
    if best is not primary:
        # Fill what the richer block leaves unsaid from the primary, so no recorded count is lost.
        for f in _COUNT_FIELDS:
            if getattr(best, f) is None and getattr(primary, f) is not None and f not in ("input",):
                setattr(best, f, getattr(primary, f))
    return best, notes
