"""How each provider's chat template bills one message and the tool definitions: OpenAI's documented
accounting, ChatML (Qwen) and DeepSeek V3 (the three templates of :mod:`tokprof.profiler.providers.chat_format`)."""

from __future__ import annotations

import json
from typing import Any

from tokprof.profiler.model import Message
from tokprof.profiler.providers.messages import content_text, media_tokens, message_tool_calls
from tokprof.profiler.providers.tokenizers import TokenizerChoice


# ---------------------------------------------------------------------------------------------------
# per-template message counts
# ---------------------------------------------------------------------------------------------------
def openai_tokens_per_message(model: str) -> int:
    """``<|start|>{role}<|message|>...<|end|>``: 3 tokens around each message besides its role and content
    (the cookbook's constant for every current OpenAI chat model)."""
    return 3


role_tokens: dict[str, dict[str, int]] = {}
"""encoding -> {role, name or function name -> tokens}: few distinct short values (up to 4096 per encoding)."""


def role_table(encoding: str) -> dict[str, int]:
    return role_tokens.setdefault(encoding, {})


def role_count(choice: TokenizerChoice, role: str) -> int:
    """Tokens of a role, a name or a function name under ``choice``'s encoder."""
    table = role_tokens.get(choice.encoding)
    if table is None:
        table = role_table(choice.encoding)
    n = table.get(role)
    if n is None:
        n = len(choice.encoder.encode(role))
        if len(table) < 4096 and len(role) <= 128:
            table[role] = n
    return n


def _count_openai(m: Message, choice: TokenizerChoice, per_message: int) -> int:
    enc = choice.encoder
    text, others = content_text(m.get("content"))
    n = per_message + role_count(choice, str(m.get("role") or "")) + (len(enc.encode(text)) if text else 0)
    n += media_tokens(m.get("content"), choice.model) if others else 0
    name = m.get("name")
    if name:
        n += role_count(choice, str(name)) + 1
    for fname, args in message_tool_calls(m):
        n += 3 + role_count(choice, fname) + len(enc.encode(args))
    return n


def _chatml_body(m: Message) -> tuple[str, str]:
    """(role as rendered, body text) of a message in Qwen's chat template."""
    role = str(m.get("role") or "user")
    text, _ = content_text(m.get("content"))
    if role == "tool" or role == "function":
        return "user", f"<tool_response>\n{text}\n</tool_response>"
    calls = message_tool_calls(m)
    for fname, args in calls:
        try:
            args_obj: Any = json.loads(args)
        except (ValueError, TypeError):
            args_obj = args
        text += "\n<tool_call>\n" + json.dumps({"name": fname, "arguments": args_obj}, ensure_ascii=False) \
            + "\n</tool_call>"
    if role == "developer":
        role = "system"
    return role, text


def _count_chatml(m: Message, choice: TokenizerChoice) -> int:
    enc = choice.encoder
    role, body = _chatml_body(m)
    _, others = content_text(m.get("content"))
    # <|im_start|> role \n ... <|im_end|> \n  — wrapper tokens counted with specials, body as plain text.
    wrapper = len(enc.encode(f"<|im_start|>{role}\n", allow_special=True)) + \
        len(enc.encode("<|im_end|>\n", allow_special=True))
    return wrapper + len(enc.encode(body)) + (media_tokens(m.get("content"), choice.model) if others else 0)


_DS_TOOL_CALL = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>{name}\n```json\n{args}\n```<｜tool▁call▁end｜>"


def _count_deepseek(m: Message, choice: TokenizerChoice) -> int:
    enc = choice.encoder
    role = str(m.get("role") or "user")
    text, others = content_text(m.get("content"))
    n = len(enc.encode(text)) + (media_tokens(m.get("content"), choice.model) if others else 0)

    def special(s: str) -> int:
        return len(enc.encode(s, allow_special=True))

    if role in ("system", "developer"):
        return n  # the system prompt follows <｜begin▁of▁sentence｜> with no wrapper
    if role == "user":
        return n + special("<｜User｜>")
    if role in ("tool", "function"):
        return n + special("<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜><｜tool▁output▁end｜><｜tool▁outputs▁end｜>")
    # assistant
    n += special("<｜Assistant｜><｜end▁of▁sentence｜>")
    calls = message_tool_calls(m)
    if calls:
        n += special("<｜tool▁calls▁begin｜><｜tool▁calls▁end｜>")
        for fname, args in calls:
            n += len(enc.encode(_DS_TOOL_CALL.format(name=fname, args=args), allow_special=True))
    return n


