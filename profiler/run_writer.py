"""Writing run files: :class:`RunWriter` streams spans as they finish (each line flushed, failed writes
retried, the run marked incomplete with the reason), :func:`save_run` writes a whole run atomically;
a forked child never writes into its parent's file."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any

from tokprof.profiler.model import Run, Span
from tokprof.profiler.private_files import NOFOLLOW, clean_stale_temps, make_private_dir, open_private, temp_path
from tokprof.profiler.run_lines import dumps_line, header_record, payload_id, payload_line, redacted_line
from tokprof.profiler.run_paths import file_stem, runs_dir


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
        self.late = 0  # spans written after the end line (see MAX_LATE)
        self.late_dropped = 0

    @classmethod
    def open(cls, run: Run, folder: str | Path | None = None) -> "RunWriter":
        folder = runs_dir(folder)
        make_private_dir(folder)
        path = folder / f"{file_stem(run.run_id)}.jsonl"
        fd = open_private(path)
        fh = os.fdopen(fd, "wb", buffering=0)
        w = cls(path, fh)
        try:
            w._write_line(redacted_line(header_record(run)))
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
                    if self.late >= self.MAX_LATE:
                        self._drop_late()
                        return
                    self.late += 1
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
    MAX_LATE = 10_000
    """Spans a closed run still takes (a task or thread created inside the profile that outlives it): a
    worker loop that lives on must not grow a closed run's file without end (nor open it on every call);
    past this they are counted and logged once."""

    def _drop_late(self) -> None:
        self.late_dropped += 1
        if self.late_dropped == 1:
            from tokprof.profiler.policy import log

            log.warning("tokprof: %s: the run closed %d spans ago; later spans of tasks or threads it started "
                        "are not written", self.path, self.MAX_LATE)

    def _write_late(self, span: Span) -> None:
        """A span that finished after its profile closed the file (an abandoned stream closed later, a
        background task): appended after the end line, marked ``finished_after_profile`` (issue #21 point
        4). The file is reopened for appending without following links; if that fails the span stays in
        the in-memory run only."""
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
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
        if messages and llm is not None:
            refs = []
            seen = self._seen
            staged: dict[str, str] = {}
            for m in messages:
                pid = payload_id(m)
                stored = seen.get(pid) or staged.get(pid)
                if stored is not None and pid in seen:
                    seen.move_to_end(pid)
                if stored is None:
                    stored, line = payload_line(pid, m)
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
        lines.append(redacted_line(d))
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
                self._write_line(dumps_line(end))
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


# -- fork: a child process must not write into its parent's run file ---------------------------------
_open_writers: "weakref.WeakSet[RunWriter]" = weakref.WeakSet()


def after_fork_in_child() -> None:
    """A forked child shares the parent's open run files. Its spans would interleave with the parent's
    (duplicate span ids, a second end line, totals that disagree with the tree): in the child every
    writer inherited from the parent is detached — the child records nothing into the parent's run
    (issue #21 point 13). The parent's file is left exactly as the parent writes it."""
    for w in list(_open_writers):
        w.closed = True  # write_span and close become no-ops; the child never touches the file
        w.forked = True


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
    clean_stale_temps(target.parent)
    tmp = temp_path(target)
    fd = open_private(tmp)
    try:
        with os.fdopen(fd, "wb", buffering=0) as fh:
            w = RunWriter(target, fh)
            w._write_line(redacted_line(header_record(run)))
            for s in sorted(run.spans, key=lambda s: (s.end_ns or s.start_ns)):
                w._write_one(s)
            w._write_line(dumps_line({"type": "end", "ended_wall_ns": run.ended_wall_ns}))
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


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=after_fork_in_child)
