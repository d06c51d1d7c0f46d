"""Every provider's ``usage`` block, read in its own dialect, as one tokprof :class:`Usage`.

One module, used by every SDK adapter (OpenAI, Anthropic, Gemini; litellm and openai-agents go through
those) and by the LangChain handler, so a dialect is read the same way whichever client carried it.

tokprof's convention (``profiler/model.py``): ``input_tokens`` is the *whole* prompt, cache reads and
writes included; ``output_tokens`` is the whole completion, reasoning included; ``cache_write_1h_tokens`` is
the 1-hour-TTL part of ``cache_write_tokens``. A count the provider did not report stays unknown (never 0).

Dialects and where each field is documented:

* OpenAI chat ``prompt_tokens``, ``completion_tokens``, ``prompt_tokens_details.cached_tokens``,
  ``completion_tokens_details.reasoning_tokens``
  (https://platform.openai.com/docs/api-reference/chat/object#chat/object-usage); Responses
  ``input_tokens``, ``input_tokens_details.cached_tokens``, ``output_tokens_details.reasoning_tokens``
  (https://platform.openai.com/docs/api-reference/responses/object#responses/object-usage).
* DeepSeek: top-level ``prompt_cache_hit_tokens`` / ``prompt_cache_miss_tokens`` (prompt = hit + miss)
  (https://api-docs.deepseek.com/guides/kv_cache), newer replies also the nested ``cached_tokens``;
  ``completion_tokens_details.reasoning_tokens`` for deepseek-reasoner
  (https://api-docs.deepseek.com/api/create-chat-completion).
* Kimi / Moonshot: moonshot-v1 context caching reports a top-level ``cached_tokens``; Kimi K2 the nested
  ``prompt_tokens_details.cached_tokens``; a stream puts the usage in ``choices[0].usage`` of the last chunk
  (https://platform.moonshot.ai/docs/api/chat, https://platform.moonshot.ai/docs/guide/use-kimi-api-to-complete-tool-calls).
* Qwen (DashScope, OpenAI-compatible): implicit cache ``prompt_tokens_details.cached_tokens``; explicit cache
  adds ``prompt_tokens_details.cache_creation_input_tokens`` (billed at 125%); thinking mode
  ``completion_tokens_details.reasoning_tokens`` (https://www.alibabacloud.com/help/en/model-studio/context-cache).
* GLM (Zhipu / Z.ai) ``prompt_tokens_details.cached_tokens`` (https://docs.z.ai/guides/capabilities/cache);
  Doubao (Volcengine Ark) ``prompt_tokens_details.cached_tokens``, ``completion_tokens_details.reasoning_tokens``
  (https://www.volcengine.com/docs/82379/1494384); MiniMax: OpenAI fields plus ``base_resp`` (:func:`vendor_status_error`;
  https://platform.minimax.io/docs/api-reference/text-post), a block of ``total_tokens`` alone is partial.
* Anthropic: ``input_tokens`` *excludes* the cache; ``cache_read_input_tokens``, ``cache_creation_input_tokens``
  and the TTL split ``cache_creation.ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``
  (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching#tracking-cache-performance).
* Gemini ``usage_metadata``: ``prompt_token_count`` (cached content included), ``cached_content_token_count``,
  ``candidates_token_count``, ``thoughts_token_count`` (billed as output, *not* in candidates),
  ``tool_use_prompt_token_count`` (https://ai.google.dev/api/generate-content#UsageMetadata).
* xAI: ``completion_tokens_details.reasoning_tokens`` *outside* ``completion_tokens`` (``total_tokens`` adds
  all three; https://docs.x.ai/docs/guides/reasoning): detected from the block's arithmetic
  (:func:`reasoning_outside_output`) and added into the output, which tokprof keeps reasoning-inclusive.
* OpenRouter: OpenAI fields plus ``prompt_tokens_details.cache_write_tokens`` and the charged ``usage.cost``
  (:func:`reported_cost`, kept as the call's recorded cost; https://openrouter.ai/docs/use-cases/usage-accounting).
* AWS Bedrock Converse ``usage`` (camelCase, input excluding the cache): :func:`bedrock_usage`.
* Groq: OpenAI fields; a chat or legacy completions stream's last chunk has ``x_groq.usage`` (:func:`vendor_stream_usage`).
* LangChain ``usage_metadata``: ``input_tokens`` (cache included), ``input_token_details.cache_read`` /
  ``cache_creation`` / ``ephemeral_5m_input_tokens`` / ``ephemeral_1h_input_tokens``,
  ``output_token_details.reasoning`` (https://python.langchain.com/api_reference/core/messages/langchain_core.messages.ai.UsageMetadata.html).

Partial usage is never taken as truth (:func:`reconcile`): cached > input means the input excluded the cache
(added back); input 0 for a non-empty prompt with nothing cached is dropped so local counting fills it, and
the span says why.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tokprof.profiler.model import Usage

__all__ = ["plain", "chat_usage", "responses_usage", "anthropic_usage", "gemini_usage", "langchain_usage",
           "any_usage", "reconcile", "merge_stream_usage", "estimate_missing", "reasoning_outside_output",
           "reported_cost", "bedrock_usage", "vendor_stream_usage", "vendor_status_error"]


def plain(value: Any) -> Any:
    """A pydantic/SDK object (or dict) as a plain dict; anything else unchanged."""
    if value is None or isinstance(value, (dict, int, str, float)):
        return value
    for method in ("model_dump", "to_dict", "dict"):
        fn = getattr(value, method, None)
        if callable(fn):
            try:
                out = fn()
            except TypeError:
                continue
            if isinstance(out, dict):
                return out
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return value


def _d(value: Any) -> dict[str, Any]:
    out = plain(value)
    return out if isinstance(out, dict) else {}


def _int(value: Any) -> int | None:
    """An integer count, or ``None`` for absent/null/non-numeric (never a silent 0).

    A count no provider can mean is ``None`` too (so local counting fills it, labelled as such), never
    provider truth: negative, NaN/infinite (``int(inf)`` raised ``OverflowError`` here and lost the whole
    usage block), fractional (``12.7`` was truncated to 12 and labelled ``provider``), or beyond 2**53."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, str):
            value = value.strip()
            n = int(value) if value.lstrip("-").isdigit() else float(value)
        else:
            n = value
        if not isinstance(n, int):  # float, Decimal, numpy scalar...: only a whole finite number is a count
            f = float(n)
            if not (f == f and abs(f) != float("inf") and f.is_integer()):
                return None
        n = int(n)
    except (TypeError, ValueError, OverflowError):
        return None
    return n if 0 <= n <= _MAX_COUNT else None


