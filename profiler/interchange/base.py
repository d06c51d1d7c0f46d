"""What every importer shares: the error type, the result type, file reading and small value helpers.

An importer turns a foreign file into ordinary :class:`~tokprof.profiler.model.Run` objects. Files hold several
*records* (a simulation, a trajectory, a JSONL line, a trace); a bad record is reported in
:attr:`ImportResult.errors` and the good ones are still imported. Only a file that cannot be read at all
(unknown format, malformed JSON, truncated gzip, no good record) raises :class:`InterchangeError`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from tokprof.profiler.accounting import fill_run_usage
from tokprof.profiler.policy import internal_error
from tokprof.profiler.interchange.values import as_int as as_int, json_or_text as json_or_text  # re-exported
from tokprof.profiler.interchange.values import nullish as nullish, parse_time_ns as parse_time_ns  # re-exported
from tokprof.profiler.interchange.values import duration_ns as duration_ns  # re-exported
from tokprof.profiler.model import Run, Span

MAX_REPORTED_ERRORS = 5
"""How many record errors a summary shows (the count is always complete)."""


class InterchangeError(ValueError):
    """A foreign trace file (or one record of it) that cannot be imported.

    The message names the file, the record (``line 17``, ``simulation 3``...) and what was expected.
    A ``ValueError`` so the CLI prints it as one line.
    """

    def __init__(self, path: str | Path | None, record: int | str | None, message: str) -> None:
        self.path = None if path is None else str(path)
        self.record = record
        self.reason = message
        where = self.path or "<data>"
        if record is not None:
            where += f": {record if isinstance(record, str) else f'record {record}'}"
        super().__init__(f"{where}: {message}")


@dataclass
class ImportResult:
    """What one file gave: the runs, and the records that could not be imported."""

    path: Path | None
    format: str
    runs: list[Run] = field(default_factory=list)
    errors: list[InterchangeError] = field(default_factory=list)
    records: int = 0
    """Records seen (good + bad)."""
    partial: list[str] = field(default_factory=list)
    """Records imported in part, each naming what could not be rebuilt (from ``run.metadata["not_rebuilt"]``)."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def error_summary(self, limit: int = MAX_REPORTED_ERRORS) -> str:
        """``"3 records not imported: <first reasons>"`` or ``""``."""
        if not self.errors:
            return ""
        first = "; ".join(str(e) for e in self.errors[:limit])
        more = f" (and {len(self.errors) - limit} more)" if len(self.errors) > limit else ""
        return f"{len(self.errors)} of {self.records} records not imported: {first}{more}"

    def extend(self, other: "ImportResult") -> None:
        self.runs.extend(other.runs)
        self.errors.extend(other.errors)
        self.records += other.records
        self.partial.extend(other.partial)


# ---------------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------------
MAX_INPUT_BYTES = 1 << 30
"""Largest (decompressed) trace file read: 1 GiB, ``$TOKPROF_MAX_INPUT_BYTES`` to change. A gzip bomb
(18 MB that inflates to GBs) is stopped while streaming, never decompressed whole into memory."""
_CHUNK = 1 << 20


def max_input_bytes() -> int:
    import os

    try:
        return max(1, int(os.environ.get("TOKPROF_MAX_INPUT_BYTES", MAX_INPUT_BYTES)))
    except ValueError:
        return MAX_INPUT_BYTES


def read_text(path: str | Path, limit: int | None = None) -> str:
    """The file's text, gunzipped when it is gzip (by magic bytes, not only by name), streamed with a
    size limit (:data:`MAX_INPUT_BYTES`): a larger file or decompressed stream is an
    :class:`InterchangeError`, not a ``MemoryError``."""
    import stat as _stat

    path = Path(path)
    limit = max_input_bytes() if limit is None else limit
    try:
        st = path.stat()
        if not _stat.S_ISREG(st.st_mode):  # a FIFO or /dev/zero would hang or never end
            raise InterchangeError(path, None, "not a regular file")
        with open(path, "rb") as fh:
            magic = fh.read(2)
            fh.seek(0)
            stream: Any = gzip.GzipFile(fileobj=fh) if magic == b"\x1f\x8b" else fh
            parts: list[bytes] = []
            total = 0
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > limit:
                    what = "decompresses to" if stream is not fh else "is"
                    raise InterchangeError(path, None, f"the file {what} more than {limit:,} bytes; set "
                                                       "TOKPROF_MAX_INPUT_BYTES to read larger traces")
                parts.append(chunk)
            raw = b"".join(parts)
    except FileNotFoundError:
        raise InterchangeError(path, None, "no such file") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise InterchangeError(path, None, f"gzip data is truncated or corrupt ({exc}); "
                                           "re-download or re-compress the file") from None
    except OSError as exc:
        raise InterchangeError(path, None, f"cannot read the file ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InterchangeError(path, None, f"not UTF-8 text (byte {exc.start}); expected a JSON or JSONL "
                                           "trace file") from None


