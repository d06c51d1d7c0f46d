"""Run files: append-only JSON Lines with content-addressed payloads, and a tolerant loader.

File layout (one JSON object per line, schema version in the header)::

    {"type": "run", "schema": 1, "run_id": ..., "name": ..., "tags": {...}, "started_wall_ns": ..., "metadata": {...}}
    {"type": "payload", "id": "<sha1>", "data": {...message...}}      # each distinct message, once per file
    {"type": "span", ...span fields..., "llm": {..., "messages": {"$base": "<span id>", "$keep": 12, "$refs": ["<sha1>", ...]}}}
    ...
    {"type": "end", "ended_wall_ns": ...}

Spans are written as they finish, and each line is flushed, so a crash keeps every finished span; a file
without its ``end`` line loads as an incomplete run. An agent re-sends its growing history on every call;
messages are therefore stored once per file and referenced by hash, so 200 calls do not write the history
200 times; and a span's list of message references is itself written as "the first ``$keep`` references of
an earlier span's list (``$base``), then these new ones", so the references do not grow quadratically
either.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import secrets
import stat
import threading
import warnings
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import IO, Any, Callable, Iterator

from tokprof.profiler import redact
from tokprof.profiler.model import SCHEMA_VERSION, TOKEN_SOURCES, Run, Span

DEFAULT_DIR = Path(".tokprof") / "runs"
ENV_DIR = "TOKPROF_DIR"


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


def runs_dir(directory: str | Path | None = None) -> Path:
    """The runs folder: the argument, else ``$TOKPROF_DIR``, else ``.tokprof/runs``."""
    if directory is not None:
        return Path(directory)
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else DEFAULT_DIR


MAX_STEM = 64
"""Longest file-name stem derived from a run id (file systems cap names at 255 bytes)."""
_UNSAFE_STEM = re.compile(r"[^A-Za-z0-9_.-]")


def file_stem(run_id: Any) -> str:
    """The file-name stem for a run id: the id itself when it is a short plain name, else a sanitised,
    bounded form plus a hash of the whole id (so distinct ids keep distinct files). Run ids come from
    foreign files (OTLP ``tokprof.run.id``, run files given to ``optimize``): they are metadata, and never
    become a path — no separators, no ``..``, no leading dot, at most :data:`MAX_STEM` characters."""
    rid = str(run_id)
    stem = _UNSAFE_STEM.sub("_", rid).lstrip(".")
    if stem == rid and 0 < len(stem) <= MAX_STEM:
        return stem
    digest = hashlib.sha1(rid.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{stem[:MAX_STEM - 13] or 'run'}-{digest}"


class UnsafeFolderError(PermissionError, ValueError):
    """A runs or cache folder that another user could tamper with (not ours, or writable by others)."""


def check_private_dir(folder: Path, what: str = "runs folder") -> None:
    """Refuse a folder not owned by the current user or writable by group/others: another local user
    could plant symlinks or files in it. (The owner is the effective user; root must not follow another
    user's folder either.)"""
    try:
        st = os.stat(folder)
    except OSError as exc:
        raise UnsafeFolderError(f"{folder}: cannot check the {what} ({exc.strerror or exc})") from None
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"{folder} exists and is not a folder; set $TOKPROF_DIR or save= to a folder")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise UnsafeFolderError(f"{folder}: the {what} is owned by another user (uid {st.st_uid}); use a "
                                "folder of your own ($TOKPROF_DIR or --dir)")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeFolderError(f"{folder}: the {what} is writable by other users (mode "
                                f"{stat.S_IMODE(st.st_mode):o}); `chmod go-w {folder}` or use another folder")


def _dumps(obj: Any) -> str:
    line = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (os.listdir of a non-UTF-8 file name...): \u escapes keep it, losslessly, in
        # valid UTF-8 JSON; json.loads gives the same string back.
        line = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), default=_json_default)
    return line