# ---------------------------------------------------------------------------------------------------
# tools
# ---------------------------------------------------------------------------------------------------
def _function(tool: dict[str, Any]) -> dict[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, dict) else tool


def count_tools_openai(tools: list[dict[str, Any]], choice: TokenizerChoice) -> int:
    """The cookbook's formula for tool definitions (exact for its flat-parameter examples)."""
    enc = choice.encoder
    func_init = 7 if choice.encoding == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    n = 0
    for tool in tools:
        fn = _function(tool)
        n += func_init
        desc = str(fn.get("description") or "")
        if desc.endswith("."):
            desc = desc[:-1]
        n += len(enc.encode(f"{fn.get('name', '')}:{desc}"))
        props = ((fn.get("parameters") or {}).get("properties") or {})
        if props:
            n += prop_init
            for key, spec in props.items():
                spec = spec if isinstance(spec, dict) else {}
                n += prop_key
                if "enum" in spec:
                    n += enum_init
                    for item in spec["enum"]:
                        n += enum_item + len(enc.encode(str(item)))
                p_desc = str(spec.get("description") or "")
                if p_desc.endswith("."):
                    p_desc = p_desc[:-1]
                n += len(enc.encode(f"{key}:{spec.get('type', '')}:{p_desc}"))
                # Nested schemas are not covered by the cookbook; count their JSON (an estimate).
                nested = {k: v for k, v in spec.items() if k in ("properties", "items", "anyOf", "oneOf")}
                if nested:
                    n += len(enc.encode(json.dumps(nested, ensure_ascii=False)))
    return n + func_end if tools else 0


_QWEN_TOOLS_HEAD = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")


_QWEN_TOOLS_TAIL = ("\n</tools>\n\nFor each function call, return a json object with function name and "
                    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": "
                    "<function-name>, \"arguments\": <args-json-object>}\n</tool_call>")


def count_tools_chatml(tools: list[dict[str, Any]], choice: TokenizerChoice) -> int:
    enc = choice.encoder
    text = _QWEN_TOOLS_HEAD + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools) + _QWEN_TOOLS_TAIL
    return len(enc.encode(text))


_DS_TOOLS_HEAD = ("\n\n## Tools\nYou have access to the following tools:\n")


_DS_TOOLS_TAIL = ("\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n<｜tool▁calls▁begin｜>"
                  "<｜tool▁call▁begin｜>tool_call_name<｜tool▁sep｜>tool_call_arguments<｜tool▁call▁end｜>"
                  "{additional_tool_calls}<｜tool▁calls▁end｜>\n")


def count_tools_deepseek(tools: list[dict[str, Any]], choice: TokenizerChoice) -> int:
    enc = choice.encoder
    parts = [_DS_TOOLS_HEAD]
    for t in tools:
        fn = _function(t)
        parts.append(f"\n### {fn.get('name', '')}\nDescription: {fn.get('description', '')}\n\n"
                     f"Parameters: {json.dumps(fn.get('parameters') or {}, ensure_ascii=False)}\n")
    return len(enc.encode("".join(parts))) + len(enc.encode(_DS_TOOLS_TAIL, allow_special=True))


def count_message(m: Message, choice: TokenizerChoice, per_message: int) -> int:
    """Tokens of one message under ``choice``'s template (no memo)."""
    if choice.chat_format == "chatml":
        return _count_chatml(m, choice)
    if choice.chat_format == "deepseek":
        return _count_deepseek(m, choice)
    return _count_openai(m, choice, per_message)
