"""Which provider an API host is, and so who a call made through an OpenAI-compatible client went to.

The OpenAI SDK (and any client speaking its dialect) is how most agents reach DeepSeek, Qwen, Kimi, GLM,
Doubao, MiniMax, Groq, Together...: labelling every such call ``openai`` put their spend under OpenAI in
``tokprof stats --by provider`` and priced a model two hosts serve (``openai/gpt-oss-20b``) at OpenAI's row.
A call's provider is its host's (:data:`API_HOSTS`, labels as the price table names providers); at a host
tokprof does not know (a gateway, a local server), the provider of the model's price row; else the client's
own label. The hosts are the providers' documented base URLs.
"""

from __future__ import annotations

from urllib.parse import urlsplit

API_HOSTS: dict[str, str] = {
    "api.openai.com": "openai", "api.anthropic.com": "anthropic", "generativelanguage.googleapis.com": "google",
    "api.mistral.ai": "mistral", "api.groq.com": "groq", "api.together.xyz": "together",
    "api.together.ai": "together", "api.cohere.com": "cohere", "api.cohere.ai": "cohere",
    "api.deepseek.com": "deepseek", "openrouter.ai": "openrouter", "api.x.ai": "xai",
    "api.fireworks.ai": "fireworks", "api.moonshot.ai": "moonshot", "api.moonshot.cn": "moonshot",
    "dashscope.aliyuncs.com": "alibaba", "dashscope-intl.aliyuncs.com": "alibaba",
    "dashscope-us.aliyuncs.com": "alibaba", "api.z.ai": "zhipu", "open.bigmodel.cn": "zhipu",
    "ark.cn-beijing.volces.com": "bytedance", "ark.ap-southeast.bytepluses.com": "bytedance",
    "api.minimax.io": "minimax", "api.minimaxi.com": "minimax", "api.minimax.chat": "minimax",
    "qianfan.baidubce.com": "baidu",
}
"""API host -> provider label (the price table's provider names)."""

_OPENAI_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com")
"""Azure OpenAI resources: OpenAI's models and prices."""


def host_provider(url: object) -> str | None:
    """The provider of a known API host in ``url`` (a string or an ``httpx.URL``), else ``None``."""
    try:
        # a fully qualified name's trailing dot ("api.openai.com.") names the same host
        host = (urlsplit(str(url)).hostname or "").lower().rstrip(".")
    except ValueError:
        return None
    if host in API_HOSTS:
        return API_HOSTS[host]
    if host.endswith(_OPENAI_SUFFIXES):
        return "openai"
    return None


def call_provider(url: object, model: str | None, client_label: str) -> str:
    """Who a call to ``url`` for ``model`` went to: the host's provider, else (a gateway or local server) the
    provider of the model's price row, else ``client_label``."""
    known = host_provider(url)
    if known is not None:
        return known
    if model:
        from tokprof.profiler.providers.prices import get_price

        try:
            row = get_price(model, warn=False)
        except Exception:  # noqa: BLE001 - a damaged override file: the client's label
            row = None
        if row is not None and row.provider:
            return str(row.provider)
    return client_label
