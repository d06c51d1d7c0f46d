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
from dataclasses import dataclass, field
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
def _encode_fn(model: str | None) -> Callable[[str], tuple[int, ...]]:
    enc = _encoder_for(model)
    if enc is None:
        return lambda text: tuple(hash(p) for p in _PIECE.findall(text))

    # memoised by text: the same text comes back inside messages whose keys differ (a reply, then the same
    # words as history with a tool-call id), a third of the encoder's work on recorded agent runs
    @lru_cache(maxsize=65_536)
    def encode(text: str) -> tuple[int, ...]:
        return tuple(enc(text))

    return encode


def _key_encoder() -> Any:
    """The C encoder ``json.dumps(m, sort_keys=True, ensure_ascii=False, default=str)`` ends in, made once
    (``dumps`` makes an encoder per call: as long as encoding a short message). ``None`` without it."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)  # the C accelerator (absent on some interpreters)
    if make is None:
        return None
    markers: dict[int, Any] = {}
    return markers, make(markers, str, encoder.encode_basestring, None, ": ", ", ",
                                           True, False, True)


_KEY_ENC = _key_encoder()


def _message_key(m: Any) -> str:
    """Canonical JSON of a message, byte for byte ``json.dumps(m, sort_keys=True, ensure_ascii=False,
    default=str)`` (on any error, ``dumps`` itself decides)."""
    if _KEY_ENC is not None:
        markers, enc = _KEY_ENC
        try:
            return "".join(enc(m, 0))
        except Exception:  # noqa: BLE001 - a cycle, unsortable keys, another thread: the reference path
            markers.clear()
    return json.dumps(m, sort_keys=True, ensure_ascii=False, default=str)


@lru_cache(maxsize=100_000)
def _units_of(key: str, model: str | None) -> tuple[int, ...]:
    """The units of one message (or tool block), memoized: a run re-sends its history on every call."""
    m = json.loads(key)
    encode = _encode_fn(model)
    if not isinstance(m, dict):
        return encode(str(m))
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
    part_keys: list[str] = field(default_factory=list)
    """The canonical JSON of each part (each tool definition, then each message): units are a function of
    (part key, model), so two prompts whose first ``c`` keys agree share their first ``part_ends[c-1]`` units."""
    part_ends: list[int] = field(default_factory=list)
    output_key: str | None = None


KeyMemo = dict[int, tuple[Any, str]]
"""id(message) -> (message, its key): the caller keeps it for as long as the messages are unchanged (a
simulation pass), so a message object sent again in every later call of a run is serialised once."""


def _key(m: Any, memo: KeyMemo | None) -> str:
    if memo is None:
        return _message_key(m)
    got = memo.get(id(m))
    if got is not None and got[0] is m:
        return got[1]
    k = memo[id(m)] = (m, _message_key(m))  # the reference kept pins the id
    return k[1]


def prompt_units(call: LLMCall, memo: KeyMemo | None = None) -> PromptUnits:
    """Render ``call``'s tools + messages (+ output) to units (see the module docstring). ``memo``: message
    keys by object (see :data:`KeyMemo`), for a caller that renders many calls of the same runs."""
    units: list[int] = []
    keys: list[str] = []
    ends: list[int] = []
    model = call.model
    if memo is None:
        memo = {}  # for this call only (a message object sent twice in one prompt is serialised once)
    get = memo.get
    for tool in call.tools or []:
        got = get(id(tool))  # _key, inlined: a run's every call re-sends its tools and history
        k = got[1] if got is not None and got[0] is tool else _key(tool, memo)
        units.extend(_units_of(k, model))
        keys.append(k)
        ends.append(len(units))
    bounds = [len(units)]
    for m in call.messages:
        got = get(id(m))
        k = got[1] if got is not None and got[0] is m else _key(m, memo)
        units.extend(_units_of(k, model))
        keys.append(k)
        ends.append(len(units))
        bounds.append(len(units))
    out_key = _key(call.output, memo) if call.output else None
    out = list(_units_of(out_key, model)) if out_key is not None else []
    return PromptUnits(units, bounds, out, keys, ends, out_key)


def block_hashes(units: list[int], prev: list[int] | None = None, common: int = 0) -> list[int]:
    """Cumulative hash at every BLOCK_UNITS boundary: ``h[k]`` identifies ``units[:k*BLOCK_UNITS]``.

    ``prev``: the block hashes of another sequence known to share ``units[:common]`` with this one; its
    hashes of the whole blocks inside that shared prefix are taken as they are (the same values, computed
    once: a conversation re-sends its history on every call)."""
    if prev is not None and common >= BLOCK_UNITS:
        k = min(common // BLOCK_UNITS, len(prev) - 1, len(units) // BLOCK_UNITS)
        out = prev[:k + 1]
    else:
        k = 0
        out = [0]
    h = out[-1]
    for start in range(k * BLOCK_UNITS, len(units) - BLOCK_UNITS + 1, BLOCK_UNITS):
        h = hash((h, tuple(units[start:start + BLOCK_UNITS])))
        out.append(h)
    return out


def common_prefix(a: list[int], b: list[int], start: int = 0) -> int:
    """Length of the common prefix of two unit lists, ``start`` being already known to match. Compared a
    slice at a time (C speed): a conversation's prompts share thousands of units, and a unit-by-unit loop
    in Python was the largest cost of the fleet's prefix-break replay."""
    n = min(len(a), len(b))
    if a[start:n] == b[start:n]:
        return n
    i, step = start, 256
    while step:
        while i + step <= n and a[i:i + step] == b[i:i + step]:
            i += step
        step //= 4
    return i


def shared_units(keys_a: list[str], ends_a: list[int], keys_b: list[str]) -> int:
    """Units two part sequences of the same model certainly share: the units of their common leading parts."""
    c = 0
    n = min(len(keys_a), len(keys_b))
    while c < n and keys_a[c] == keys_b[c]:
        c += 1
    return ends_a[c - 1] if c else 0


def prefix_key(units: list[int], blocks: list[int], pos: int) -> int:
    """A hash identifying ``units[:pos]`` (uses the block hashes, then the tail)."""
    k = pos // BLOCK_UNITS
    return hash((blocks[k], tuple(units[k * BLOCK_UNITS:pos])))