def parse_json(path: Path | None, text: str, expected: str) -> Any:
    """The whole file as one JSON document; a syntax error names the line and what was expected."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InterchangeError(path, f"line {exc.lineno}",
                               f"malformed JSON ({exc.msg} at column {exc.colno}); expected {expected}") from None
    except RecursionError:
        raise InterchangeError(path, None, f"JSON nested too deeply to read; expected {expected}") from None
    except ValueError as exc:  # an integer literal longer than Python converts
        raise InterchangeError(path, None, f"unreadable JSON value ({exc}); expected {expected}") from None


def iter_jsonl(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) for each non-blank line. Lines end at ``\n`` (``\r\n`` too: JSON ignores the
    ``\r``; a file of bare ``\r`` endings at ``\r``) and nowhere else: ``str.splitlines`` also splits at
    U+2028, U+2029 and U+0085, which JSON allows raw inside a string (Node's ``JSON.stringify``, Python's
    ``ensure_ascii=False``), and cut such a record in two."""
    sep = "\n" if "\n" in text or "\r" not in text else "\r"
    for lineno, line in enumerate(text.split(sep), start=1):
        if line.strip():
            yield lineno, line


def json_lines(text: str, path: Path | None, result: ImportResult, expected: str,
               tag: str = "") -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each JSON Lines line; a line that is not JSON, or is nested too deeply to
    read, becomes a counted record error naming the line (``tag`` + ``line N``) and the rest go on."""
    for lineno, line in iter_jsonl(text):
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError) as exc:
            result.records += 1
            reason = "nested too deeply" if isinstance(exc, RecursionError) else f"malformed JSON ({exc})"
            result.errors.append(InterchangeError(path, f"{tag}line {lineno}", f"{reason}; expected {expected}"))
            continue
        yield lineno, obj


def collect(result: ImportResult, items: Iterable[tuple[int | str, Any]],
            build: Callable[[Any], Run | list[Run] | None]) -> ImportResult:
    """Build a run from each record; a record that fails becomes an error naming it, the rest go on."""
    for record, item in items:
        result.records += 1
        try:
            built = build(item)
        except InterchangeError as exc:
            result.errors.append(InterchangeError(result.path, exc.record if exc.record is not None else record,
                                                  exc.reason))
            continue
        except RecursionError:
            result.errors.append(InterchangeError(result.path, record, f"{result.format} record nested too "
                                                                       "deeply to read"))
            continue
        except Exception as exc:  # noqa: BLE001 - one bad record never aborts the file (issue #21 point 7)
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
            result.errors.append(InterchangeError(result.path, record,
                                                  f"malformed {result.format} record ({detail[:300]})"))
            continue
        if built is None:
            continue
        for run in built if isinstance(built, list) else [built]:
            try:
                check_run(run)
            except ValueError as exc:
                result.errors.append(InterchangeError(result.path, record, str(exc)))
                continue
            fill_counts(run)
            result.runs.append(run)
            missing = run.metadata.get("not_rebuilt") if isinstance(run.metadata, dict) else None
            if missing:
                result.partial.append(f"{record}: " + "; ".join(str(m) for m in missing))
    return result


_MAX_NS = 1 << 63


def check_run(run: Run) -> None:
    """Ranges a foreign record can get wrong, checked at the boundary: times are int nanoseconds that fit
    in 64 bits, token counts are non-negative ints that fit too; a parent-id cycle is broken (and noted
    in the run's metadata) so nothing downstream loops. Raises ``ValueError`` naming the span."""
    from tokprof.profiler.integrity import break_parent_cycles
    from tokprof.profiler.model import USAGE_FIELDS

    for sp in run.spans:
        for name in ("start_ns", "end_ns", "wall_start_ns"):
            v = getattr(sp, name, None)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or not -_MAX_NS < v < _MAX_NS):
                raise ValueError(f"span {sp.span_id}: {name} {v!r} is not a time in nanoseconds")
        if sp.llm is not None:
            for f in USAGE_FIELDS:
                v = getattr(sp.llm.usage, f, 0)
                if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < _MAX_NS:
                    raise ValueError(f"span {sp.span_id}: {f} {v!r} is not a token count (a non-negative "
                                     "integer)")
    break_parent_cycles(run)