_MAX_COUNT = 2 ** 53
"""No single call reports more tokens than a float can hold exactly (JSON numbers beyond lose precision)."""


def _first(*values: Any) -> int | None:
    for v in values:
        n = _int(v)
        if n is not None:
            return n
    return None


def _usage(input_tokens: int | None, output_tokens: int | None, cache_read: int | None = None,
           cache_write: int | None = None, reasoning: int | None = None, write_1h: int | None = None) -> Usage:
    return Usage.from_provider(input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cache_read,
                               cache_write_tokens=cache_write, reasoning_tokens=reasoning,
                               cache_write_1h_tokens=write_1h)


def _ttl_split(creation: Any) -> tuple[int | None, int | None]:
    """(5-minute, 1-hour) cache writes from an Anthropic-style ``cache_creation`` object."""
    c = _d(creation)
    return _int(c.get("ephemeral_5m_input_tokens")), _int(c.get("ephemeral_1h_input_tokens"))


# ---------------------------------------------------------------------------------------------------
# OpenAI-compatible chat completions (OpenAI, DeepSeek, Kimi, Qwen, GLM, Doubao, MiniMax, litellm...)
# ---------------------------------------------------------------------------------------------------
def chat_usage(usage: Any) -> Usage:
    """An OpenAI-compatible chat ``usage`` in any of the dialects above."""
    u = _d(usage)
    pd = _d(u.get("prompt_tokens_details"))
    cd = _d(u.get("completion_tokens_details"))
    hit, miss = _int(u.get("prompt_cache_hit_tokens")), _int(u.get("prompt_cache_miss_tokens"))
    prompt = _int(u.get("prompt_tokens"))
    if prompt is None and hit is not None and miss is not None:
        prompt = hit + miss  # DeepSeek: prompt_tokens = hit + miss
    read = _first(pd.get("cached_tokens"), hit, u.get("cached_tokens"), u.get("cache_read_input_tokens"))
    five, hour = _ttl_split(pd.get("cache_creation") or u.get("cache_creation"))
    write = _first(pd.get("cache_creation_input_tokens"), pd.get("cache_write_tokens"),
                   u.get("cache_creation_input_tokens"))
    if write is None and (five is not None or hour is not None):
        write = (five or 0) + (hour or 0)
    reasoning = _first(cd.get("reasoning_tokens"), u.get("reasoning_tokens"))
    if prompt is None and u.get("input_tokens") is not None:  # an Anthropic-shaped block on a chat route
        return anthropic_usage(u)
    output = _first(u.get("completion_tokens"), u.get("output_tokens"))
    total = _int(u.get("total_tokens"))
    if total is not None and reasoning_outside_output(prompt, output, reasoning, total):
        # xAI's shape; with no total, more reasoning than output is left to reconcile (same reading, noted)
        output = (output or 0) + (reasoning or 0)
    return _with_total(_usage(prompt, output, read, write, reasoning, hour), total)


