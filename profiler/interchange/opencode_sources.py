"""Where OpenCode keeps a session, read into one shape (:class:`Source`): its JSON storage folders, an
``opencode export`` document, or its SQLite database. The layouts are described in
:mod:`~tokprof.profiler.interchange.opencode`; each reader returns the same session/message/part objects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tokprof.profiler.interchange.base import InterchangeError

MAX_CHILD_DEPTH = 8
"""How deep sub-agents of sub-agents are followed (a parentID loop stops here too)."""


def looks_like_export(obj: Any) -> bool:
    return (isinstance(obj, dict) and isinstance(obj.get("info"), dict) and isinstance(obj.get("messages"), list)
            and all(isinstance(m, dict) and "info" in m for m in obj["messages"][:20]))


def looks_like_session(obj: Any) -> bool:
    return isinstance(obj, dict) and "id" in obj and "projectID" in obj and "time" in obj and "role" not in obj



def ms_to_ns(time: Any, key: str) -> int | None:
    """OpenCode times are epoch milliseconds."""
    v = time.get(key) if isinstance(time, dict) else None
    return int(v) * 1_000_000 if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 1e14 else None


class Source:
    """Where sessions, messages and parts come from."""

    def __init__(self, sessions: dict[str, dict[str, Any]], messages: dict[str, list[dict[str, Any]]],
                 parts: dict[str, list[dict[str, Any]]], errors: list[InterchangeError]) -> None:
        self.sessions, self.messages, self.parts, self.errors = sessions, messages, parts, errors

    def children(self, sid: str) -> list[dict[str, Any]]:
        """Sessions whose parent is ``sid`` (sub-agents), oldest first."""
        return sorted((s for s in self.sessions.values() if s.get("parentID") == sid),
                      key=lambda s: ms_to_ns(s.get("time"), "created") or 0)


def _read(f: Path, errors: list[InterchangeError]) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        errors.append(InterchangeError(f, None, f"unreadable OpenCode file ({type(exc).__name__}: {str(exc)[:120]})"))
        return None


def _storage_root(path: Path) -> Path | None:
    for p in path.parents:
        if p.name == "storage":
            return p
    return None


def from_storage(path: Path, info: dict[str, Any]) -> Source:
    errors: list[InterchangeError] = []
    root = _storage_root(path) or path.parent.parent.parent
    sessions: dict[str, dict[str, Any]] = {str(info["id"]): info}
    sdir = root / "session"
    if sdir.is_dir():
        for f in sdir.rglob("*.json"):
            if {"message", "part"} & set(f.relative_to(sdir).parts[:-1]):
                continue  # the older layout keeps messages under session/
            obj = _read(f, errors)
            if looks_like_session(obj):
                sessions.setdefault(str(obj["id"]), obj)
    messages: dict[str, list[dict[str, Any]]] = {}
    parts: dict[str, list[dict[str, Any]]] = {}
    for sid in _family(sessions, str(info["id"])):
        for mdir in (root / "message" / sid, root / "session" / "message" / sid):
            for f in sorted(mdir.glob("*.json")) if mdir.is_dir() else []:
                m = _read(f, errors)
                if isinstance(m, dict) and m.get("id"):
                    messages.setdefault(sid, []).append(m)
        for m in messages.get(sid, []):
            mid = str(m["id"])
            for pdir in (root / "part" / mid, root / "session" / "part" / sid / mid):
                for f in sorted(pdir.glob("*.json")) if pdir.is_dir() else []:
                    p = _read(f, errors)
                    if isinstance(p, dict):
                        parts.setdefault(mid, []).append(p)
    return Source(sessions, messages, parts, errors)


def _family(sessions: dict[str, dict[str, Any]], sid: str) -> list[str]:
    out, todo = [], [(sid, 0)]
    while todo:
        cur, depth = todo.pop()
        if cur in out or depth > MAX_CHILD_DEPTH:
            continue
        out.append(cur)
        todo.extend((str(s["id"]), depth + 1) for s in sessions.values() if s.get("parentID") == cur)
    return out


def from_export(data: dict[str, Any]) -> Source:
    info = data["info"]
    messages: dict[str, list[dict[str, Any]]] = {}
    parts: dict[str, list[dict[str, Any]]] = {}
    sessions = {str(info.get("id")): info}
    for m in data["messages"]:
        mi = m.get("info") if isinstance(m, dict) else None
        if not isinstance(mi, dict) or not mi.get("id"):
            continue
        sid = str(mi.get("sessionID") or info.get("id"))
        messages.setdefault(sid, []).append(mi)
        parts.setdefault(str(mi["id"]), []).extend(p for p in m.get("parts") or [] if isinstance(p, dict))
    for sid in messages:  # an export that inlines child sessions' messages
        sessions.setdefault(sid, {"id": sid, "parentID": str(info.get("id")), "title": "sub-agent", "time": {}})
    return Source(sessions, messages, parts, [])


SQLITE_MAGIC = b"SQLite format 3\x00"


def is_db(path: str | Path) -> bool:
    """Whether ``path`` is an SQLite database (OpenCode's ``opencode.db``), by its magic bytes. Only a regular
    file is opened: opening a FIFO named like a trace would block forever."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as fh:
            return fh.read(16) == SQLITE_MAGIC
    except (OSError, ValueError):
        return False


def from_db(path: Path) -> Source:
    """Every session, message and part of an ``opencode.db``, read-only."""
    import sqlite3

    def rows(con: "sqlite3.Connection", sql: str) -> list[tuple[Any, ...]]:
        try:
            return con.execute(sql).fetchall()
        except sqlite3.Error as exc:
            raise InterchangeError(path, None, f"not an OpenCode database ({exc})") from None

    def data(raw: Any, where: str, errors: list[InterchangeError]) -> dict[str, Any]:
        try:
            obj = json.loads(raw)
        except (TypeError, ValueError, RecursionError) as exc:
            errors.append(InterchangeError(path, where, f"unreadable data column ({type(exc).__name__})"))
            return {}
        return obj if isinstance(obj, dict) else {}

    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise InterchangeError(path, None, f"cannot open the database ({exc})") from None
    errors: list[InterchangeError] = []
    try:
        sessions = {str(r[0]): {"id": str(r[0]), "projectID": r[1], "parentID": r[2], "title": r[3],
                                "directory": r[4], "version": r[5], "time": {"created": r[6], "updated": r[7]}}
                    for r in rows(con, "SELECT id, project_id, parent_id, title, directory, version, time_created, "
                                       "time_updated FROM session")}
        messages: dict[str, list[dict[str, Any]]] = {}
        for mid, sid, raw in rows(con, "SELECT id, session_id, data FROM message ORDER BY id"):
            m = data(raw, f"message {mid}", errors)
            if m:
                messages.setdefault(str(sid), []).append({**m, "id": str(mid), "sessionID": str(sid)})
        parts: dict[str, list[dict[str, Any]]] = {}
        for pid, mid, sid, raw in rows(con, "SELECT id, message_id, session_id, data FROM part ORDER BY id"):
            p = data(raw, f"part {pid}", errors)
            if p:
                parts.setdefault(str(mid), []).append({**p, "id": str(pid), "messageID": str(mid),
                                                       "sessionID": str(sid)})
    finally:
        con.close()
    return Source(sessions, messages, parts, errors)

