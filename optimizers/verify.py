"""Behavioural fidelity: does a model take the same next action on the rewritten request as on the original?

For every call a pass changed, both requests (original and rewritten messages, same tools) are sent to a
model, and its two next actions are compared: the same tool with the same arguments, or the same answer
(whitespace- and case-insensitive). The agreement rate is a ``measured`` fidelity — measured with *that*
model, which need not be the one the run used.

The model is any callable ``ask(messages, tools) -> assistant message`` (OpenAI shape); :func:`openai_asker`
makes one for an OpenAI-compatible endpoint (a local llama.cpp or vLLM server, a provider), over plain HTTP.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from tokprof.profiler.model import Message, Run

Ask = Callable[[list[Message], list[dict[str, Any]] | None], Message]


class VerifyError(RuntimeError):
    """The model endpoint could not be used (names the URL and what to do)."""


def action_of(message: Message | None) -> tuple[str, ...]:
    """The next action a reply takes: ``("tool", name, canonical args)`` per tool call, else
    ``("answer", normalised text)``."""
    if not message:
        return ("answer", "")
    calls = []
    for tc in message.get("tool_calls") or []:
        fn = (tc.get("function") or tc) if isinstance(tc, dict) else {}
        args = fn.get("arguments")
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                pass
        calls.append(("tool", str(fn.get("name")), json.dumps(args, sort_keys=True, default=str)))
    if calls:
        return tuple(x for c in sorted(calls) for x in c)
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ("answer", " ".join(str(content or "").split()).casefold())


@dataclass
class CallCheck:
    span_id: str
    original: tuple[str, ...]
    rewritten: tuple[str, ...]

    @property
    def agree(self) -> bool:
        return self.original == self.rewritten

    def to_dict(self) -> dict[str, Any]:
        return {"span_id": self.span_id, "agree": self.agree, "original": list(self.original),
                "rewritten": list(self.rewritten)}


@dataclass
class VerifyResult:
    """Agreement of one run's rewritten calls with its original ones, under one model."""

    run_id: str
    model: str
    checks: list[CallCheck] = field(default_factory=list)
    unchanged: int = 0
    """Calls the passes did not change (not sent: they agree by construction)."""

    @property
    def agreement(self) -> float | None:
        return None if not self.checks else sum(c.agree for c in self.checks) / len(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "model": self.model, "evidence": "measured", "checked": len(self.checks),
                "unchanged": self.unchanged, "agreement": self.agreement,
                "disagreements": [c.to_dict() for c in self.checks if not c.agree]}


def verify_run(original: Run, rewritten: Run, ask: Ask, model: str = "", max_calls: int | None = None) -> VerifyResult:
    """Ask the model for its next action on each changed call, original and rewritten (see module doc)."""
    res = VerifyResult(original.run_id, model)
    new_by_id = {s.span_id: s for s in rewritten.llm_spans()}
    for span in original.llm_spans():
        new = new_by_id.get(span.span_id)
        if new is None or span.llm is None or new.llm is None:
            continue
        if new.llm.messages == span.llm.messages or (new.attributes or {}).get("optimizer.served_by"):
            res.unchanged += 1
            continue
        if max_calls is not None and len(res.checks) >= max_calls:
            break
        tools = span.llm.tools or None
        a = action_of(ask(list(span.llm.messages), tools))
        b = action_of(ask(list(new.llm.messages), tools))
        res.checks.append(CallCheck(span.span_id, a, b))
    return res


def _openai_tools(tools: Iterable[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    out = []
    for t in tools or []:
        if isinstance(t, dict) and t.get("type") == "function":
            out.append(t)
        elif isinstance(t, dict) and "name" in t:  # a bare / Anthropic-style definition
            out.append({"type": "function", "function": {"name": t["name"], "description": t.get("description", ""),
                                                         "parameters": t.get("parameters") or t.get("input_schema")
                                                         or {"type": "object", "properties": {}}}})
    return out or None


def openai_asker(base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0, *,
                 max_tokens: int | None = None, extra_body: dict[str, Any] | None = None) -> Ask:
    """An :data:`Ask` for an OpenAI-compatible ``/chat/completions`` endpoint, temperature 0.

    ``max_tokens`` bounds each reply (a next action is short; a small local model left unbounded can ramble
    to the end of its context); ``extra_body`` is merged into every request (e.g. llama.cpp's
    ``{"cache_prompt": false}``, so the original and the rewritten request, which share a prefix, are not
    computed from a reused cache: reuse changes the arithmetic and can flip a reply, read as disagreement)."""
    url = base_url.rstrip("/") + "/chat/completions"

    def ask(messages: list[Message], tools: list[dict[str, Any]] | None) -> Message:
        body: dict[str, Any] = {**(extra_body or {}), "model": model, "messages": messages, "temperature": 0}
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        ot = _openai_tools(tools)
        if ot:
            body["tools"] = ot
        req = urllib.request.Request(url, data=json.dumps(body, default=str).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {api_key}"} if api_key else {})})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data = json.loads(resp.read().decode("utf-8"))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise VerifyError(f"model endpoint {url} failed: {exc}; is an OpenAI-compatible server running "
                              "there (e.g. llama.cpp `llama-server --port 8080`, then --base-url "
                              "http://127.0.0.1:8080/v1)?") from exc
        try:
            return data["choices"][0]["message"]
        except (KeyError, IndexError, TypeError) as exc:
            raise VerifyError(f"model endpoint {url} answered without choices[0].message: {str(data)[:200]}") from exc

    return ask
