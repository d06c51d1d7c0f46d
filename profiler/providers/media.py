"""Tokens of image, audio and video parts, from each provider's published formula.

Images are measured from their bytes (PNG, JPEG, GIF and WebP headers; base64 ``data:`` URLs and inline
base64 blocks), then priced in tokens by the model family's rule:

* OpenAI tile models (gpt-4o, gpt-4.1, gpt-4.5, gpt-5, o1, o3): ``detail: low`` is the base price; otherwise
  fit in 2048x2048, scale the short side down to 768, count 512-px tiles: base + per-tile x tiles (85 + 170 for
  gpt-4o/4.1; 2,833 + 5,667 for gpt-4o-mini; 75 + 150 for o1/o3; 70 + 140 for gpt-5).
* OpenAI patch models (gpt-4.1-mini/nano, gpt-5-mini/nano, o4-mini): 32-px patches, at most 1,536 (the image is
  scaled down to fit), times a per-model multiplier (1.62, 2.46, 1.72).
  https://platform.openai.com/docs/guides/images-vision#calculating-costs
* Anthropic: ``w*h/750`` after resizing to a long edge of at most 1,568 px and about 1.15 MP (~1,600 tokens).
  https://docs.claude.com/en/docs/build-with-claude/vision#evaluate-image-size
* Gemini: 258 tokens when both sides are <= 384 px, else 258 per 768x768 tile.
  https://ai.google.dev/gemini-api/docs/tokens#multimodal-tokens
* Qwen-VL: one token per 28x28 pixels after rounding each side to a multiple of 28 within min/max pixels
  (4 to 1,280 tokens by default), plus the 2 vision start/end tokens.
  https://www.alibabacloud.com/help/en/model-studio/vision

A remote URL tokprof cannot read, a format it cannot measure, audio and video are ``estimated``, each with
the assumption stated. Audio and video use the duration when the part (or a WAV header) gives it.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ASSUMED_SIZE = (1024, 1024)
"""Size assumed for an image whose bytes tokprof does not have (a remote URL)."""
ASSUMED_AUDIO_S = 10.0
ASSUMED_VIDEO_S = 10.0
_HEADER_CHARS = 262_144
"""Base64 characters decoded to find an image's size (JPEG's size marker can follow a large EXIF block)."""


@dataclass(frozen=True)
class MediaCount:
    """Tokens of one non-text part: ``exact`` when measured and priced by the provider's published rule."""

    tokens: int
    exact: bool
    note: str = ""


