"""A scripted LangChain chat model for the demo: offline, deterministic, with provider-style usage.

:class:`ScriptedChatModel` is a real ``langchain_core`` ``BaseChatModel``: it binds tools, goes through
LangChain's callbacks and response cache like any provider model. Its answers come from a *policy*, a
function of the conversation it is sent (never of a call counter), so a run whose prompts were compressed
live takes the same decisions and reaches the same answer as the uncompressed run.

It plays the provider's part in full, because the demo must *measure* savings on a real re-run:

* ``usage_metadata`` is computed from the prompt actually received (after any live transform), with
  tokprof's own counting (``tokprof.profiler.providers.chat_format`` when present, else the model's tokenizer, else
  ``len/4``), so compressing the prompt lowers the reported input tokens.
* An Anthropic-style prompt cache: a content block carrying ``cache_control`` marks a breakpoint; the
  prefix up to it is written to the cache (at least ``min_cache_tokens`` long), and a later request whose
  prefix matches a cached one, looking back up to 20 blocks from a breakpoint, reads it. The usage reports
  ``cache_read`` / ``cache_creation`` like ``langchain-anthropic`` does (both included in
  ``input_tokens``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Sequence

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

Policy = Callable[[list[BaseMessage]], AIMessage]

LOOKBACK_BLOCKS = 20
"""How far before a breakpoint the provider looks for an earlier cached prefix (Anthropic: 20 blocks)."""


def message_text(message: BaseMessage) -> str:
    """The text of a message whatever its content shape (a string or a list of content blocks)."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "".join(parts)


def has_breakpoint(message: BaseMessage) -> bool:
    """Whether the message carries a ``cache_control`` marker (on a content block or the message)."""
    if message.additional_kwargs.get("cache_control"):
        return True
    content = message.content
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("cache_control") for b in content)


def _canonical(message: BaseMessage) -> str:
    """What identifies a message for the prefix cache: role, text, tool calls — never the cache markers."""
    return json.dumps(
        {
            "type": message.type,
            "text": message_text(message),
            "tool_calls": [{"name": tc["name"], "args": tc["args"], "id": tc.get("id")}
                           for tc in getattr(message, "tool_calls", None) or []],
            "tool_call_id": getattr(message, "tool_call_id", None),
        },
        sort_keys=True,
        ensure_ascii=False,
    )


