"""Reading run files: :func:`load_run`, tolerant of a truncated or damaged file (warned, loaded as
incomplete), strict about types at the boundary (a clear :class:`RunFileError` naming file and line)."""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import IO, Any, Callable

from tokprof.profiler.integrity import (
    break_parent_cycles, note_repairs, repair_header, repair_message, repair_messages, repair_span, repair_time
)
from tokprof.profiler.model import SCHEMA_VERSION, TOKEN_SOURCES, Run, Span


class RunFileError(ValueError):
    """A run file that cannot be read: names the file, the line, and what was expected."""

    def __init__(self, path: str | Path, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {message}")


class TruncatedRunWarning(UserWarning):
    """The run file ended in the middle of a line (the process was killed while writing)."""


class DamagedRunWarning(UserWarning):
    """The run file loaded, but something in it had to be repaired (e.g. a parent-id cycle was broken)."""


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, "r", encoding="utf-8")


def _field(rec: dict[str, Any], name: str, expected: type | tuple[type, ...], default: Any) -> Any:
    """``rec[name]`` if it has the expected JSON type (or is null/absent: ``default``); else a TypeError
    naming the field, which the loader reports with the file and line."""
    value = rec.get(name)
    if value is None:
        return default
    if not isinstance(value, expected) or isinstance(value, bool):
        names = " or ".join(t.__name__ for t in (expected if isinstance(expected, tuple) else (expected,)))
        raise TypeError(f"field {name!r} must be {names}, found {type(value).__name__}")
    return value


