"""The attribute dialects an OTLP span's LLM call is read from: OTel GenAI semantic conventions (current and
older names, event-borne messages), OpenInference, Traceloop's flattened prompts, and tokprof's own
``tokprof.*`` attributes (exact round trip of tokprof's exports). See :mod:`~tokprof.profiler.interchange.otlp`
for the table of names read; https://opentelemetry.io/docs/specs/semconv/gen-ai/ and
https://github.com/Arize-ai/openinference/blob/main/spec/semantic_conventions.md for the conventions.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from tokprof.profiler.interchange.base import InterchangeError, json_or_text, nullish
from tokprof.profiler.interchange.otlp_values import compact_json, decode_attributes
from tokprof.profiler.model import TOKEN_SOURCES, Cost, LLMCall, Message, Usage

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion", "embeddings", "responses"}
_OPERATION_KIND = {"execute_tool": "tool", "invoke_agent": "agent", "create_agent": "agent"}
_OPENINFERENCE_KIND = {"LLM": "llm", "EMBEDDING": "llm", "TOOL": "tool", "CHAIN": "chain", "AGENT": "agent",
                       "RETRIEVER": "retriever", "RERANKER": "retriever", "GUARDRAIL": "chain",
                       "EVALUATOR": "chain"}
USAGE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "input_tokens": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"),
    "output_tokens": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens",
                      "llm.token_count.completion"),
    "cache_read_tokens": ("gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_read_input_tokens",
                          "gen_ai.usage.input_tokens.cached", "llm.token_count.prompt_details.cache_read"),
    "cache_write_tokens": ("gen_ai.usage.cache_creation.input_tokens",
                           "gen_ai.usage.cache_creation_input_tokens", "gen_ai.usage.input_tokens.cache_write",
                           "llm.token_count.prompt_details.cache_write"),
    "reasoning_tokens": ("gen_ai.usage.reasoning.output_tokens", "gen_ai.usage.output_tokens.reasoning",
                         "llm.token_count.completion_details.reasoning"),
}
EXPORT_USAGE = {field: names[0] for field, names in USAGE_ATTRIBUTES.items()}
SEMCONV_PARAMS = {"temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
                   "max_tokens": "gen_ai.request.max_tokens", "seed": "gen_ai.request.seed",
                   "frequency_penalty": "gen_ai.request.frequency_penalty",
                   "presence_penalty": "gen_ai.request.presence_penalty", "stop": "gen_ai.request.stop_sequences"}
# Attributes whose content is re-read into the LLMCall (not kept again in span.attributes).
CONSUMED_PREFIXES = ("gen_ai.", "llm.", "tokprof.", "openinference.", "input.", "output.")


# ===================================================================================================
# messages: OpenAI chat format <-> GenAI semantic-convention parts
# ===================================================================================================
def to_semconv_messages(messages: Iterable[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        role = m.get("role")
        parts: list[dict[str, Any]] = []
        if role == "tool":
            parts.append({"type": "tool_call_response", "id": m.get("tool_call_id"), "response": m.get("content")})
        else:
            content = m.get("content")
            if isinstance(content, str):
                parts.append({"type": "text", "content": content})
            elif isinstance(content, list):
                for p in content:
                    if isinstance(p, dict) and p.get("type") == "text":
                        parts.append({"type": "text", "content": p.get("text")})
                    else:
                        parts.append(p if isinstance(p, dict) else {"type": "text", "content": str(p)})
            for c in m.get("tool_calls") or []:
                fn = c.get("function") or {}
                parts.append({"type": "tool_call", "id": c.get("id"), "name": fn.get("name"),
                              "arguments": json_or_text(fn.get("arguments"))})
        msg: dict[str, Any] = {"role": role, "parts": parts}
        if m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def from_semconv_messages(messages: Any) -> list[Message]:
    out: list[Message] = []
    for m in messages or []:
        if not isinstance(m, dict):
            continue
        role = m.get("role")
        texts, calls, other = [], [], []
        for p in m.get("parts") or []:
            t = p.get("type") if isinstance(p, dict) else None
            if t == "text":
                texts.append(p.get("content") or "")
            elif t == "tool_call":
                args = p.get("arguments")
                calls.append({"id": p.get("id"), "type": "function",
                              "function": {"name": p.get("name"),
                                           "arguments": args if isinstance(args, str) else compact_json(args)}})
            elif t == "tool_call_response":
                resp = p.get("response")
                out.append({"role": "tool", "tool_call_id": p.get("id"),
                            "content": resp if isinstance(resp, str) or resp is None else compact_json(resp)})
            elif isinstance(p, dict):
                other.append(p)
        if role == "tool" and not texts and not calls:
            continue  # already appended as tool results
        msg: Message = {"role": role}
        if other:
            msg["content"] = [{"type": "text", "text": t} for t in texts] + other
        else:
            msg["content"] = texts[0] if len(texts) == 1 else ("".join(texts) if texts else None)
        if calls:
            msg["tool_calls"] = calls
        if m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def flattened(attrs: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``prefix.<i>.rest = v`` attributes -> a list of ``{rest: v}`` dicts ordered by ``i``."""
    items: dict[int, dict[str, Any]] = {}
    plen = len(prefix) + 1
    for k, v in attrs.items():
        if not k.startswith(prefix + "."):
            continue
        idx, _, rest = k[plen:].partition(".")
        if idx.isdigit():
            items.setdefault(int(idx), {})[rest] = v
    return [items[i] for i in sorted(items)]


