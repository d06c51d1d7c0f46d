"""Each provider's prompt-caching rule for a model, read from ``data/billing_rules.json``.

A rule says *how* a provider caches (automatic prefix caching, explicit breakpoints, or none), the
minimum cacheable prompt, storage granularity, lifetime, and the read / write multipliers of the input
price that apply when the price table has no cache price of its own. Every field of every provider can
carry its provenance in the data file (``provenance: {field: {source, confidence}}``) with one of
:data:`CONFIDENCE_LEVELS`; :attr:`CacheRule.confidence` is the weakest of them, so a saving priced with
a rule we only assumed says so.

The billing simulator (:mod:`tokprof.optimizers.billing`) decides which tokens hit a cache with these
rules; :mod:`tokprof.profiler.providers.cost` prices tokens with them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, Literal, Mapping

RULES_FILE = "billing_rules.json"

Confidence = Literal["documented", "calibrated", "assumed"]
CONFIDENCE_LEVELS: tuple[str, ...] = ("documented", "calibrated", "assumed")
"""Strongest first: ``documented`` on the provider's own page; ``calibrated`` reproduces named recorded bills;
``assumed`` is our best guess where the provider publishes nothing."""


@dataclass(frozen=True)
class CacheRule:
    """One provider's prompt-caching rule for one model (see ``profiler/providers/data/billing_rules.json``)."""

    provider: str
    mode: Literal["automatic", "explicit", "none"]
    min_tokens: int = 1024
    block_tokens: int = 1
    ttl_s: int = 300
    ttl_1h_s: int = 3600
    ttl_extended_s: int | None = None
    """Opt-in extended retention (OpenAI ``prompt_cache_retention="24h"``), same price; ``None``: not offered."""
    refresh_on_hit: bool = True
    read_multiplier: Decimal = Decimal("1")
    write_multiplier: Decimal = Decimal("1")
    write_1h_multiplier: Decimal = Decimal("2")
    max_breakpoints: int = 4
    lookback_blocks: int = 20
    caches_output: bool = False
    output_reuse_gap: int = 0
    sources: tuple[str, ...] = ()
    field_confidence: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Rule field (as named in the data file) -> confidence; fields not listed are ``documented``."""
    field_sources: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Rule field -> the URL it comes from (else see :attr:`sources`)."""

    @property
    def caches(self) -> bool:
        return self.mode != "none"

    @property
    def confidence(self) -> str:
        """The weakest confidence of any field of this rule (``documented`` when none is weaker)."""
        worst = "documented"
        for level in self.field_confidence.values():
            if level in CONFIDENCE_LEVELS and CONFIDENCE_LEVELS.index(level) > CONFIDENCE_LEVELS.index(worst):
                worst = level
        return worst

    def describe(self) -> dict[str, Any]:
        """A JSON-ready view (``tokprof models``)."""
        return {"provider": self.provider, "mode": self.mode, "min_tokens": self.min_tokens,
                "block_tokens": self.block_tokens, "ttl_seconds": self.ttl_s, "ttl_1h_seconds": self.ttl_1h_s,
                "ttl_extended_seconds": self.ttl_extended_s,
                "read_multiplier": str(self.read_multiplier), "write_multiplier": str(self.write_multiplier),
                "write_1h_multiplier": str(self.write_1h_multiplier), "confidence": self.confidence,
                "field_confidence": dict(self.field_confidence), "sources": list(self.sources)}


NO_CACHE = CacheRule(provider="unknown", mode="none")


@lru_cache(maxsize=1)
def billing_rules() -> dict[str, Any]:
    """The rules data file (cached)."""
    text = resources.files("tokprof.profiler.providers").joinpath("data", RULES_FILE).read_text(encoding="utf-8")
    return json.loads(text)


def bare_model(model: str | None) -> str:
    """The model name without a router / vendor prefix, lower case (``openai/gpt-4.1`` -> ``gpt-4.1``)."""
    m = (model or "").lower()
    return m.rsplit("/", 1)[-1]


def _longest_prefix(entries: list[dict[str, Any]], model: str) -> dict[str, Any] | None:
    best = None
    for e in entries:
        if model.startswith(e["prefix"]) and (best is None or len(e["prefix"]) > len(best["prefix"])):
            best = e
    return best