def _with_total(usage: Usage, total: int | None) -> Usage:
    """``usage`` with the block's ``total_tokens`` kept for :func:`reconcile` (a 0 is an unfilled field)."""
    usage.reported_total = total or None
    return usage


def reasoning_outside_output(prompt: int | None, output: int | None, reasoning: int | None,
                             total: int | None) -> bool:
    """Does this block count reasoning tokens *beside* ``completion_tokens`` rather than inside it?

    OpenAI counts them inside (``total_tokens = prompt_tokens + completion_tokens``); xAI beside: its worked
    example reports ``completion_tokens`` 31, ``reasoning_tokens`` 736, ``prompt_tokens`` 2341 and
    ``total_tokens`` 3108 = 2341 + 31 + 736 (https://docs.x.ai/docs/guides/reasoning: "Usage metrics expose
    reasoning_tokens"; both are billed as output). Decided from the block's own arithmetic, never from the
    provider's name: the total adds up only with reasoning outside, or there is more reasoning than output."""
    if not reasoning or output is None:
        return False
    if reasoning > output:
        # more reasoning than output: beside it, unless the total adds up without it (then the reasoning
        # count is the wrong one, and reconcile drops it)
        return not (prompt is not None and total is not None and total == prompt + output)
    return (prompt is not None and total is not None and total == prompt + output + reasoning
            and total != prompt + output)


def vendor_stream_usage(chunk: Any) -> Any:
    """A usage block a stream chunk carries outside ``usage``: Groq's ``x_groq.usage``, "usage information for
    the stream, only sent in the final chunk" (Groq's own SDK, generated from its API spec:
    https://github.com/groq/groq-python/blob/main/src/groq/types/chat/chat_completion_chunk.py), present
    whether or not ``stream_options.include_usage`` was sent. ``None`` when there is none."""
    vendor = plain(getattr(chunk, "x_groq", None) if not isinstance(chunk, dict) else chunk.get("x_groq"))
    usage = vendor.get("usage") if isinstance(vendor, dict) else None
    return usage if isinstance(usage, dict) and usage else None


def vendor_status_error(body: Any) -> str | None:
    """A failure reported beside HTTP 200: MiniMax's ``base_resp.status_code`` other than 0 (e.g. 1008,
    insufficient balance; https://platform.minimax.io/docs/api-reference/text-post). Only the code is kept:
    ``status_msg`` may quote the request."""
    base = plain(getattr(body, "base_resp", None) if not isinstance(body, dict) else body.get("base_resp"))
    code = base.get("status_code") if isinstance(base, dict) else None
    if isinstance(code, bool) or not isinstance(code, int) or code == 0:
        return None
    return f"provider error in base_resp: status_code {code}"


def reported_cost(usage: Any) -> Decimal | None:
    """The money (USD) a gateway says the call cost, in its ``usage`` block.

    OpenRouter returns ``usage.cost`` ("the total amount charged to your account", in credits bought 1:1
    with US dollars) and, for bring-your-own-key calls (``is_byok``), ``cost_details.upstream_inference_cost``
    ("the actual cost charged by the upstream AI provider"), which the user pays beside OpenRouter's fee
    (https://openrouter.ai/docs/use-cases/usage-accounting). ``None`` when no such figure (or a 0: a block
    that merely has the field is not a free call)."""
    u = _d(usage)
    cost = _money(u.get("cost"))
    if cost is None:
        return None
    if u.get("is_byok") is True:  # the upstream provider's charge is paid too, beside OpenRouter's fee
        upstream = _money(_d(u.get("cost_details")).get("upstream_inference_cost"))
        if upstream is not None:
            cost += upstream
    return cost if cost > 0 else None