def _redacted_dumps(record: dict[str, Any]) -> str:
    """One record as a JSON line with secrets redacted (see :mod:`tokprof.profiler.redact`): a cheap marker scan
    of the line, and a structural redaction of the record only when a marker is there. If redaction
    itself fails the exception propagates and the line is not written (fail closed)."""
    line = _dumps(record)
    if redact.may_contain_secret(line):
        line = _dumps(redact.redact_obj(record))
    return line


def _payload_line(pid: str, message: Any) -> tuple[str, str]:
    """(id the message is stored under, its payload line). A message holding a secret is stored redacted,
    under the id of its redacted content, so not even a hash of the secret reaches the file."""
    line = _dumps({"type": "payload", "id": pid, "data": message})
    if redact.may_contain_secret(line):
        data = redact.redact_obj(message)
        if data != message:
            pid = payload_id(data)
            line = _dumps({"type": "payload", "id": pid, "data": data})
    return pid, line


def make_private_dir(folder: Path) -> None:
    """Create ``folder`` (and missing parents) readable by the owner only (0700). An existing folder is
    used as it is when it is ours and not writable by others; else :class:`UnsafeFolderError`."""
    missing = []
    cur = folder
    while not cur.exists():
        missing.append(cur)
        if cur.parent == cur:
            break
        cur = cur.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=0o700)
        except FileExistsError:  # created concurrently by another writer
            continue
        os.chmod(d, 0o700)  # mkdir's mode is filtered by the umask; be explicit
    if not folder.is_dir():
        raise NotADirectoryError(f"{folder} exists and is not a folder; set $TOKPROF_DIR or save= to a folder")
    check_private_dir(folder)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _open_private(path: Path) -> int:
    """Create ``path`` new, mode 0600: ``O_EXCL|O_NOFOLLOW``, so a symlink or file planted under that name
    is never followed or truncated. An existing entry (a previous run file of the same id) is unlinked
    first — that removes a link, never its target."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        if os.path.isdir(path) and not os.path.islink(path):
            raise IsADirectoryError(f"{path} is a folder; cannot write a run file there") from None
        os.unlink(path)
        fd = os.open(path, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:  # pragma: no cover - filesystems without permissions (FAT): nothing to tighten
        pass
    return fd


def _temp_path(target: Path) -> Path:
    """A random, hidden temp name next to ``target`` (unpredictable: nobody can plant a link there first)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")


def _json_default(obj: Any) -> Any:
    # Decimal, Path, sets, pydantic objects... stored as text rather than failing the whole line.
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if hasattr(obj, "model_dump"):
        try:
            return obj.model_dump()
        except Exception:
            pass
    return str(obj)


def payload_id(data: Any) -> str:
    """Content address of a payload: sha1 of its canonical JSON."""
    canon = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return hashlib.sha1(canon.encode("utf-8", "surrogatepass")).hexdigest()


def _header(run: Run) -> dict[str, Any]:
    return {
        "type": "run",
        "schema": SCHEMA_VERSION,
        "run_id": str(run.run_id),
        "name": str(run.name),  # profile(name=123): written as the loader reads it
        "tags": run.tags,
        "started_wall_ns": run.started_wall_ns,
        "metadata": run.metadata,
    }