def fill_counts(run: Run) -> None:
    """Count what the file did not report (provider usage wins); a counting failure never loses the run."""
    try:
        fill_run_usage(run)
    except Exception as exc:  # noqa: BLE001 - counting is best effort; the imported run is still right
        internal_error("interchange: fill_run_usage", exc)


def stable_id(*parts: Any) -> str:
    """A 16-hex-digit id from the record's identity, so re-importing a file overwrites instead of duplicating."""
    h = hashlib.sha1("\x1f".join(str(p) for p in parts).encode("utf-8"))
    return h.hexdigest()[:16]


_PROVIDER_PREFIXES = (
    ("claude", "anthropic"),
    ("gpt-", "openai"),
    ("gpt4", "openai"),
    ("chatgpt", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("text-", "openai"),
    ("gemini", "google"),
    ("grok", "xai"),
    ("mistral", "mistral"),
    ("deepseek", "deepseek"),
    ("llama", "meta"),
)


def split_model(name: Any) -> tuple[str | None, str | None]:
    """``"xai/grok-3"`` -> ``("xai", "grok-3")``; ``"claude-sonnet-4-5"`` -> ``("anthropic", ...)``.

    A LiteLLM-style ``provider/model`` prefix names the API the call went through; without one the
    provider is guessed from the model family (``None`` when unknown).
    """
    name = nullish(name)
    if not name:
        return None, None
    name = str(name)
    prefix, sep, rest = name.partition("/")
    if sep and rest:
        return prefix, rest
    low = name.lower()
    for start, provider in _PROVIDER_PREFIXES:
        if low.startswith(start):
            return provider, name
    return None, name


_SECRET_HINTS = ("key", "token", "secret", "password", "base_url", "api_base", "authorization")


def public_params(params: Any) -> dict[str, Any]:
    """Request parameters minus credentials and endpoints (some files record the API key)."""
    if not isinstance(params, dict):
        return {}
    return {k: v for k, v in params.items() if not any(h in k.lower() for h in _SECRET_HINTS)}


def tool_calls_to_openai(calls: Any) -> list[dict[str, Any]]:
    """``[{id, name, arguments}]`` (τ²-bench style) or OpenAI-style calls -> OpenAI ``tool_calls``."""
    out = []
    for call in nullish(calls) or []:
        if "function" in call:
            fn = call.get("function") or {}
            name, args = fn.get("name"), fn.get("arguments")
        else:
            name, args = call.get("name"), call.get("arguments")
        out.append({
            "id": str(call.get("id") or ""),
            "type": "function",
            "function": {
                "name": name or "",
                "arguments": args if isinstance(args, str) else json.dumps(args if args is not None else {}),
            },
        })
    return out


class RunBuilder:
    """Appends spans to a run with sequential hex ids (like live spans) and consistent clocks.

    Imported files carry wall-clock times only; the monotonic ``start_ns``/``end_ns`` are set to the same
    epoch nanoseconds, so differences (durations, gaps between calls) are exactly what the file says.
    """

    def __init__(self, run: Run) -> None:
        self.run = run
        self._next = 1

    def span(self, kind: str, name: str, parent: Span | None, start_ns: int, end_ns: int | None,
             **fields: Any) -> Span:
        if end_ns is not None and end_ns < start_ns:
            end_ns = start_ns  # clock skew between machines; never a negative duration
        s = Span(f"{self._next:x}", parent.span_id if parent is not None else None, self.run.run_id, kind, name,
                 start_ns, start_ns, end_ns, **fields)
        self._next += 1
        self.run.spans.append(s)
        return s