def _money(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() and amount >= 0 else None


def responses_usage(usage: Any) -> Usage:
    """An OpenAI Responses API ``usage``."""
    u = _d(usage)
    idt = _d(u.get("input_tokens_details"))
    odt = _d(u.get("output_tokens_details"))
    return _with_total(_usage(_int(u.get("input_tokens")), _int(u.get("output_tokens")),
                              _int(idt.get("cached_tokens")),
                              _first(idt.get("cache_creation_input_tokens"), idt.get("cache_write_tokens")),
                              _int(odt.get("reasoning_tokens"))), _int(u.get("total_tokens")))


# ---------------------------------------------------------------------------------------------------
# Anthropic Messages (Anthropic, MiniMax/GLM/Kimi/DeepSeek Anthropic-compatible routes)
# ---------------------------------------------------------------------------------------------------
def anthropic_usage(usage: Any) -> Usage:
    """An Anthropic ``usage``: cache tokens added into the input; the TTL split kept."""
    u = _d(usage)
    fresh = _int(u.get("input_tokens"))
    read = _int(u.get("cache_read_input_tokens"))
    write = _int(u.get("cache_creation_input_tokens"))
    five, hour = _ttl_split(u.get("cache_creation"))
    if (five is not None or hour is not None) and (write is None or write < (five or 0) + (hour or 0)):
        write = (five or 0) + (hour or 0)
    total_in = None if fresh is None else fresh + (read or 0) + (write or 0)
    details = _d(u.get("output_tokens_details"))
    out = _usage(total_in, _int(u.get("output_tokens")), read, write, _int(details.get("thinking_tokens")),
                 hour if hour is not None else None)
    out.tool_requests = server_tool_requests(u.get("server_tool_use"))
    return out


def server_tool_requests(server_tool_use: Any) -> dict[str, int]:
    """Anthropic ``usage.server_tool_use`` (``web_search_requests``, ``web_fetch_requests``; field names as in
    anthropic-sdk-python ``types/server_tool_usage.py``) as ``Usage.tool_requests``: kind -> count, billed per
    use (:mod:`tokprof.profiler.providers.tool_prices`). Zero and junk counts are left out."""
    out: dict[str, int] = {}
    for key, value in _d(server_tool_use).items():
        n = _int(value)
        if isinstance(key, str) and key.endswith("_requests") and n:
            out[key[: -len("_requests")]] = n
    return out


def merge_stream_usage(into: dict[str, Any], usage: Any) -> None:
    """Merge one Anthropic stream event's usage into ``into``: the last report of a field wins, except that a
    0 never overwrites a count already seen for an input-side field (gateways send ``input_tokens: 0`` in
    ``message_delta`` after the real count in ``message_start``)."""
    for k, v in _d(usage).items():
        if v is None:
            continue
        if k in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens") and not v and into.get(k):
            continue
        if k == "cache_creation" and isinstance(v, dict) and into.get(k):
            merged = dict(into[k])
            merged.update({kk: vv for kk, vv in v.items() if vv or not merged.get(kk)})
            into[k] = merged
            continue
        into[k] = plain(v)


# ---------------------------------------------------------------------------------------------------
# Gemini (google-genai, REST camelCase or SDK snake_case)
# ---------------------------------------------------------------------------------------------------
def gemini_usage(meta: Any) -> Usage:
    """A Gemini ``usage_metadata``: thoughts are output tokens (billed as output) and the reasoning part;
    tool-use prompt tokens are prompt tokens."""
    m = _d(meta)

    def get(snake: str) -> int | None:
        camel = snake.split("_")[0] + "".join(p.title() for p in snake.split("_")[1:])
        return _first(m.get(snake), m.get(camel))

    prompt, cached = get("prompt_token_count"), get("cached_content_token_count")
    candidates, thoughts, tool = get("candidates_token_count"), get("thoughts_token_count"), get("tool_use_prompt_token_count")
    total_in = None if prompt is None else prompt + (tool or 0)
    output = None if candidates is None and thoughts is None else (candidates or 0) + (thoughts or 0)
    # totalTokenCount = prompt + tool-use prompt + candidates + thoughts: tokprof's input + output
    return _with_total(_usage(total_in, output, cached, None, thoughts), get("total_token_count"))


# ---------------------------------------------------------------------------------------------------
# LangChain usage_metadata
# ---------------------------------------------------------------------------------------------------
def langchain_usage(meta: Any) -> Usage:
    """LangChain ``usage_metadata`` (input already includes cache reads and writes)."""
    m = _d(meta)
    di = _d(m.get("input_token_details"))
    do = _d(m.get("output_token_details"))
    five, hour = _int(di.get("ephemeral_5m_input_tokens")), _int(di.get("ephemeral_1h_input_tokens"))
    write = _tiered(di, "cache_creation")
    if five is not None or hour is not None:
        # langchain-anthropic moves TTL-split writes out of cache_creation into these two keys
        write = max(write or 0, (five or 0) + (hour or 0))
    inp, out, reasoning = _int(m.get("input_tokens")), _int(m.get("output_tokens")), _tiered(do, "reasoning")
    if reasoning_outside_output(inp, out, reasoning, _int(m.get("total_tokens"))):
        # langchain-openai copies completion_tokens and total_tokens as the provider sent them, so xAI's
        # reasoning (beside completion_tokens) shows as total = input + output + reasoning
        out = (out or 0) + (reasoning or 0)
    return _usage(inp, out, _tiered(di, "cache_read"), write, reasoning, hour)


_TIERS = ("priority", "flex")
"""langchain-openai prefixes the detail keys with the service tier for priority/flex requests
(``flex_cache_read``, ``priority_reasoning``; ``_create_usage_metadata`` in langchain_openai/chat_models/base.py)."""


def _tiered(details: dict[str, Any], key: str) -> int | None:
    """``details[key]``, or its service-tier-prefixed spelling."""
    return _first(details.get(key), *(details.get(f"{tier}_{key}") for tier in _TIERS))


def bedrock_usage(usage: Any) -> Usage:
    """An AWS Bedrock Converse ``TokenUsage`` (camelCase ``inputTokens``, ``outputTokens``, ``totalTokens``,
    ``cacheReadInputTokens``, ``cacheWriteInputTokens``;
    https://docs.aws.amazon.com/bedrock/latest/APIReference/API_runtime_TokenUsage.html).

    ``inputTokens`` leaves the cache reads and writes out (LiteLLM's Converse transform adds them back:
    ``prompt_tokens = inputTokens + cacheReadInputTokens + cacheWriteInputTokens``), so they are added once;
    a ``totalTokens`` equal to ``inputTokens + outputTokens`` says this block's input already held them."""
    u = _d(usage)
    fresh, out = _int(u.get("inputTokens")), _int(u.get("outputTokens"))
    read = _first(u.get("cacheReadInputTokens"), u.get("cacheReadInputTokenCount"))
    write = _first(u.get("cacheWriteInputTokens"), u.get("cacheWriteInputTokenCount"))
    total = _int(u.get("totalTokens"))
    cached = (read or 0) + (write or 0)
    inclusive = (fresh is not None and out is not None and total is not None and cached > 0
                 and total == fresh + out and cached <= fresh)
    total_in = fresh if fresh is None or inclusive else fresh + cached
    return _usage(total_in, out, read, write)


def any_usage(usage: Any) -> Usage:
    """Pick the dialect from the keys of ``usage`` (for callers that do not know the API)."""
    u = _d(usage)
    if "inputTokens" in u or "outputTokens" in u:
        return bedrock_usage(u)
    if any(k in u for k in ("prompt_token_count", "promptTokenCount", "candidates_token_count", "candidatesTokenCount")):
        return gemini_usage(u)
    if "input_token_details" in u or "output_token_details" in u:
        return langchain_usage(u)
    if "prompt_tokens" in u or "prompt_cache_hit_tokens" in u or "completion_tokens" in u:
        return chat_usage(u)
    if "input_tokens_details" in u or "reasoning_tokens" in _d(u.get("output_tokens_details")):
        return responses_usage(u)
    if "input_tokens" in u and "cached_tokens" in _d(u.get("prompt_tokens_details")) and not any(
            k in u for k in ("cache_read_input_tokens", "cache_creation_input_tokens", "cache_creation")):
        # DashScope's native generation API: input_tokens/output_tokens with OpenAI's prompt_tokens_details,
        # the cached part inside input_tokens (no Anthropic cache field to say otherwise)
        pd = _d(u.get("prompt_tokens_details"))
        return _with_total(_usage(_int(u.get("input_tokens")), _int(u.get("output_tokens")),
                                  _int(pd.get("cached_tokens")), _first(pd.get("cache_creation_input_tokens")),
                                  _int(_d(u.get("output_tokens_details")).get("reasoning_tokens"))),
                           _int(u.get("total_tokens")))
    if "input_tokens" in u:
        return anthropic_usage(u)
    return _with_total(Usage(), _int(u.get("total_tokens")))  # MiniMax-style total only: partial, kept for the note


# Partial usage (reconcile / estimate_missing) lives in its own module; re-exported here, where callers
# have always found it.
from tokprof.profiler.integrations.usage_partial import estimate_missing, reconcile  # noqa: E402, F401