# ---------------------------------------------------------------------------------------------------
# reading sizes
# ---------------------------------------------------------------------------------------------------
def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, GIF, WebP or JPEG header; ``None`` if not recognised."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return struct.unpack("<HH", data[6:10])
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
        if kind == b"VP8 ":
            w, h = struct.unpack("<HH", data[26:30])
            return w & 0x3FFF, h & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(data[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _b64_head(text: str) -> bytes | None:
    head = text[:_HEADER_CHARS]
    head = head[: len(head) - len(head) % 4]
    try:
        return base64.b64decode(head, validate=False)
    except (binascii.Error, ValueError):
        return None


@lru_cache(maxsize=4096)
def _size_of_source(source: str) -> tuple[int, int] | None:
    """Size of an image given as a data URL or bare base64 (memoized: a run re-sends its history)."""
    if source.startswith("data:"):
        _, _, source = source.partition(",")
    data = _b64_head(source)
    return None if data is None else image_size(data)


# ---------------------------------------------------------------------------------------------------
# formulas
# ---------------------------------------------------------------------------------------------------
_TILE_MODELS = [  # (prefix, base, per tile); longest prefix wins
    ("gpt-4o-mini", 2833, 5667), ("gpt-4o", 85, 170), ("gpt-4.1", 85, 170), ("gpt-4.5", 85, 170),
    ("chatgpt-4o", 85, 170), ("gpt-5", 70, 140), ("o1", 75, 150), ("o3", 75, 150), ("computer-use", 65, 129),
]
_PATCH_MODELS = [("gpt-4.1-mini", 1.62), ("gpt-4.1-nano", 2.46), ("gpt-5-mini", 1.62), ("gpt-5-nano", 2.46),
                 ("o4-mini", 1.72)]


def _longest(table: list[tuple], model: str) -> tuple | None:
    best = None
    for row in table:
        if model.startswith(row[0]) and (best is None or len(row[0]) > len(best[0])):
            best = row
    return best


def openai_tile_tokens(w: int, h: int, detail: str, base: int = 85, tile: int = 170) -> int:
    """OpenAI tile models: low = base; else fit 2048 square, short side to 768, 512-px tiles."""
    if detail == "low":
        return base
    scale = min(1.0, 2048 / max(w, h))
    fw, fh = w * scale, h * scale
    scale = min(1.0, 768 / min(fw, fh))
    fw, fh = fw * scale, fh * scale
    return base + tile * math.ceil(fw / 512) * math.ceil(fh / 512)


def openai_patch_tokens(w: int, h: int, multiplier: float, cap: int = 1536) -> int:
    """OpenAI patch models: 32-px patches (scaled down to at most ``cap``) x the model's multiplier."""
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if patches > cap:
        shrink = math.sqrt(32 * 32 * cap / (w * h))
        # then shrink a little more so a whole number of patches fits the width or the height
        shrink *= min(math.floor(w * shrink / 32) / (w * shrink / 32), math.floor(h * shrink / 32) / (h * shrink / 32))
        patches = min(cap, math.ceil(math.floor(w * shrink) / 32) * math.ceil(math.floor(h * shrink) / 32))
    return int(patches * multiplier)


def anthropic_tokens(w: int, h: int) -> int:
    """Claude: w*h/750 after scaling to a long edge <= 1568 px and <= ~1.15 MP (about 1,600 tokens)."""
    scale = min(1.0, 1568 / max(w, h), math.sqrt(1600 * 750 / (w * h)))
    w, h = int(w * scale), int(h * scale)
    return max(1, math.ceil(w * h / 750))


def gemini_tokens(w: int, h: int) -> int:
    """Gemini: 258 for an image with both sides <= 384 px, else 258 per 768x768 tile."""
    if w <= 384 and h <= 384:
        return 258
    return 258 * math.ceil(w / 768) * math.ceil(h / 768)


def qwen_vl_tokens(w: int, h: int, min_pixels: int = 4 * 28 * 28, max_pixels: int = 1280 * 28 * 28) -> int:
    """Qwen-VL: sides rounded to multiples of 28 within [min_pixels, max_pixels]; one token per 28x28, + 2."""
    hb, wb = max(28, round(h / 28) * 28), max(28, round(w / 28) * 28)
    if hb * wb > max_pixels:
        beta = math.sqrt(h * w / max_pixels)
        hb, wb = max(28, math.floor(h / beta / 28) * 28), max(28, math.floor(w / beta / 28) * 28)
    elif hb * wb < min_pixels:
        beta = math.sqrt(min_pixels / (h * w))
        hb, wb = math.ceil(h * beta / 28) * 28, math.ceil(w * beta / 28) * 28
    return (hb // 28) * (wb // 28) + 2


def family(model: str | None) -> str:
    m = (model or "").lower().rsplit("/", 1)[-1]
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith("gemini"):
        return "gemini"
    if m.startswith(("qwen", "qvq")):
        return "qwen"
    if m.startswith(("gpt-", "o1", "o3", "o4", "chatgpt", "computer-use")):
        return "openai"
    return "other"


def image_tokens(w: int, h: int, model: str | None, detail: str = "auto") -> MediaCount:
    """Tokens of a ``w`` x ``h`` image for ``model`` (``exact``: the family's published rule applies)."""
    fam = family(model)
    m = (model or "").lower().rsplit("/", 1)[-1]
    if fam == "openai":
        patch = _longest(_PATCH_MODELS, m)
        if patch is not None:
            return MediaCount(openai_patch_tokens(w, h, patch[1]), True)
        tile = _longest(_TILE_MODELS, m)
        if tile is not None:
            return MediaCount(openai_tile_tokens(w, h, detail, tile[1], tile[2]), True)
        return MediaCount(openai_tile_tokens(w, h, detail), False, f"{model}: OpenAI tile rule 85 + 170/tile assumed")
    if fam == "anthropic":
        return MediaCount(anthropic_tokens(w, h), True)
    if fam == "gemini":
        return MediaCount(gemini_tokens(w, h), True)
    if fam == "qwen":
        return MediaCount(qwen_vl_tokens(w, h), True)
    return MediaCount(openai_tile_tokens(w, h, detail), False,
                      f"{model}: no published image rule known; OpenAI's tile rule stands in")


# ---------------------------------------------------------------------------------------------------
# parts
# ---------------------------------------------------------------------------------------------------
def _image_source(part: dict[str, Any]) -> tuple[str | None, str]:
    """(data URL / base64 / remote URL, detail) of an image part in any supported dialect; (None, "") if none."""
    kind = part.get("type")
    if kind in ("image_url", "input_image") or "image_url" in part:
        ref = part.get("image_url")
        if isinstance(ref, dict):
            return ref.get("url"), str(ref.get("detail") or part.get("detail") or "auto")
        return (ref if isinstance(ref, str) else None), str(part.get("detail") or "auto")
    if kind == "image" and isinstance(part.get("source"), dict):  # Anthropic
        src = part["source"]
        return (src.get("data") if src.get("type") == "base64" else src.get("url")), "auto"
    inline = part.get("inline_data") or part.get("inlineData")
    if isinstance(inline, dict) and str(inline.get("mime_type") or inline.get("mimeType") or "").startswith("image"):
        return inline.get("data"), "auto"
    if isinstance(part.get("image"), str):  # DashScope
        return part["image"], "auto"
    return None, ""


def _wav_seconds(b64: str) -> float | None:
    data = _b64_head(b64)
    if not data or data[:4] != b"RIFF" or data[8:12] != b"WAVE" or len(data) < 44:
        return None
    byte_rate = struct.unpack("<I", data[28:32])[0]
    return None if not byte_rate else (len(base64.b64decode(b64 + "=" * (-len(b64) % 4))) - 44) / byte_rate


_AUDIO_PER_S = {"gemini": 32, "openai": 10, "qwen": 25, "anthropic": 0, "other": 32}
_VIDEO_PER_S = {"gemini": 263, "qwen": 100, "other": 263}


def part_tokens(part: Any, model: str | None) -> MediaCount:
    """Tokens of one non-text content part for ``model``."""
    if not isinstance(part, dict):
        return MediaCount(85, False, "unrecognised part: counted as one low-detail image (85 tokens)")
    source, detail = _image_source(part)
    if source is not None or part.get("type") in ("image", "image_url", "input_image"):
        size = None
        if isinstance(source, str) and not source.startswith(("http://", "https://", "gs://", "file:")):
            size = _size_of_source(source)
        if size is None:
            w, h = ASSUMED_SIZE
            c = image_tokens(w, h, model, detail)
            remote = isinstance(source, str) and source.startswith(("http://", "https://", "gs://", "file:"))
            why = "remote image (bytes not available)" if remote else "image without readable bytes"
            return MediaCount(c.tokens, False, f"{why}: assumed {w}x{h}, detail {detail}")
        return image_tokens(size[0], size[1], model, detail)
    fam = family(model)
    kind = str(part.get("type") or "")
    if kind in ("input_audio", "audio") or "input_audio" in part or "audio" in part:
        audio: dict[str, Any] = part["input_audio"] if isinstance(part.get("input_audio"), dict) else {}
        secs = part.get("duration") or part.get("duration_s")
        if secs is None and audio.get("format") == "wav" and isinstance(audio.get("data"), str):
            secs = _wav_seconds(audio["data"])
        rate = _AUDIO_PER_S.get(fam, 32)
        secs_f = float(secs) if secs else ASSUMED_AUDIO_S
        note = f"audio: {rate} tokens/s x {secs_f:.1f} s" + ("" if secs else " (duration assumed)")
        return MediaCount(int(math.ceil(rate * secs_f)), False, note)
    if kind in ("video", "video_url", "input_video") or "video" in part or "video_url" in part:
        secs = part.get("duration") or part.get("duration_s")
        rate = _VIDEO_PER_S.get(fam, 263)
        secs_f = float(secs) if secs else ASSUMED_VIDEO_S
        note = f"video: {rate} tokens/s x {secs_f:.1f} s" + ("" if secs else " (duration assumed)")
        return MediaCount(int(math.ceil(rate * secs_f)), False, note)
    return MediaCount(85, False, f"{kind or 'unknown'} part: counted as one low-detail image (85 tokens)")


def content_media(content: Any, model: str | None) -> MediaCount:
    """Total tokens of the non-text parts of one message content (``exact`` only if every part is)."""
    if not isinstance(content, list):
        return MediaCount(0, True)
    total, exact, notes = 0, True, []
    for part in content:
        if isinstance(part, str) or (isinstance(part, dict) and isinstance(part.get("text"), str)):
            continue
        c = part_tokens(part, model)
        total += c.tokens
        exact = exact and c.exact
        if c.note and c.note not in notes:
            notes.append(c.note)
    return MediaCount(total, exact, "; ".join(notes))


def prompt_media(messages: list[Any], model: str | None) -> MediaCount:
    """Media tokens of a whole prompt (what ``tokprof count`` and accounting use to label a count)."""
    total, exact, notes = 0, True, []
    for m in messages or []:
        if isinstance(m, dict):
            c = content_media(m.get("content"), model)
            total += c.tokens
            exact = exact and c.exact
            if c.note and c.note not in notes:
                notes.append(c.note)
    return MediaCount(total, exact, "; ".join(notes))


@lru_cache(maxsize=1024)
def rule_key(model: str | None) -> str:
    """What a part's count depends on besides the part: the model's image rule (a memo key)."""
    m = (model or "").lower().rsplit("/", 1)[-1]
    fam = family(model)
    if fam == "openai":
        row = _longest(_PATCH_MODELS, m) or _longest(_TILE_MODELS, m)
        return f"openai:{row}"
    return fam