def provider_of(provider: str | None, model: str | None) -> str | None:
    """The caching provider whose rules apply: from the model name, else the call's provider (an Azure
    deployment name).

    A model served by a third party under another vendor's name (``openai/gpt-oss-120b`` on Nebius) has
    no rule and is billed without caching; so has one whose host has its own price row (``qwen/qwen3-32b`` on
    Groq resolves to ``groq/qwen/qwen3-32b``, not to Qwen's own model and its cache)."""
    data = billing_rules()
    best = _longest_prefix(data["model_providers"], _canonical(model, provider))
    if best is not None:
        # the model decides: a deepseek model called through the OpenAI client is cached by DeepSeek, a Gemini
        # model on Vertex AI by Google
        return best["provider"]
    aliases = data["provider_aliases"]
    if provider and provider.lower() in aliases:
        return aliases[provider.lower()]
    return None


def _canonical(model: str | None, provider: str | None = None) -> str:
    """The price table's name for ``model`` (called through ``provider``: a host's own row, see
    :func:`~tokprof.profiler.providers.prices.priced_model`) when it resolves (``ep-…`` aliases, dated ids),
    else its bare name."""
    try:
        from tokprof.profiler.providers.prices import priced_model, resolve_model

        name = priced_model(model, provider)
        if name is None and model:
            return ""  # a local model (Ollama) with no row of its own: no provider's cache applies
        key = resolve_model(name or "")
    except Exception:  # noqa: BLE001 - a damaged override file must not stop rule lookup
        key = None
    return key or bare_model(model)


def _by_prefix(entries: list[dict[str, Any]], model: str, key: str) -> Any:
    best = _longest_prefix(entries, model)
    return None if best is None else best[key]


_RULE_MEMO: dict[tuple[Any, ...], CacheRule] = {}
"""Built rules by (provider, canonical model, explicit, rules document): the simulator asks once per call."""


def cache_rule(provider: str | None, model: str | None, *, explicit: bool = False) -> CacheRule:
    """The caching rule for a call. ``explicit``: for providers offering both, the explicit mode (Qwen, Gemini)."""
    name = provider_of(provider, model)
    rules = billing_rules()
    data = rules["providers"].get(name or "")
    if data is None:
        return NO_CACHE
    bare = _canonical(model, provider)
    memo_key = (name, bare, explicit, id(rules))  # a reloaded rules document is a new object: a new key
    hit = _RULE_MEMO.get(memo_key)
    if hit is not None:
        return hit
    if len(_RULE_MEMO) > 4096:
        _RULE_MEMO.clear()
    rule = _RULE_MEMO[memo_key] = _build_rule(name, bare, data, explicit)
    return rule


def _build_rule(name: str | None, bare: str, data: dict[str, Any], explicit: bool) -> CacheRule:
    override = _by_prefix(data.get("mode_by_model", []), bare, "rule")
    if override:
        data = {**data, **override, "provenance": {**data.get("provenance", {}), **override.get("provenance", {})}}
    if explicit and "explicit" in data:
        ex = data["explicit"]
        data = {**data, **ex, "mode": "explicit",
                "provenance": {**data.get("provenance", {}), **ex.get("provenance", {})}}
    read = _by_prefix(data.get("read_multiplier_by_model", []), bare, "read")
    minimum = _by_prefix(data.get("min_tokens_by_model", []), bare, "min")
    prov: dict[str, Any] = data.get("provenance", {})
    return CacheRule(
        provider=name or "unknown",
        mode=data["mode"],
        min_tokens=int(minimum if minimum is not None else data.get("min_tokens", 1024)),
        block_tokens=int(data.get("block_tokens", 1)),
        ttl_s=int(data.get("ttl_seconds", 300)),
        ttl_1h_s=int(data.get("ttl_1h_seconds", 3600)),
        ttl_extended_s=None if data.get("ttl_extended_seconds") is None else int(data["ttl_extended_seconds"]),
        refresh_on_hit=bool(data.get("refresh_on_hit", True)),
        read_multiplier=Decimal(str(read if read is not None else data.get("read_multiplier", 1))),
        write_multiplier=Decimal(str(data.get("write_multiplier", 1))),
        write_1h_multiplier=Decimal(str(data.get("write_1h_multiplier", 2))),
        max_breakpoints=int(data.get("max_breakpoints", 4)),
        lookback_blocks=int(data.get("lookback_blocks", 20)),
        caches_output=bool(data.get("caches_output", False)),
        output_reuse_gap=int(data.get("output_reuse_gap_tokens", 0)),
        sources=tuple(data.get("sources", ())),
        field_confidence={k: str(v.get("confidence", "documented")) for k, v in prov.items()},
        field_sources={k: str(v["source"]) for k, v in prov.items() if v.get("source")},
    )
