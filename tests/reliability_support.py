"""Shared pieces of the reliability tests: a deterministic LangChain chat model and a log counter."""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult


def echo_usage(messages: list[BaseMessage]) -> tuple[int, int]:
    """The usage the echo model reports for a prompt: 10 per message + 1 per character of the last."""
    last = str(messages[-1].content) if messages else ""
    return 10 * len(messages) + len(last), 3


class EchoChatModel(BaseChatModel):
    """A real langchain-core chat model that answers ``echo:<last message>`` and reports usage."""

    model_name: str = "echo-1"

    @property
    def _llm_type(self) -> str:
        return "echo"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _result(self, messages: list[BaseMessage]) -> ChatResult:
        inp, out = echo_usage(messages)
        msg = AIMessage(content=f"echo:{messages[-1].content if messages else ''}",
                        usage_metadata={"input_tokens": inp, "output_tokens": out, "total_tokens": inp + out})
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(messages)

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(messages)


def internal_error_records(records: list[logging.LogRecord]) -> list[str]:
    """The tokprof internal-error lines among captured log records."""
    return [r.getMessage() for r in records if r.name == "tokprof" and "internal error" in r.getMessage()]