def _shown_id(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 24 else text[:21] + "..."


def load_run(path: str | Path, *, on_error: Callable[[RunFileError], None] | None = None) -> Run:
    """Read a run file. A truncated last line is dropped with a :class:`TruncatedRunWarning` and the run is
    marked incomplete; a wrong schema version or a malformed line raises :class:`RunFileError` naming the
    file and line.

    ``on_error`` (recovery of a damaged file): each malformed line after the header is passed to it as a
    :class:`RunFileError` and skipped, rather than raised; the run keeps every good span and is marked
    incomplete. A file without a readable header still raises."""
    path = Path(path)
    if not path.exists():
        raise RunFileError(path, None, "no such run file")
    if not path.is_file():  # a FIFO or a link to /dev/zero would hang or never end
        raise RunFileError(path, None, "not a regular file; is it a tokprof run file?")
    try:
        with _open_text(path) as fh:
            raw_lines = fh.read().split("\n")
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise RunFileError(path, None, f"cannot read the file ({exc}); is it a tokprof run file?") from exc
    # A file written to the end ends with "\n", so the last element is "". Anything else in the last
    # element is a line cut short by a crash.
    truncated_tail = raw_lines[-1] if raw_lines else ""
    lines = raw_lines[:-1] if raw_lines else []
    if not lines and not truncated_tail:
        raise RunFileError(path, 1, "empty file; expected a run header line")

    run: Run | None = None
    payloads: dict[str, Any] = {}
    span_refs: dict[str, list[str]] = {}
    ended = False
    damaged = False
    repairs: list[str] = []  # fields repaired at the boundary, record by record (integrity.repair_*)
    for lineno, line in enumerate(lines, start=1):
        try:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RunFileError(path, lineno, f"malformed JSON ({exc.msg} at column {exc.colno})") from None
            except RecursionError:
                raise RunFileError(path, lineno, "JSON nested too deeply to read") from None
            except ValueError as exc:  # e.g. an integer literal longer than Python converts
                raise RunFileError(path, lineno, f"unreadable JSON value ({exc})") from None
            if not isinstance(rec, dict) or "type" not in rec:
                raise RunFileError(path, lineno, "expected a JSON object with a 'type' field")
            kind = rec["type"]
            if not isinstance(kind, str):
                raise RunFileError(path, lineno, f"the 'type' field must be a string, found {type(kind).__name__}")
            if run is None:
                if kind != "run":
                    raise RunFileError(path, lineno, f"expected the run header first, found a {kind!r} record")
                schema = rec.get("schema")
                if schema != SCHEMA_VERSION or isinstance(schema, bool):
                    raise RunFileError(
                        path, lineno,
                        f"schema version {schema!r} is not supported (this tokprof reads version {SCHEMA_VERSION}); "
                        "upgrade tokprof or re-record the run",
                    )
                header_repairs = repair_header(rec, f"line {lineno} (run header)")
                try:
                    run = Run(
                        run_id=str(rec.get("run_id") or path.stem),
                        name=_field(rec, "name", str, path.stem),
                        tags=_field(rec, "tags", dict, {}),
                        started_wall_ns=int(rec.get("started_wall_ns") or 0),
                        metadata=_field(rec, "metadata", dict, {}),
                        complete=False,
                        path=path,
                    )
                except (TypeError, ValueError, OverflowError) as exc:
                    raise RunFileError(path, lineno, f"malformed run header ({exc})") from None
                repairs += header_repairs
                continue
            try:
                if kind == "payload":
                    fixed = repair_message(rec.get("data"), f"line {lineno} (payload {_shown_id(rec.get('id'))})")
                    payloads[rec["id"]] = rec["data"]
                elif kind == "span":
                    fixed = repair_span(rec, f"line {lineno} (span {_shown_id(rec.get('span_id'))})")
                    checks: tuple[tuple[str, type | tuple[type, ...]], ...] = (
                        ("attributes", dict), ("tags", dict), ("llm", dict), ("name", str), ("kind", str),
                        ("status", str), ("error", str))
                    for name, expected in checks:
                        _field(rec, name, expected, None)
                    llm = rec.get("llm")
                    if llm is not None:
                        llm_checks: tuple[tuple[str, type | tuple[type, ...]], ...] = (
                            ("messages", (list, dict)), ("tools", list), ("params", dict), ("usage", dict),
                            ("cost", dict), ("model", str), ("provider", str))
                        for name, expected in llm_checks:
                            _field(llm, name, expected, None)
                        if isinstance(llm.get("usage"), dict):
                            for k, v in llm["usage"].items():
                                if k not in ("sources", "tool_requests") and v is not None and (
                                        not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 63):
                                    raise ValueError(f"usage {k} {v!r} is not a token count (a non-negative "
                                                     "integer)")
                            sources = _field(llm["usage"], "sources", dict, None) or {}
                            bad = [v for v in sources.values() if v not in TOKEN_SOURCES]
                            if bad:
                                raise ValueError(f"token source {bad[0]!r} is not one of {', '.join(TOKEN_SOURCES)}")
                    if llm is not None and isinstance(llm.get("messages"), dict):
                        enc = llm["messages"]
                        refs = list(enc.get("$refs", []))
                        if "$base" in enc:
                            base = span_refs.get(str(enc["$base"]))
                            if base is None:
                                raise RunFileError(path, lineno, f"span refers to messages of span {enc['$base']} "
                                                                 "not stored before it")
                            refs = base[: int(enc["$keep"])] + refs
                        span_refs[str(rec.get("span_id"))] = refs
                        missing = [r for r in refs if r not in payloads]
                        if missing:
                            raise RunFileError(path, lineno,
                                               f"span refers to payload {missing[0]} not stored before it")
                        llm["messages"] = [payloads[r] for r in refs]
                        # a stored message that is not an object (``null``, a number...) is dropped, named
                        fixed += repair_messages(llm, f"line {lineno} (span {_shown_id(rec.get('span_id'))})")
                    run.spans.append(Span.from_dict(rec))
                elif kind == "end":
                    fixed = repair_time(rec, "ended_wall_ns", f"line {lineno} (end)")
                    run.ended_wall_ns = _field(rec, "ended_wall_ns", int, None)
                    if _field(rec, "write_failures_recovered", str, None):
                        run.metadata["write_failures_recovered"] = rec["write_failures_recovered"]
                    reason = _field(rec, "incomplete", str, None)
                    if reason:
                        run.metadata["incomplete_reason"] = reason
                        damaged = True
                    ended = True
                else:
                    raise RunFileError(path, lineno, f"unknown record type {kind!r}")
                repairs += fixed  # only for a record that was kept
            except RunFileError:
                raise
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError, ArithmeticError) as exc:
                raise RunFileError(path, lineno, f"malformed {kind} record ({type(exc).__name__}: {exc})") from None
        except RunFileError as exc:
            if on_error is None or run is None:
                raise
            damaged = True
            on_error(exc)
    if run is None:
        raise RunFileError(path, 1, "truncated before the run header was complete")
    if truncated_tail.strip():
        warnings.warn(
            f"{path}:{len(lines) + 1}: last line is truncated (the process was probably killed); "
            f"loaded the {len(run.spans)} spans before it",
            TruncatedRunWarning,
            stacklevel=2,
        )
    run.complete = ended and not truncated_tail.strip() and not damaged
    if repairs:
        note_repairs(run, repairs)
        if any("not a token count" in r for r in repairs):
            # a count read as missing is counted locally, as an importer does for a trace without it: the
            # tokens shown then match the cost (which was already priced from the counted messages)
            from tokprof.profiler.accounting import fill_run_usage

            fill_run_usage(run)
        warnings.warn(f"{path}: {len(repairs)} field(s) repaired on loading: {'; '.join(repairs[:3])}"
                      + (" ..." if len(repairs) > 3 else ""), DamagedRunWarning, stacklevel=2)
    if break_parent_cycles(run):
        warnings.warn(f"{path}: parent-id cycle(s) broken: {run.metadata['parent_cycles_broken'][:3]}",
                      DamagedRunWarning, stacklevel=2)
    return run
