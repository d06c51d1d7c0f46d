"""DashScope ``MultiModalConversation.call`` / ``AioMultiModalConversation.call`` (Qwen-VL, Qwen-Omni, Qwen3-VL):
the classmethods vision agents use, streamed or not.

Same wire shape as ``Generation.call`` (:mod:`.dashscope`) but message contents are lists of parts without a
``type`` (``[{"text": ...}, {"image": url}]``), both in the request and in the answer
(https://help.aliyun.com/zh/model-studio/vision): the request's parts are recorded in OpenAI's part shape
(``text`` / ``image_url``) so that counting and the report read them; the answer's text parts are joined.
Usage is DashScope's own block (``input_tokens``, ``output_tokens``, and ``image_tokens`` inside the input).
"""

from __future__ import annotations

from typing import Any

from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations.dashscope import GenerationAdapter, _async_call, _sync_call, patch_classmethod
from tokprof.profiler.model import LLMCall, Message

_POSITIONAL = ("model", "messages", "api_key", "workspace", "text")
"""``MultiModalConversation.call``'s leading parameters (after ``cls``)."""


def _part(p: Any) -> Any:
    if not isinstance(p, dict) or "type" in p:
        return p
    if isinstance(p.get("text"), str):
        return {"type": "text", "text": p["text"]}
    for kind in ("image", "video", "audio"):
        if kind in p:
            return {"type": "image_url", "image_url": {"url": p[kind]}} if kind == "image" else {
                "type": kind, kind: p[kind]}
    return p


def _messages(raw: list[Any]) -> list[Message]:
    out: list[Message] = []
    for m in raw:
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            out.append({**m, "content": [_part(p) for p in m["content"]]})
        else:
            out.append(m)
    return out


class MultiModalAdapter(GenerationAdapter):
    api = "dashscope.multimodal"

    def request(self, kwargs: dict[str, Any]) -> LLMCall:
        call = super().request({k: v for k, v in kwargs.items() if k != "prompt"})
        call.messages = _messages(call.messages)
        return call


_ADAPTER = MultiModalAdapter()


def patch() -> list[_sdk.Patch]:
    from dashscope import AioMultiModalConversation, MultiModalConversation

    name = "dashscope.MultiModalConversation.call"
    patches: list[_sdk.Patch] = []
    try:
        patches.append(patch_classmethod(MultiModalConversation, "call",
                                         lambda o, n: _sync_call(o, n, _ADAPTER, _POSITIONAL), name))
        patches.append(patch_classmethod(AioMultiModalConversation, "call",
                                         lambda o, n: _async_call(o, n, _ADAPTER, _POSITIONAL),
                                         "dashscope.AioMultiModalConversation.call"))
    except BaseException:
        _sdk.unpatch(patches)
        raise
    return patches