class RunWriter:
    """Streams a run to ``<folder>/<file_stem(run_id)>.jsonl``: header first, then spans as they finish.

    Thread-safe; each span's lines are written whole (bytes, unbuffered) or not at all: a failed write
    (disk full...) is cut back to the last complete line, nothing it would have stored is counted as
    stored, and the span is kept to be written again with the next span or at close. So a transient
    failure loses nothing, and a lasting one leaves a file of complete spans whose end line (when it can
    still be written) says the run is incomplete and why. Files are created readable by the owner only
    (prompts are private data).
    """

    def __init__(self, path: Path, fh: Any) -> None:
        self.path = path
        self._fh = fh  # binary, unbuffered (a text file is accepted: tests wrap the file object)
        self._lock = threading.Lock()
        # id of a message's content -> id it is stored under (they differ when a secret was redacted);
        # a bounded LRU
        self._seen: OrderedDict[str, str] = OrderedDict()
        self._recent: list[tuple[str, list[str]]] = []  # (span id, message refs) of the last few LLM spans
        self._good = 0  # bytes of complete lines in the file
        self._pending: list[Span] = []  # spans whose write failed, retried with the next write
        self.failures: list[str] = []  # why writes failed (for the end line)
        self.lost = 0  # spans given up after MAX_PENDING failed writes
        self.closed = False
        self.broken = False
        self.forked = False  # True in a forked child: this writer belongs to the parent

    @classmethod
    def open(cls, run: Run, folder: str | Path | None = None) -> "RunWriter":
        folder = runs_dir(folder)
        make_private_dir(folder)
        path = folder / f"{file_stem(run.run_id)}.jsonl"
        fd = _open_private(path)
        fh = os.fdopen(fd, "wb", buffering=0)
        w = cls(path, fh)
        try:
            w._write_line(_redacted_dumps(_header(run)))
        except BaseException:
            fh.close()
            raise
        _open_writers.add(w)
        return w

    def _write(self, text: str) -> None:
        """Write ``text`` completely or (on failure) cut the file back to its last complete line."""
        fh = self._fh
        data = text.encode("utf-8")
        try:
            view = memoryview(data)
            while view:
                n = fh.write(view)
                if n is None or n <= 0:  # pragma: no cover - non-blocking file: treat as a failure
                    raise OSError("short write")
                view = view[n:]
            fh.flush()
        except OSError:
            try:  # no partial line stays behind for the next write to run into
                fh.truncate(self._good)
                fh.seek(self._good)
            except (OSError, ValueError, AttributeError):
                pass
            raise
        self._good += len(data)

    def _write_line(self, line: str) -> None:
        self._write(line + "\n")

    MAX_SEEN_PAYLOADS = 100_000
    """Cap on the ids of payloads already written (an LRU): memory stays bounded on endless runs; a
    payload evicted and seen again is simply written again (the loader keeps the last copy)."""

    MAX_PENDING = 1000
    """Spans kept for a retry after failed writes (beyond this the oldest are given up, and counted)."""

    def write_span(self, span: Span) -> None:
        # Everything that decides what earlier lines exist (payloads seen, the reference base) happens
        # under the lock with the write, so concurrent spans never refer to a line not yet written.
        with self._lock:
            if self.closed:
                if not self.forked and not self.broken:
                    self._write_late(span)
                return
            try:
                if self._pending:
                    self._retry_pending()
                self._write_one(span)
            except OSError as exc:
                self._fail(span, exc)
                raise

    LATE_ATTR = "finished_after_profile"

    def _write_late(self, span: Span) -> None:
        """A span that finished after its profile closed the file (an abandoned stream closed later, a
        background task): appended after the end line, marked ``finished_after_profile`` (issue #21 point
        4). The file is reopened for appending without following links; if that fails the span stays in
        the in-memory run only."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb", buffering=0) as fh:
                self._fh = fh
                self._good = os.fstat(fd).st_size
                span.attributes = dict(span.attributes or {})
                span.attributes[self.LATE_ATTR] = True
                self._write_one(span)
        except OSError:
            pass

    def _fail(self, span: Span, exc: BaseException) -> None:
        self.broken = True
        self.failures.append(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
        del self.failures[:-5]
        self._pending.append(span)
        if len(self._pending) > self.MAX_PENDING:
            self._pending.pop(0)
            self.lost += 1

    def _retry_pending(self) -> None:
        while self._pending:
            self._write_one(self._pending[0])  # an OSError leaves it pending
            self._pending.pop(0)

    def _write_one(self, span: Span) -> None:
        d = span.to_dict()
        llm = d.get("llm")
        messages = llm.get("messages") if llm is not None else None
        lines: list[str] = []
        new_seen: list[tuple[str, str]] = []
        recent = None
        if messages:
            refs = []
            seen = self._seen
            staged: dict[str, str] = {}
            for m in messages:
                pid = payload_id(m)
                stored = seen.get(pid) or staged.get(pid)
                if stored is not None and pid in seen:
                    seen.move_to_end(pid)
                if stored is None:
                    stored, line = _payload_line(pid, m)
                    staged[pid] = stored
                    new_seen.append((pid, stored))
                    lines.append(line)
                refs.append(stored)
            llm["messages"], recent = self._encode_refs(span.span_id, refs)
        d["type"] = "span"
        # a name or model given as a number is written as text: the loader only reads strings there
        if d.get("name") is not None and not isinstance(d["name"], str):
            d["name"] = str(d["name"])
        if llm is not None:
            for k in ("model", "provider"):
                if llm.get(k) is not None and not isinstance(llm[k], str):
                    llm[k] = str(llm[k])
        lines.append(_redacted_dumps(d))
        self._write("\n".join(lines) + "\n")
        # Only now are the payloads and the reference base on disk: later spans may refer to them.
        seen = self._seen
        for pid, stored in new_seen:
            seen[pid] = stored
        while len(seen) > self.MAX_SEEN_PAYLOADS:
            seen.popitem(last=False)
        if recent is not None:
            self._recent.append(recent)
            if len(self._recent) > self._RECENT:
                self._recent.pop(0)

    _RECENT = 8  # conversations interleave (agent and simulated user); look back a few spans

    def _encode_refs(self, span_id: str, refs: list[str]) -> tuple[dict[str, Any], tuple[str, list[str]]]:
        best_id, best_keep = None, 0
        for base_id, base_refs in self._recent:
            keep = 0
            for a, b in zip(base_refs, refs):
                if a != b:
                    break
                keep += 1
            if keep > best_keep:
                best_id, best_keep = base_id, keep
        if best_id is None or best_keep < 2:
            return {"$refs": refs}, (span_id, refs)
        return {"$base": best_id, "$keep": best_keep, "$refs": refs[best_keep:]}, (span_id, refs)

    def close(self, run: Run) -> None:
        """Write the end line and close. Spans still pending after failed writes are tried once more; if
        any write failed, the end line says the run is incomplete and why (so it loads as incomplete). If
        even that cannot be written, the file is closed without an end line (also incomplete), and nothing
        is raised a second time."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            try:
                if self._pending:
                    self._retry_pending()
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}")
            end: dict[str, Any] = {"type": "end", "ended_wall_ns": run.ended_wall_ns}
            lost = len(self._pending) + self.lost
            if lost:
                end["incomplete"] = f"{lost} spans could not be written: " + "; ".join(self.failures[-3:])
                run.complete = False
                run.metadata.setdefault("incomplete_reason", end["incomplete"])
            elif self.failures:  # every failed write was retried and succeeded: nothing is missing
                end["write_failures_recovered"] = "; ".join(self.failures[-3:])
            try:
                self._write_line(_dumps(end))
            except OSError:
                if not self.broken:
                    self.broken = True
                    try:
                        self._fh.close()
                    except OSError:
                        pass
                    raise
            finally:
                try:
                    self._fh.close()
                except OSError:
                    pass