def _plain(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI-format messages with the cache markers dropped (they are not tokens)."""
    out = []
    for m in convert_to_openai_messages(list(messages)):
        if isinstance(m.get("content"), list):
            m = {**m, "content": "".join(b.get("text", "") for b in m["content"] if isinstance(b, dict))}
        out.append(m)
    return out


class TokenCounter:
    """Counts prompt tokens the way tokprof does (``tokprof.profiler.providers.chat_format``), itemised per message so the
    emulated prompt cache can price prefixes. Falls back to counting the parts, then ``len/4``."""

    def __init__(self, model: str) -> None:
        self.model = model
        self._text = _text_counter(model)
        try:
            from tokprof.profiler.providers.chat_format import count_prompt

            count_prompt([{"role": "user", "content": "probe"}], model)
            self._count_prompt: Callable[..., Any] | None = count_prompt
        except Exception:  # chat_format missing or broken: count the parts ourselves
            self._count_prompt = None

    def text(self, text: str) -> int:
        return self._text(text)

    def prompt(self, messages: Sequence[BaseMessage], tools: list[dict[str, Any]]) -> tuple[int, list[int], int]:
        """``(total, tokens of each message, tokens of the tool definitions)`` of one request."""
        plain = _plain(messages)
        if self._count_prompt is not None:
            try:
                pc = self._count_prompt(plain, self.model, tools)
                if len(pc.messages) == len(plain):
                    return int(pc.tokens), [int(n) for n in pc.messages], int(pc.tools)
            except Exception:
                pass
        per_message = [self._text(json.dumps(m, ensure_ascii=False)) + 4 for m in plain]
        tool_tokens = self._text(json.dumps(tools, ensure_ascii=False)) if tools else 0
        return sum(per_message) + tool_tokens + 3, per_message, tool_tokens


def _text_counter(model: str) -> Callable[[str], int]:
    try:
        from tokprof.profiler.providers.tokenizers import count_text

        count_text("probe", model)
        return lambda text: count_text(text, model)
    except Exception:  # the offline registry broken: estimate (never tiktoken's downloader)
        return lambda text: max(1, len(text) // 4)


class ScriptedChatModel(BaseChatModel):
    """A chat model whose replies come from ``policy(messages)``; usage and prompt caching as a provider."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_name: str = "claude-sonnet-4-5"
    provider: str = "anthropic"
    temperature: float = 0.0
    """Always 0: the script is deterministic (and response caches only serve deterministic requests)."""
    policy: Policy
    min_cache_tokens: int = 1024
    """Shortest prefix the provider caches (Anthropic: 1024 tokens for Sonnet)."""
    prompt_cache: dict[str, int] = Field(default_factory=dict)
    """The provider-side prompt cache: prefix hash -> its tokens. Shared by every copy bound from this model."""
    _counter: TokenCounter | None = PrivateAttr(default=None)
    requests: list[dict[str, Any]] = Field(default_factory=list)
    """Every request the provider really served (cache hits of LangChain's response cache never get here):
    ``{"messages", "tools", "usage", "output"}``."""

    @property
    def _llm_type(self) -> str:
        return "tokprof-scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = self.provider
        params["ls_model_name"] = self.model_name
        return params

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Any:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    @property
    def counter(self) -> TokenCounter:
        if self._counter is None:
            self._counter = TokenCounter(self.model_name)
        return self._counter

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        tools = list(kwargs.get("tools") or [])
        reply = self.policy(list(messages))
        usage = self._usage(messages, tools, reply)
        message = AIMessage(
            content=reply.content,
            tool_calls=reply.tool_calls,
            usage_metadata=usage,
            response_metadata={"model_name": self.model_name, "model_provider": self.provider,
                               "stop_reason": "tool_use" if reply.tool_calls else "end_turn"},
            id=None,
        )
        self.requests.append({"messages": _plain(messages), "tools": tools, "usage": usage,
                              "output": convert_to_openai_messages([message])[0]})
        return ChatResult(generations=[ChatGeneration(message=message)])

    # ---- the provider's accounting -----------------------------------------------------------------
    def _usage(self, messages: Sequence[BaseMessage], tools: list[dict[str, Any]], reply: AIMessage) -> dict:
        counter = self.counter
        total_in, per_message, tool_tokens = counter.prompt(messages, tools)
        read, written = self._prompt_cache(messages, tools, per_message, tool_tokens)
        # The parts cannot exceed the whole.
        read = min(read, total_in)
        written = min(written, total_in - read)
        out_text = message_text(reply) + "".join(
            json.dumps({"name": tc["name"], "input": tc["args"]}, ensure_ascii=False) for tc in reply.tool_calls)
        total_out = max(1, counter.text(out_text) + 8 * len(reply.tool_calls))
        return {
            "input_tokens": total_in,
            "output_tokens": total_out,
            "total_tokens": total_in + total_out,
            "input_token_details": {"cache_read": read, "cache_creation": written},
        }

    def _prompt_cache(self, messages: Sequence[BaseMessage], tools: list[dict[str, Any]], per_message: list[int],
                      tool_tokens: int) -> tuple[int, int]:
        """Tokens read from and written to the emulated provider prompt cache by this request."""
        breakpoints = [i + 1 for i, m in enumerate(messages) if has_breakpoint(m)]  # prefix lengths
        if not breakpoints:
            return 0, 0
        prefix_tokens = [tool_tokens]
        digests = [hashlib.sha1(json.dumps(tools, sort_keys=True).encode()).hexdigest()]
        for m, n in zip(messages, per_message):
            prefix_tokens.append(prefix_tokens[-1] + n)
            digests.append(hashlib.sha1((digests[-1] + _canonical(m)).encode()).hexdigest())
        read_len = 0
        for bp in breakpoints:
            for length in range(bp, max(0, bp - LOOKBACK_BLOCKS) - 1, -1):
                if digests[length] in self.prompt_cache:
                    read_len = max(read_len, length)
                    break
        read = prefix_tokens[read_len] if read_len else 0
        last = breakpoints[-1]
        written = 0
        if last > read_len and prefix_tokens[last] >= self.min_cache_tokens:
            written = prefix_tokens[last] - read
        for bp in breakpoints:
            if prefix_tokens[bp] >= self.min_cache_tokens:
                self.prompt_cache.setdefault(digests[bp], prefix_tokens[bp])
        return read, written