def _openinference_messages(attrs: dict[str, Any], prefix: str) -> list[Message]:
    out: list[Message] = []
    for d in flattened(attrs, prefix):
        msg: Message = {"role": d.get("message.role")}
        content = d.get("message.content")
        if content is None:
            texts = [v for k, v in sorted(d.items()) if k.startswith("message.contents.") and k.endswith(".text")]
            content = "".join(texts) if texts else None
        msg["content"] = content
        calls = flattened({k[len("message."):]: v for k, v in d.items() if k.startswith("message.tool_calls.")},
                           "tool_calls")
        if calls:
            msg["tool_calls"] = [{"id": c.get("tool_call.id"), "type": "function",
                                  "function": {"name": c.get("tool_call.function.name"),
                                               "arguments": c.get("tool_call.function.arguments") or "{}"}}
                                 for c in calls]
        if d.get("message.tool_call_id"):
            msg["tool_call_id"] = d["message.tool_call_id"]
        if d.get("message.name"):
            msg["name"] = d["message.name"]
        out.append(msg)
    return out


def _legacy_messages(attrs: dict[str, Any], prefix: str) -> list[Message]:
    """Traceloop-style ``gen_ai.prompt.<i>.role`` / ``.content``."""
    return [{"role": d.get("role"), "content": d.get("content")} for d in flattened(attrs, prefix) if "role" in d]


# ===================================================================================================
# a span's usage, kind and call
# ===================================================================================================
def read_usage(a: dict[str, Any]) -> Usage:
    counts: dict[str, int | None] = {}
    for field, names in USAGE_ATTRIBUTES.items():
        v = next((a[n] for n in names if nullish(a.get(n)) is not None), None)
        counts[field] = None if v is None else int(v)
    if (counts["input_tokens"] is not None and (counts["cache_read_tokens"] or counts["cache_write_tokens"])
            and counts["input_tokens"] < (counts["cache_read_tokens"] or 0) + (counts["cache_write_tokens"] or 0)):
        # Anthropic-style exclusive input count: the model wants the cache counts inside input_tokens.
        counts["input_tokens"] += (counts["cache_read_tokens"] or 0) + (counts["cache_write_tokens"] or 0)
    u = Usage.from_provider(**counts)
    sources = json_or_text(a.get("tokprof.usage.sources"))
    if isinstance(sources, dict):
        for field, src in sources.items():
            if field in u.sources and src in TOKEN_SOURCES:
                u.sources[field] = src
    requests = json_or_text(a.get("tokprof.usage.tool_requests"))
    if isinstance(requests, dict):  # only clean counts: a junk entry is dropped, never priced
        u.tool_requests = {str(k): v for k, v in requests.items()
                           if isinstance(v, int) and not isinstance(v, bool) and 0 < v < 10**9}
    return u


def span_kind(a: dict[str, Any], has_llm_data: bool) -> str:
    kind = a.get("tokprof.span.kind")
    if kind:
        return str(kind)
    op = a.get("gen_ai.operation.name")
    if op in LLM_OPERATIONS:
        return "llm"
    if op in _OPERATION_KIND:
        return _OPERATION_KIND[op]
    oi = str(a.get("openinference.span.kind") or "").upper()
    if oi in _OPENINFERENCE_KIND:
        return _OPENINFERENCE_KIND[oi]
    return "llm" if has_llm_data else "function"


