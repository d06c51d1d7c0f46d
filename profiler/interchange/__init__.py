"""Bring runs recorded elsewhere into tokprof, and send tokprof runs elsewhere.

>>> from tokprof.profiler.interchange import import_file
>>> result = import_file("results.json.gz")          # format detected, gzip handled
>>> result.runs, result.errors                        # good runs; bad records named with file and record

Formats (``FORMATS``): ``tau2`` (τ²-bench results), ``tau1`` (τ-bench trajectories), ``swe_agent``
(SWE-agent ``.traj``), ``chatlog`` (JSONL of OpenAI chat requests/responses), ``otlp`` (OpenTelemetry
OTLP-JSON with GenAI semantic conventions; also exported by :func:`tokprof.profiler.interchange.otlp.write_otlp`),
``mini_swe_agent`` (mini-swe-agent ``.traj.json``), and coding agents' local logs: ``claude_code``, ``codex``, ``gemini_cli``, ``qwen_code``, ``opencode``.
Each module's docstring documents exactly what it reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from tokprof.profiler.interchange import (
    chatlog,
    claude_code,
    codex,
    gemini_cli,
    mini_swe_agent,
    opencode,
    otlp,
    qwen_code,
    swe_agent,
    tau1,
    tau2,
)
from tokprof.profiler.interchange.base import ImportResult, InterchangeError, read_text

TRACE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".traj")
"""Names of trace files looked for under a folder (each may also end in ``.gz``): what ``tokprof import``
and ``tokprof ingest`` read there."""


def is_trace_name(name: str) -> bool:
    """True for a file name :data:`TRACE_SUFFIXES` covers (case-insensitive, ``.gz`` allowed)."""
    return name.lower().removesuffix(".gz").endswith(TRACE_SUFFIXES)

__all__ = ["FORMATS", "ImportResult", "InterchangeError", "detect_format", "import_file", "import_text"]

FORMATS: dict[str, Callable[[str, Path | None], ImportResult]] = {
    "tau2": tau2.import_text,
    "tau1": tau1.import_text,
    "swe_agent": swe_agent.import_text,
    "chatlog": chatlog.import_text,
    "otlp": otlp.import_text,
    "claude_code": claude_code.import_text,
    "codex": codex.import_text,
    "gemini_cli": gemini_cli.import_text,
    "qwen_code": qwen_code.import_text,
    "opencode": opencode.import_text,
    "mini_swe_agent": mini_swe_agent.import_text,
}
ALIASES = {"tau2-bench": "tau2", "tau-bench": "tau1", "swe-agent": "swe_agent", "traj": "swe_agent",
           "jsonl": "chatlog", "openai": "chatlog", "otel": "otlp", "opentelemetry": "otlp",
           "claude-code": "claude_code", "claude": "claude_code", "codex-cli": "codex",
           "gemini": "gemini_cli", "gemini-cli": "gemini_cli", "qwen": "qwen_code", "qwen-code": "qwen_code",
           "open-code": "opencode", "mini-swe-agent": "mini_swe_agent", "mini": "mini_swe_agent",
           "mini-swe": "mini_swe_agent"}
_SNIFF_CHARS = 65536


def normalize_format(name: str) -> str:
    """A format name or alias -> its canonical name; an unknown one raises naming the choices."""
    key = name.strip().lower()
    key = ALIASES.get(key, key.replace("-", "_"))
    if key not in FORMATS:
        raise InterchangeError(None, None, f"unknown format {name!r}; expected one of {', '.join(FORMATS)}")
    return key


def _looks_tau2(head: str) -> bool:
    """τ²-bench simulations (JSON or Python-literal dumps): messages plus a task id or termination reason."""
    for q in ('"', "'"):
        if f"{q}simulations{q}" in head:
            return True
        if f"{q}messages{q}" in head and (f"{q}task_id{q}" in head or f"{q}termination_reason{q}" in head):
            return True
    return False


def _sniff(text: str, path: Path | None) -> str | None:
    head = text[:_SNIFF_CHARS].lstrip()
    name = path.name.lower() if path is not None else ""
    if name.endswith((".traj", ".traj.gz")):
        return "swe_agent"
    if '"resourceSpans"' in head or '"instrumentationLibrarySpans"' in head:
        return "otlp"
    if head.startswith("["):
        if '"traj"' in head or "'traj'" in head:
            return "tau1"
        if _looks_tau2(head):
            return "tau2"  # a bare list of τ²-bench simulations (some releases save results that way)
        return None
    if not head.startswith("{"):
        return None
    if mini_swe_agent.sniff(head):
        return "mini_swe_agent"  # before τ²-bench: both write "messages"
    if '"sessionId"' in head and '"projectHash"' in head and '"messages"' in head:
        return "gemini_cli"
    if '"simulations"' in head or ('"user_info"' in head and '"agent_info"' in head) or _looks_tau2(head):
        return "tau2"
    if '"trajectory"' in head and '"history"' in head:
        return "swe_agent"
    if '"traj"' in head:
        return "tau1"  # one τ-bench record, or the list inside a wrapper object
    if '"info"' in head and '"messages"' in head and '"parts"' in head:
        try:
            if opencode.looks_like_export(json.loads(text)):
                return "opencode"  # an `opencode export` document
        except (ValueError, RecursionError):
            pass
    if '"projectID"' in head and '"time"' in head and "\n{" not in head.strip():
        try:
            if opencode.looks_like_session(json.loads(text)):
                return "opencode"  # a session file of OpenCode's storage folder
        except (ValueError, RecursionError):
            pass
    # JSONL: the first few lines decide (a Claude Code transcript may open with a summary or snapshot line).
    # Whole lines from the text, not from the 64 KiB head: a first record holding a long prompt (a pasted
    # file, a big system prompt) is longer than the head, and its cut-off JSON would leave the file unknown.
    lines = text.lstrip().split("\n", 5)[:5]
    parsed: list[Any] = []
    for line in lines:
        try:
            probe: Any = json.loads(line)
        except (ValueError, RecursionError):  # a line nested too deep is no format marker
            parsed.append(None)
            continue
        parsed.append(probe)
        if qwen_code.looks_like(probe):  # before Claude Code: both write sessionId/uuid/type envelopes
            return "qwen_code"
        if claude_code.looks_like(probe):
            return "claude_code"
        if codex.looks_like(probe):
            return "codex"
    obj: Any = parsed[0] if parsed else None
    if obj is None:
        return None
    if chatlog.looks_like(obj):
        return "chatlog"
    if isinstance(obj, dict):
        if isinstance(obj.get("simulations"), list):
            return "tau2"
        if isinstance(obj.get("history"), list):
            return "swe_agent"
    return None


def _sniff_parsed(text: str) -> str | None:
    """The slow path, when the first 64 KiB did not tell (a long policy or reward block first, a wrapper
    object, a Python-literal dump): parse the whole document and look for each format's records."""
    from tokprof.profiler.interchange.lenient import find_container, parse_document

    head = text.lstrip()[:1]
    if head not in ("[", "{"):
        return None
    try:
        data = parse_document(text)
    except (ValueError, RecursionError, MemoryError):
        return None
    if find_container(data, mini_swe_agent.looks_like) is not None:
        return "mini_swe_agent"
    if tau2.unwrap(data) is not None:
        return "tau2"
    if find_container(data, lambda v: isinstance(v, (dict, list)) and (
            (isinstance(v, dict) and "traj" in v) or (isinstance(v, list) and any(
                isinstance(x, dict) and "traj" in x for x in v[:20])))) is not None:
        return "tau1"
    if find_container(data, lambda v: isinstance(v, dict) and "history" in v and "trajectory" in v) is not None:
        return "swe_agent"
    return None


