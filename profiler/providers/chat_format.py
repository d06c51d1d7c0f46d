"""Count a chat prompt (messages + tool definitions) the way each provider bills it, incrementally.

Three templates:

* ``openai`` — OpenAI's documented accounting (openai-cookbook, "How to count tokens with tiktoken"): every
  message costs ``tokens_per_message`` (3) plus the tokens of its role and content, a ``name`` costs its
  tokens plus 1, and every reply is primed with 3 tokens. Tool definitions follow the cookbook's
  formula (``func_init`` 7 for o200k models / 10 for cl100k models, 3 per property block and property,
  enum items 3 each minus 3, 12 at the end). The same constants hold for gpt-4.1: on 524 real gpt-4.1
  calls of the τ²-bench corpus our count equals the recorded ``prompt_tokens`` exactly.
  Tool calls inside assistant messages (not documented by OpenAI) are counted as their name + arguments
  + 3, tool results as an ordinary message.
* ``chatml`` — Qwen: ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` per message, ``<|im_start|>assistant\\n``
  to prime; tools rendered into the system message, tool calls as ``<tool_call>`` JSON and tool results
  as ``<tool_response>`` blocks inside a user turn (the Qwen2.5/Qwen3 chat template).
* ``deepseek`` — DeepSeek V3: ``<｜begin▁of▁sentence｜>{system}<｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜>``,
  tool calls / outputs wrapped in DeepSeek's tool special tokens.

**Incremental counting.** An agent re-sends its whole history on every call, so counting each call from
scratch is quadratic in the run length. Two memos, both in a bounded, thread-safe
:class:`MessageTokenCache`: (1) each message's tokens under its (tokenizer, template, role, content, name,
tool calls) — an LRU capped in entries and in characters held; (2) per conversation, snapshots of the
last prompt with running totals, so a prompt that starts with a remembered one (compared by value) only
looks at its new messages. Counting a run costs about its unique content once. Two entry points:
:func:`count_messages` counts one call (a live run, call by call); :func:`count_prompts` counts the
prompts of a recorded run in one batch, where consecutive prompts of a conversation form a chain counted
in one pass (on the τ-bench airline corpus: 22x faster than counting each call from scratch, 18x call by
call; ``benchmarks/bench_counting.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Literal

from tokprof.profiler.model import Message
from tokprof.profiler.providers.chat_templates import (
    count_tools_chatml, count_tools_deepseek, count_tools_openai, openai_tokens_per_message
)
from tokprof.profiler.providers.incremental import count_all, find_prefix, finish_chain, openai_total
from tokprof.profiler.providers.message_cache import default_cache, MessageTokenCache, text_digest
from tokprof.profiler.providers.messages import (
    content_text, IMAGE_TOKENS_ESTIMATE, media_tokens, message_tool_calls, to_openai_message
)

from tokprof.profiler.providers.tokenizers import TokenizerChoice, tokenizer_for
from tokprof.profiler.providers.encoders import get_encoder

# The public names of this module, including those re-exported from the modules it was split into.
__all__ = ["count_completion", "count_messages", "count_prompt", "count_prompts", "count_tools",
           "IMAGE_TOKENS_ESTIMATE", "MessageTokenCache", "PromptCount",
           "content_text", "default_cache", "to_openai_message"]

# The parts live in their own modules: the memo (``message_cache``), message shapes (``messages``), the
# provider templates (``chat_templates``) and the incremental engine (``incremental``); this module is the
# public counting API and re-exports the names other code imported from here.

# ---------------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PromptCount:
    """The tokens of one prompt, itemised."""

    tokens: int
    messages: tuple[int, ...]
    """Tokens of each message, template overhead included."""
    tools: int
    overhead: int
    """Per-prompt constant: reply priming, begin-of-sequence, a system wrapper added for tools."""
    choice: TokenizerChoice

    @property
    def source(self) -> Literal["counted", "estimated"]:
        return self.choice.source


_DEFAULT: Any = object()


def count_tools(tools: Iterable[dict[str, Any]] | None, model: str, *, cache: Any = _DEFAULT) -> int:
    """Tokens the tool definitions add to a prompt for ``model``."""
    tools = list(tools or [])
    if not tools:
        return 0
    choice = tokenizer_for(model)
    cache = default_cache if cache is _DEFAULT else cache
    key = None
    if cache is not None:
        key = ("tools", choice.encoding, choice.chat_format, text_digest(tools))
        hit = cache.get(key)
        if hit is not None:
            return hit
    if choice.chat_format == "chatml":
        n = count_tools_chatml(tools, choice)
    elif choice.chat_format == "deepseek":
        n = count_tools_deepseek(tools, choice)
    else:
        n = count_tools_openai(tools, choice)
    if cache is not None and key is not None:
        cache.put(key, n)
    return n


def _prompt_overhead(choice: TokenizerChoice, msgs: list[Message], has_tools: bool) -> int:
    """The per-prompt constant of ``choice``'s template: reply priming, begin-of-sequence, and for Qwen the
    system turn that tool definitions add when the prompt has none."""
    if choice.chat_format == "openai":
        return 3  # every reply is primed with <|start|>assistant<|message|>
    enc = get_encoder(choice.encoding)
    if choice.chat_format == "chatml":
        overhead = len(enc.encode("<|im_start|>assistant\n", allow_special=True))
        if has_tools and not any(m.get("role") in ("system", "developer") for m in msgs[:1]):
            overhead += len(enc.encode("<|im_start|>system\n", allow_special=True)) + \
                len(enc.encode("<|im_end|>\n", allow_special=True))
        return overhead
    if choice.chat_format == "deepseek":
        return len(enc.encode("<｜begin▁of▁sentence｜><｜Assistant｜>", allow_special=True))
    return 3


def count_prompt(messages: Iterable[Any], model: str, tools: Iterable[dict[str, Any]] | None = None, *,
                 cache: Any = _DEFAULT) -> PromptCount:
    """Count ``messages`` (OpenAI dicts or LangChain messages) plus ``tools`` as ``model``'s provider bills
    them. ``cache``: the memo to use (default: the process-wide one; ``None``: count from scratch)."""
    cache = default_cache if cache is _DEFAULT else cache
    choice = tokenizer_for(model)
    msgs = [m if m.__class__ is dict else to_openai_message(m) for m in messages]
    tool_list = list(tools) if tools else []
    per_message = openai_tokens_per_message(model) if choice.chat_format == "openai" else 0
    counts = tuple(count_all(msgs, choice, per_message, cache))
    tool_tokens = count_tools(tool_list, model, cache=cache) if tool_list else 0
    overhead = _prompt_overhead(choice, msgs, bool(tool_list))
    return PromptCount(sum(counts) + tool_tokens + overhead, counts, tool_tokens, overhead, choice)


def count_prompts(prompts: Iterable[Iterable[Any]], model: str, tools: Iterable[dict[str, Any]] | None = None,
                  *, cache: Any = _DEFAULT) -> list[int]:
    """Prompt tokens of each of ``prompts`` (message lists sharing ``model`` and ``tools``), equal to
    ``[count_messages(p, model, tools, cache=cache) for p in prompts]``: the batch form, for the LLM calls
    of a recorded run.

    Faster than counting one by one. Consecutive prompts of one conversation (each starts with the one
    before it, as an agent's re-sent history does; checked with one ``==`` in C, where the same message
    objects compare by identity) form a chain: its new messages are counted in one pass against the
    memo, and each prompt's total is a running sum — no per-call bookkeeping. The first prompt of a chain
    may reuse a conversation remembered by :func:`count_messages` (checked by value); a batch leaves no
    snapshots of its own (see :func:`finish_chain`). The batch assumes its messages are not changed while
    it runs.
    """
    choice = tokenizer_for(model)
    memo = default_cache if cache is _DEFAULT else cache
    tool_list = list(tools) if tools else []
    if memo is None:
        return [count_messages(p, model, tool_list, cache=None) for p in prompts]
    tool_tokens = count_tools(tool_list, model, cache=memo) if tool_list else 0
    per_message = 3 if choice.chat_format == "openai" else 0
    ck = choice.memo_key
    totals: list[int] = []  # each prompt's message tokens, written when its chain ends
    overheads: list[int] = []  # the template's per-prompt constant (other than OpenAI's)
    prev: list[Message] = []
    prev_n = reused = 0
    chain: list[Any] | None = None  # [entry, k, messages after k, per prompt: how many of them]
    chained: list[Message] = []  # chain[2]
    upto: list[int] = []  # chain[3]
    for p in prompts:
        msgs = p if p.__class__ is list else list(p)
        if msgs and msgs[-1].__class__ is not dict:
            msgs = [m if m.__class__ is dict else to_openai_message(m) for m in msgs]
        if not per_message:
            overheads.append(_prompt_overhead(choice, msgs, bool(tool_list)))
        n = len(msgs)
        if chain is not None and n >= prev_n and (msgs[:prev_n] == prev if n > prev_n else msgs == prev):
            reused += prev_n  # the conversation goes on
            if n > prev_n:
                chained += msgs[prev_n:]
            upto.append(len(chained))
        else:
            if chain is not None:
                finish_chain(chain, totals, choice, per_message, memo)
                chain = None
            if not msgs:
                totals.append(0)
                continue
            try:
                _, entry, k = find_prefix(msgs, n, ck, memo)
            except AttributeError:  # a message that is neither a dict nor a LangChain message
                entry, k = None, 0
            chained = msgs[k:]  # a copy: the chain's list grows, the caller's prompt must not
            upto = [n - k]
            chain = [entry, k, chained, upto]
        prev, prev_n = msgs, n
    if chain is not None:
        finish_chain(chain, totals, choice, per_message, memo)
    memo.prefix_hits += reused
    if per_message:
        fixed = tool_tokens + 3  # the OpenAI template's overhead is one constant
        return [t + fixed for t in totals]
    return [t + tool_tokens + o for t, o in zip(totals, overheads)]


def count_messages(messages: Iterable[Any], model: str, tools: Iterable[dict[str, Any]] | None = None, *,
                   cache: Any = _DEFAULT) -> int:
    """Prompt tokens of ``messages`` + ``tools`` for ``model`` (see :func:`count_prompt`)."""
    choice = tokenizer_for(model)
    if tools or choice.chat_format != "openai":
        return count_prompt(messages, model, tools, cache=cache).tokens
    # The common case, without the itemised result: this runs once per LLM call of a whole run.
    memo = default_cache if cache is _DEFAULT else cache
    msgs = messages if messages.__class__ is list else list(messages)
    try:  # a list of OpenAI dicts as is, no copy
        return openai_total(msgs, choice, memo)
    except AttributeError:  # a LangChain message in it (no .get): convert and count again
        return openai_total([m if m.__class__ is dict else to_openai_message(m) for m in msgs], choice, memo)


def count_completion(output: Any, model: str) -> int:
    """Tokens of a model's reply (text, an OpenAI message dict or a LangChain message): its content and
    tool calls, without prompt-side overhead. Hidden reasoning tokens are not visible and not included."""
    choice = tokenizer_for(model)
    enc = choice.encoder
    if output is None:
        return 0
    if isinstance(output, str):
        return len(enc.encode(output))
    m = to_openai_message(output)
    text, others = content_text(m.get("content"))
    n = len(enc.encode(text)) + (media_tokens(m.get("content"), choice.model) if others else 0)
    for fname, args in message_tool_calls(m):
        n += len(enc.encode(fname)) + len(enc.encode(args)) + (3 if choice.chat_format == "openai" else 0)
    return n