STALE_TEMP_SECONDS = 24 * 3600
_cleaned_folders: set[str] = set()


def _clean_stale_temps(folder: Path) -> None:
    """Remove our own temp files left by a killed save (older than a day, so a concurrent save's temp
    is never touched); once per folder per process."""
    import time

    key = str(folder)
    if key in _cleaned_folders:
        return
    _cleaned_folders.add(key)
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for e in entries:
        if not (e.name.endswith(".tmp") and ".jsonl" in e.name):
            continue
        try:
            st = e.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and now - st.st_mtime > STALE_TEMP_SECONDS:
                os.unlink(e.path)
        except OSError:
            continue


def write_private(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` readable by the owner only (0600), atomically: a random temp file created
    with ``O_EXCL|O_NOFOLLOW`` next to it, renamed into place. For files people share but that hold
    prompts (HTML reports, OTLP exports): never world-readable, never through a planted link."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_path(path)
    fd = _open_private(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


# -- fork: a child process must not write into its parent's run file ---------------------------------
_open_writers: "weakref.WeakSet[RunWriter]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child shares the parent's open run files. Its spans would interleave with the parent's
    (duplicate span ids, a second end line, totals that disagree with the tree): in the child every
    writer inherited from the parent is detached — the child records nothing into the parent's run
    (issue #21 point 13). The parent's file is left exactly as the parent writes it."""
    for w in list(_open_writers):
        w.closed = True  # write_span and close become no-ops; the child never touches the file
        w.forked = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def save_run(run: Run, directory: str | Path | None = None, path: str | Path | None = None) -> Path:
    """Write a whole run to a file (atomically: a random temp file, created exclusively, renamed into
    place). The file name comes from :func:`file_stem` of the run id. Returns its path."""
    if path is not None:
        target = Path(path)
        make_private_dir(target.parent)
    else:
        folder = runs_dir(directory)
        make_private_dir(folder)
        target = folder / f"{file_stem(run.run_id)}.jsonl"
    _clean_stale_temps(target.parent)
    tmp = _temp_path(target)
    fd = _open_private(tmp)
    try:
        with os.fdopen(fd, "wb", buffering=0) as fh:
            w = RunWriter(target, fh)
            w._write_line(_redacted_dumps(_header(run)))
            for s in sorted(run.spans, key=lambda s: (s.end_ns or s.start_ns)):
                w._write_one(s)
            w._write_line(_dumps({"type": "end", "ended_wall_ns": run.ended_wall_ns}))
        os.replace(tmp, target)
    except BaseException:
        # No partial file left behind: the target is untouched and the temp file goes.
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    run.path = target
    return target


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
                continue
            try:
                if kind == "payload":
                    payloads[rec["id"]] = rec["data"]
                elif kind == "span":
                    for name, expected in (("attributes", dict), ("tags", dict), ("llm", dict), ("name", str),
                                           ("kind", str), ("status", str), ("error", str)):
                        _field(rec, name, expected, None)
                    llm = rec.get("llm")
                    if llm is not None:
                        for name, expected in (("messages", (list, dict)), ("tools", list), ("params", dict),
                                               ("usage", dict), ("cost", dict), ("model", str), ("provider", str)):
                            _field(llm, name, expected, None)
                        if isinstance(llm.get("usage"), dict):
                            for k, v in llm["usage"].items():
                                if k != "sources" and v is not None and (
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
                    run.spans.append(Span.from_dict(rec))
                elif kind == "end":
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
    from tokprof.profiler.integrity import break_parent_cycles

    if break_parent_cycles(run):
        warnings.warn(f"{path}: parent-id cycle(s) broken: {run.metadata['parent_cycles_broken'][:3]}",
                      DamagedRunWarning, stacklevel=2)
    return run


def iter_run_files(directory: str | Path | None = None) -> Iterator[Path]:
    """Run files in a folder, newest first."""
    folder = runs_dir(directory)
    if not folder.is_dir():
        return iter(())
    files = []
    for p in folder.glob("*.jsonl*"):
        if p.name.endswith(".tmp") or p.name.startswith("."):
            continue
        try:
            st = p.stat()  # follows links: a dangling one fails, a link to /dev/zero is not regular
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            files.append((st.st_mtime, p))
    files.sort(key=lambda t: t[0], reverse=True)
    return iter([p for _, p in files])


def resolve_run(ref: str | None, directory: str | Path | None = None) -> Path:
    """A run file from a path, a run id (or unique prefix) in the runs folder, or ``None`` for the latest."""
    folder = runs_dir(directory)
    if ref is None:
        for p in iter_run_files(folder):
            return p
        raise RunFileError(folder, None, "no saved runs here; record one with `tokprof run script.py` or profile()")
    p = Path(ref)
    if p.exists():
        return p
    matches = [f for f in iter_run_files(folder) if f.name.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunFileError(ref, None, f"no run file or run id matching {ref!r} in {folder}")
    raise RunFileError(ref, None, f"run id prefix {ref!r} is ambiguous: {', '.join(m.stem for m in matches[:5])}")
