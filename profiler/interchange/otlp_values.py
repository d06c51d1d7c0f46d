"""OTLP-JSON attribute values: ``AnyValue`` decoding and encoding, and trace/span ids.

The OTLP/HTTP JSON encoding (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) writes int64 as
strings and ids as hex; the protobuf JSON mapping some exporters use writes ids as base64: both are read.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any


def decode_value(v: Any) -> Any:
    """An OTLP ``AnyValue`` -> a Python value."""
    if not isinstance(v, dict):
        return v
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [decode_value(x) for x in (v["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in v:
        return decode_attributes((v["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in v:
        return v["bytesValue"]
    return None


def decode_attributes(attrs: Any) -> dict[str, Any]:
    if isinstance(attrs, dict):  # some hand-written files use a plain map
        return dict(attrs)
    out: dict[str, Any] = {}
    for kv in attrs or []:
        if isinstance(kv, dict) and "key" in kv:
            out[str(kv["key"])] = decode_value(kv.get("value"))
    return out


def encode_value(value: Any) -> dict[str, Any]:
    """A Python value -> an OTLP ``AnyValue`` (ints as strings, as the JSON encoding of int64 requires)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (list, tuple)) and all(isinstance(x, (str, bool, int, float)) for x in value):
        return {"arrayValue": {"values": [encode_value(x) for x in value]}}
    return {"stringValue": compact_json(value)}


def encode_attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": encode_value(v)} for k, v in attrs.items() if v is not None]


def compact_json(value: Any) -> str:
    """JSON without spaces (attribute values travel in every span)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def hex_id(value: Any, length: int) -> str:
    """A trace/span id as lowercase hex; base64 ids (protobuf JSON mapping) are converted."""
    s = str(value or "")
    if not s:
        return ""
    if len(s) == length and all(c in "0123456789abcdefABCDEF" for c in s):
        return s.lower()
    try:
        return base64.b64decode(s, validate=True).hex()
    except (binascii.Error, ValueError):
        return s