def llm_call(a: dict[str, Any]) -> LLMCall:
    provider = (a.get("gen_ai.provider.name") or a.get("gen_ai.system") or a.get("llm.provider")
                or a.get("llm.system"))
    model = a.get("gen_ai.request.model") or a.get("gen_ai.response.model") or a.get("llm.model_name")
    messages = json_or_text(a.get("tokprof.llm.messages"))
    if not isinstance(messages, list):
        semconv = json_or_text(a.get("gen_ai.input.messages"))
        if isinstance(semconv, list):
            messages = from_semconv_messages(semconv)
            system = json_or_text(a.get("gen_ai.system_instructions"))
            if isinstance(system, list) and system:
                text = "".join(p.get("content") or "" for p in system if isinstance(p, dict))
                messages = [{"role": "system", "content": text}, *messages]
        else:
            messages = (_openinference_messages(a, "llm.input_messages") or _legacy_messages(a, "gen_ai.prompt"))
    output = json_or_text(a.get("tokprof.llm.output"))
    if not isinstance(output, dict):
        semconv = json_or_text(a.get("gen_ai.output.messages"))
        outs = (from_semconv_messages(semconv) if isinstance(semconv, list) else
                _openinference_messages(a, "llm.output_messages") or _legacy_messages(a, "gen_ai.completion"))
        output = outs[0] if outs else None
    tools = json_or_text(a.get("tokprof.llm.tools"))
    if not isinstance(tools, list):
        tools = json_or_text(a.get("gen_ai.tool.definitions"))
        if not isinstance(tools, list):
            tools = [json_or_text(t.get("tool.json_schema")) for t in flattened(a, "llm.tools") if t.get("tool.json_schema")]
    params = json_or_text(a.get("tokprof.llm.params"))
    if not isinstance(params, dict):
        params = json_or_text(a.get("llm.invocation_parameters"))
        if not isinstance(params, dict):
            params = {}
            for key, attr in SEMCONV_PARAMS.items():
                if a.get(attr) is not None:
                    params[key] = a[attr]
    cost = None
    if "tokprof.cost.amount" in a or "tokprof.cost.source" in a:
        amount = nullish(a.get("tokprof.cost.amount"))
        try:
            cost = Cost(None if amount is None else Decimal(str(amount)), str(a.get("tokprof.cost.currency") or "USD"),
                        a.get("tokprof.cost.source") or "recorded")
        except InvalidOperation:
            raise InterchangeError(None, None, f"tokprof.cost.amount {amount!r} is not a number") from None
    finish = a.get("gen_ai.response.finish_reasons")
    if isinstance(finish, list):
        finish = finish[0] if finish else None
    return LLMCall(provider=provider, model=model, params=params, messages=messages or [], tools=tools or [],
                   output=output, usage=read_usage(a), cost=cost, response_id=a.get("gen_ai.response.id"),
                   finish_reason=finish)


def has_llm_data(a: dict[str, Any]) -> bool:
    return any(k in a for names in USAGE_ATTRIBUTES.values() for k in names) or any(
        k in a for k in ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name"))


_EVENT_ROLES = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def _event_message(role: str, ea: dict[str, Any]) -> Message:
    content = json_or_text(ea.get("content"))
    msg: Message = {"role": role, "content": content if isinstance(content, (str, list)) or content is None
                    else json.dumps(content)}
    calls = json_or_text(ea.get("tool_calls"))
    if isinstance(calls, list) and calls:
        msg["tool_calls"] = calls
    if role == "tool" and ea.get("id") is not None:
        msg["tool_call_id"] = str(ea["id"])
    return msg


def with_event_messages(call: LLMCall, events: Any) -> LLMCall:
    """Messages the older GenAI conventions put in span events, when the attributes had none:
    ``gen_ai.content.prompt``/``gen_ai.content.completion`` (``gen_ai.prompt``/``gen_ai.completion`` JSON,
    semconv <= 1.27) and ``gen_ai.{system,user,assistant,tool}.message``/``gen_ai.choice`` (1.28-1.36,
    https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-events/)."""
    if not isinstance(events, list) or (call.messages and call.output is not None):
        return call
    messages: list[Message] = []
    output: Message | None = None
    for ev in events:
        if not isinstance(ev, dict):
            continue
        name = str(ev.get("name") or "")
        ea = decode_attributes(ev.get("attributes"))
        if name == "gen_ai.content.prompt":
            prompt = json_or_text(ea.get("gen_ai.prompt"))
            if isinstance(prompt, list):
                messages.extend(m for m in prompt if isinstance(m, dict))
        elif name == "gen_ai.content.completion":
            comp = json_or_text(ea.get("gen_ai.completion"))
            if isinstance(comp, list) and comp and isinstance(comp[0], dict):
                output = comp[0]
        elif name in _EVENT_ROLES:
            messages.append(_event_message(_EVENT_ROLES[name], ea))
        elif name == "gen_ai.choice" and output is None:
            body = json_or_text(ea.get("message"))
            output = _event_message("assistant", body if isinstance(body, dict) else ea)
    if not call.messages and messages:
        call.messages = messages
    if call.output is None and output is not None:
        call.output = output
    return call