def detect_format(path: str | Path, text: str | None = None) -> str:
    """The format of a file (gzip or not), from its name and content; raises when it is none we read."""
    path = Path(path)
    if text is None:
        if opencode.is_db(path):
            return "opencode"  # an SQLite file: OpenCode's opencode.db is the one we read
        text = read_text(path)
    fmt = _sniff(text, path)
    if fmt is None:
        fmt = _sniff_parsed(text)
    if fmt is None:
        if not text.strip():
            raise InterchangeError(path, None, "empty file; expected a trace file")
        raise InterchangeError(path, None, "unknown trace format (looked for τ²-bench 'simulations', τ-bench "
                                           "'traj' lists, SWE-agent 'history', chat-log request/response lines "
                                           "and OTLP 'resourceSpans'); pass --format "
                                           f"{{{','.join(FORMATS)}}} if it is one of these")
    return fmt


def import_text(text: str, format: str, path: str | Path | None = None) -> ImportResult:
    """Import already-read text in ``format``. Raises :class:`InterchangeError` when no record imports."""
    fmt = normalize_format(format)
    p = Path(path) if path is not None else None
    return _checked(_guarded(lambda: FORMATS[fmt](text, p), fmt, p), fmt, p)


def _guarded(run_importer: Callable[[], ImportResult], fmt: str, p: Path | None) -> ImportResult:
    """An importer's result; anything it raises becomes one clear :class:`InterchangeError`."""
    try:
        return run_importer()
    except InterchangeError:
        raise
    except RecursionError:
        raise InterchangeError(p, None, f"nested too deeply to read as {fmt}") from None
    except Exception as exc:  # noqa: BLE001 - hostile input gets a clear error, never a traceback
        raise InterchangeError(p, None, f"cannot import as {fmt} ({type(exc).__name__}: {str(exc)[:200]})") from None


def _checked(result: ImportResult, fmt: str, p: Path | None) -> ImportResult:
    """Cycles broken in every run; a file with no good record is an error."""
    # every importer's runs: parent-id cycles broken (and noted in metadata) before anything walks them
    from tokprof.profiler.integrity import break_parent_cycles, repair_run

    for run in result.runs:
        break_parent_cycles(run)
        # names, tags, roles, tool calls of the wrong type: repaired, listed in metadata and as partial
        repaired = repair_run(run)
        if repaired:
            result.partial.append(f"run {run.run_id[:40]}: {len(repaired)} field(s) repaired: "
                                  + "; ".join(repaired[:3]) + (" ..." if len(repaired) > 3 else ""))
    if not result.runs and result.errors:
        raise InterchangeError(p, result.errors[0].record,
                               f"no record could be imported as {fmt}: {result.error_summary()}")
    if not result.runs and not result.errors:
        raise InterchangeError(p, None, f"no records found; expected {fmt} data")
    return result


def import_file(path: str | Path, format: str | None = None) -> ImportResult:
    """Import every run in a trace file (``.gz`` is decompressed; the format is detected unless given).

    Returns the runs (usage the file lacks already filled by local counting) and the records that could
    not be imported (``result.errors``: each names the file, the record and the reason). Raises
    :class:`InterchangeError` when the file cannot be read, is of no known format, or has no good record.
    """
    path = Path(path)
    if (format is None or normalize_format(format) == "opencode") and opencode.is_db(path):
        return _checked(_guarded(lambda: opencode.import_db(path), "opencode", path), "opencode", path)
    text = read_text(path)
    fmt = normalize_format(format) if format else detect_format(path, text)
    return import_text(text, fmt, path)
