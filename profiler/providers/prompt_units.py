"""A prompt as a sequence of units, the simulator's view of it for prefix matching.

Prompts are rendered to a unit sequence (tool definitions, then each message: a role marker, its content's
tokens, its tool calls, an end marker) using the model's tokenizer from
:mod:`tokprof.profiler.providers.tokenizers` when it is available, else a regex word/punctuation split.
Units are indexed by a cumulative hash every :data:`BLOCK_UNITS` units, so a cache lookup costs one dict
probe per block. Units say *where* prefixes match; the tokens *billed* are the recorded counts (see
:mod:`tokprof.profiler.providers.cache_sim`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from tokprof.profiler.model import LLMCall
from tokprof.profiler.providers.tokenizers import tokenizer_for

BLOCK_UNITS = 16
"""Granularity of the prefix index (units). Matches are refined to the exact unit inside a block."""


_PIECE = re.compile(r"\s*\w+|\s*[^\w\s]+|\s+", re.UNICODE)


def _encoder_for(model: str | None) -> Callable[[str], list[int]] | None:
    try:
        enc = tokenizer_for(model).encoder
        enc.encode("probe")
        return enc.encode
    except Exception:  # no tokenizer data shipped for this model: fall back to the regex split
        return None


@lru_cache(maxsize=64)
def exact_tokenizer(model: str | None) -> bool:
    try:
        return bool(tokenizer_for(model).exact) and _encoder_for(model) is not None
    except Exception:
        return False


@lru_cache(maxsize=64)
def _encode_fn(model: str | None) -> Callable[[str], list[int]]:
    enc = _encoder_for(model)
    if enc is not None:
        return enc
    return lambda text: [hash(p) for p in _PIECE.findall(text)]


def _message_key(m: Any) -> str:
    return json.dumps(m, sort_keys=True, ensure_ascii=False, default=str)


@lru_cache(maxsize=100_000)
def _units_of(key: str, model: str | None) -> tuple[int, ...]:
    """The units of one message (or tool block), memoized: a run re-sends its history on every call."""
    m = json.loads(key)
    encode = _encode_fn(model)
    if not isinstance(m, dict):
        return tuple(encode(str(m)))
    role = str(m.get("role") or "")
    units: list[int] = [hash(("<role>", role, m.get("name")))]
    content = m.get("content")
    if isinstance(content, list):
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                units.extend(encode(part["text"]))
            else:  # an image or other non-text part: one opaque unit per distinct part
                units.append(hash(("<part>", json.dumps(part, sort_keys=True, default=str))))
    elif content is not None:
        units.extend(encode(str(content)))
    for call in m.get("tool_calls") or []:
        fn = call.get("function") or call
        args = fn.get("arguments")
        units.append(hash(("<call>", fn.get("name"))))
        units.extend(encode(args if isinstance(args, str) else json.dumps(args, sort_keys=True)))
    if m.get("tool_call_id"):
        units.append(hash(("<tool_call_id>", m.get("tool_call_id"))))
    if "function" in m and "role" not in m:  # a tool definition
        units.extend(encode(json.dumps(m, sort_keys=True)))
    units.append(hash(("<end>", role)))
    return tuple(units)


@dataclass
class PromptUnits:
    """A call's prompt as units, with where each message (and the tool block) ends."""

    units: list[int]
    bounds: list[int]
    """Unit offset at the end of the tool block (index 0) and of each message (index i+1)."""
    output_units: list[int]


def prompt_units(call: LLMCall) -> PromptUnits:
    """Render ``call``'s tools + messages (+ output) to units (see the module docstring)."""
    units: list[int] = []
    for tool in call.tools or []:
        units.extend(_units_of(_message_key(tool), call.model))
    bounds = [len(units)]
    for m in call.messages:
        units.extend(_units_of(_message_key(m), call.model))
        bounds.append(len(units))
    out = list(_units_of(_message_key(call.output), call.model)) if call.output else []
    return PromptUnits(units, bounds, out)


def block_hashes(units: list[int]) -> list[int]:
    """Cumulative hash at every BLOCK_UNITS boundary: ``h[k]`` identifies ``units[:k*BLOCK_UNITS]``."""
    out = [0]
    h = 0
    for start in range(0, len(units) - BLOCK_UNITS + 1, BLOCK_UNITS):
        h = hash((h, tuple(units[start:start + BLOCK_UNITS])))
        out.append(h)
    return out


def prefix_key(units: list[int], blocks: list[int], pos: int) -> int:
    """A hash identifying ``units[:pos]`` (uses the block hashes, then the tail)."""
    k = pos // BLOCK_UNITS
    return hash((blocks[k], tuple(units[k * BLOCK_UNITS:pos])))
