"""The JSON lines of a run file: the header record, span lines (redacted), and content-addressed
payload lines (a message stored once per file, referenced by its hash)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tokprof.profiler import redact
from tokprof.profiler.model import SCHEMA_VERSION, Run


def dumps_line(obj: Any) -> str:
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=json_default)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (os.listdir of a non-UTF-8 file name...): \u escapes keep it, losslessly, in
        # valid UTF-8 JSON; json.loads gives the same string back.
        line = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=json_default)
    return line


def redacted_line(record: dict[str, Any]) -> str:
    """One record as a JSON line with secrets redacted (see :mod:`tokprof.profiler.redact`): a cheap marker scan
    of the line, and a structural redaction of the record only when a marker is there. If redaction
    itself fails the exception propagates and the line is not written (fail closed)."""
    line = dumps_line(record)
    if redact.may_contain_secret(line):
        line = dumps_line(redact.redact_obj(record))
    return line


def payload_line(pid: str, message: Any) -> tuple[str, str]:
    """(id the message is stored under, its payload line). A message holding a secret is stored redacted,
    under the id of its redacted content, so not even a hash of the secret reaches the file."""
    line = dumps_line({"type": "payload", "id": pid, "data": message})
    if redact.may_contain_secret(line):
        data = redact.redact_obj(message)
        if data != message:
            pid = payload_id(data)
            line = dumps_line({"type": "payload", "id": pid, "data": data})
    return pid, line


def json_default(obj: Any) -> Any:
    # Decimal, Path, sets, pydantic objects... stored as text rather than failing the whole line.
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "model_dump"):
        try:
            return obj.model_dump()
        except Exception:
            pass
    return str(obj)


_CANON_KW: dict[str, Any] = dict(sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=json_default)


def _c_encoder() -> Any:
    """The C encoder ``json.dumps(**_CANON_KW)`` ends in, made once: ``dumps`` builds a ``JSONEncoder`` and a
    C encoder per call, half the time of hashing a typical chat message. ``None`` without the C accelerator."""
    from json import encoder

    make = getattr(encoder, "c_make_encoder", None)  # the C accelerator (absent on some interpreters)
    if make is None:
        return None
    markers: dict[int, Any] = {}  # cycle detection, as dumps' check_circular; empty again after each call
    return markers, make(markers, json_default, encoder.encode_basestring, None, ":", ",",
                                           True, False, True)


_C_CANON = _c_encoder()


def canonical_json(data: Any) -> str:
    """The canonical JSON of a payload (what :func:`payload_id` hashes), byte for byte
    ``json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=json_default)``.
    On any error (a cycle, unsortable keys, or another thread in the shared encoder) ``json.dumps`` itself
    runs, so errors and results are exactly its own."""
    if _C_CANON is not None:
        markers, enc = _C_CANON
        try:
            return "".join(enc(data, 0))
        except Exception:  # noqa: BLE001 - the reference path below decides
            markers.clear()
    return json.dumps(data, **_CANON_KW)


def payload_id(data: Any) -> str:
    """Content address of a payload: sha1 of its canonical JSON (:func:`canonical_json`)."""
    return hashlib.sha1(canonical_json(data).encode("utf-8", "surrogatepass")).hexdigest()


def header_record(run: Run) -> dict[str, Any]:
    return {
        "type": "run",
        "schema": SCHEMA_VERSION,
        "run_id": str(run.run_id),
        "name": str(run.name),  # profile(name=123): written as the loader reads it
        "tags": run.tags,
        "started_wall_ns": run.started_wall_ns,
        "metadata": run.metadata,
    }
