"""One chat message in OpenAI's shape, whatever it came as (LangChain messages, dicts), and the parts of it
that are tokenized: its text, media and tool calls."""

from __future__ import annotations

import json
from typing import Any

from tokprof.profiler.model import Message

# ---------------------------------------------------------------------------------------------------
# message normalisation (OpenAI dicts and LangChain messages)
# ---------------------------------------------------------------------------------------------------
_LC_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool", "function": "function",
             "developer": "developer", "AIMessageChunk": "assistant", "HumanMessageChunk": "user",
             "SystemMessageChunk": "system", "ToolMessageChunk": "tool", "FunctionMessageChunk": "function"}


def to_openai_message(m: Any) -> Message:
    """An OpenAI-format dict for an OpenAI dict or a LangChain ``BaseMessage``."""
    if isinstance(m, dict):
        return m
    mtype = getattr(m, "type", None)
    if mtype is None or not hasattr(m, "content"):
        raise TypeError(f"cannot count a {type(m).__name__}: expected an OpenAI message dict or a LangChain "
                        f"BaseMessage")
    role = getattr(m, "role", None) if mtype == "chat" else _LC_ROLES.get(mtype, mtype)
    out: Message = {"role": role or "user", "content": m.content}
    name = getattr(m, "name", None)
    if name:
        out["name"] = name
    calls = getattr(m, "tool_calls", None)
    if calls:
        out["tool_calls"] = [
            {"id": c.get("id") or "", "type": "function",
             "function": {"name": c.get("name") or "", "arguments": json.dumps(c.get("args") or {})}}
            for c in calls
        ]
    if role == "tool":
        out["tool_call_id"] = getattr(m, "tool_call_id", "")
    return out


def content_text(content: Any) -> tuple[str, int]:
    """(the text of a message content, number of non-text parts such as images)."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    if isinstance(content, list):
        texts, other = [], 0
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                other += 1
        return "".join(texts), other
    return str(content), 0


IMAGE_TOKENS_ESTIMATE = 85
"""Tokens of a part nothing is known about (OpenAI's low-detail image price); images, audio and video are
counted by :mod:`tokprof.profiler.providers.media` from their size or duration."""


def media_tokens(content: Any, model: str) -> int:
    """Tokens of the non-text parts of a message content, by the model family's published rule."""
    from tokprof.profiler.providers.media import content_media

    return content_media(content, model).tokens


def message_tool_calls(m: Message) -> list[tuple[str, str]]:
    out = []
    for c in m.get("tool_calls") or []:
        fn = c.get("function") or c
        args = fn.get("arguments")
        if not isinstance(args, str):
            args = json.dumps(args if args is not None else {}, ensure_ascii=False)
        out.append((str(fn.get("name") or ""), args))
    fc = m.get("function_call")
    if fc:
        out.append((str(fc.get("name") or ""), str(fc.get("arguments") or "")))
    return out
