"""The live response cache's storage: :class:`ResponseCache` over an owner-only SQLite database holding
JSON (never pickles), refusing a folder or database another user owns or can write (:class:`CacheError`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence
from tokprof.profiler.policy import internal_error
from tokprof.optimizers.request_keys import is_deterministic, request_key


# ---------------------------------------------------------------------------------------------------
# live cache
# ---------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    """``$TOKPROF_CACHE_DIR``, else ``.tokprof/response-cache``."""
    env = os.environ.get("TOKPROF_CACHE_DIR")
    return Path(env) if env else Path(".tokprof") / "response-cache"


class CacheError(ValueError):
    """A response-cache folder that cannot be used: names the folder and what to do."""


class ResponseCache:
    """A response store shared by every process that opens the same directory.

    Entries live in one SQLite database (``cache.db``, WAL mode, so concurrent processes can read and
    write) as JSON text — never pickles: a cache folder is data, and loading it must not run code. Keys
    are :func:`request_key` hashes prefixed by the namespace. The folder must belong to the current user
    and not be writable by others (else :class:`CacheError`: as root, a folder another user controls
    could otherwise feed the agent forged answers); the folder is 0700 and its files 0600 (responses are
    private data; an existing database readable by others is tightened). A damaged entry is a miss (and
    is dropped), never an exception in the agent."""

    def __init__(self, directory: str | Path | None = None, *, namespace: str = "default",
                 ttl: float | None = None, size_limit: int = 1 << 30, deterministic_only: bool = True) -> None:
        self.directory = Path(directory) if directory is not None else default_cache_dir()
        self.namespace = namespace
        self.ttl = ttl
        self.deterministic_only = deterministic_only
        self._cache = _open_private_cache(self.directory, size_limit)
        self.hits = 0
        self.misses = 0

    def cacheable(self, params: Mapping[str, Any] | None) -> bool:
        return not self.deterministic_only or bool(is_deterministic(params))

    def key(self, provider: str | None, model: str | None, messages: Sequence[Any],
            tools: Iterable[Any] | None = None, params: Mapping[str, Any] | None = None) -> str:
        return request_key(provider, model, messages, tools, params, self.namespace)

    def get(self, key: str) -> Any | None:
        raw = self._cache.get(f"{self.namespace}:{key}")
        if raw is None:
            self.misses += 1
            return None
        try:
            value = json.loads(raw)
        except (TypeError, ValueError, RecursionError) as exc:
            internal_error(f"response cache entry in {self.directory}", exc)
            try:
                self._cache.delete(f"{self.namespace}:{key}")
            except Exception:  # a read-only or locked cache: the entry just stays a miss
                pass
            self.misses += 1
            return None
        self.hits += 1
        return value

    def set(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON) — redacted first: the cache is a writer like any other (issue #21)."""
        from tokprof.profiler import redact

        text = json.dumps(value, default=str)
        if redact.may_contain_secret(text):
            text = json.dumps(redact.redact_obj(json.loads(text)))
        self._cache.set(f"{self.namespace}:{key}", text, expire=self.ttl)

    def clear(self) -> None:
        """Remove this namespace's entries."""
        self._cache.delete_prefix(f"{self.namespace}:")

    def close(self) -> None:
        self._cache.close()

    def __len__(self) -> int:
        prefix = f"{self.namespace}:"
        return sum(1 for k in self._cache.iterkeys() if k.startswith(prefix))


class _JsonStore:
    """The SQLite table behind :class:`ResponseCache`: text keys, JSON text values, an expiry time, and a
    least-recently-used cull to ``size_limit`` bytes. One connection per store, serialised by a lock
    (SQLite connections are not for concurrent use from several threads)."""

    _SCHEMA = ("CREATE TABLE IF NOT EXISTS tokprof_entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, "
               "expire REAL, accessed REAL NOT NULL, size INTEGER NOT NULL)")

    def __init__(self, db: Path, size_limit: int) -> None:
        import sqlite3
        import threading

        self._con = sqlite3.connect(str(db), timeout=60, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self.size_limit = size_limit
        self._con.execute("PRAGMA busy_timeout = 60000")
        self._con.execute("PRAGMA journal_mode = WAL")
        self._con.execute(self._SCHEMA)
        self._con.execute("CREATE INDEX IF NOT EXISTS tokprof_accessed ON tokprof_entries (accessed)")

    def get(self, key: str) -> str | None:
        import time

        with self._lock:
            row = self._con.execute("SELECT value, expire FROM tokprof_entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            value, expire = row
            now = time.time()
            if expire is not None and expire <= now:
                self._con.execute("DELETE FROM tokprof_entries WHERE key = ?", (key,))
                return None
            try:
                self._con.execute("UPDATE tokprof_entries SET accessed = ? WHERE key = ?", (now, key))
            except Exception:  # a read-only cache still serves
                pass
            return value if isinstance(value, str) else None

    def set(self, key: str, value: str, expire: float | None = None) -> None:
        import time

        now = time.time()
        size = len(value.encode("utf-8", "surrogatepass")) + len(key)
        with self._lock:
            self._con.execute("INSERT OR REPLACE INTO tokprof_entries (key, value, expire, accessed, size) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (key, value, None if expire is None else now + expire, now, size))
            total = self._con.execute("SELECT COALESCE(SUM(size), 0) FROM tokprof_entries").fetchone()[0]
            if total > self.size_limit:
                self._cull(total)

    def _cull(self, total: int) -> None:
        # least recently used first, until the store fits its limit again
        rows = self._con.execute("SELECT key, size FROM tokprof_entries ORDER BY accessed").fetchall()
        drop = []
        for key, size in rows:
            if total <= self.size_limit:
                break
            drop.append((key,))
            total -= size
        self._con.executemany("DELETE FROM tokprof_entries WHERE key = ?", drop)

    def delete(self, key: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM tokprof_entries WHERE key = ?", (key,))

    def delete_prefix(self, prefix: str) -> None:
        with self._lock:
            self._con.execute("DELETE FROM tokprof_entries WHERE substr(key, 1, ?) = ?", (len(prefix), prefix))

    def iterkeys(self) -> Iterable[str]:
        with self._lock:
            return [k for (k,) in self._con.execute("SELECT key FROM tokprof_entries")]

    def close(self) -> None:
        with self._lock:
            self._con.close()


def _check_owned(path: Path, what: str, *, tighten: bool) -> None:
    """``path`` must be ours, not a symlink, and (files) private: a wider file mode is tightened when
    ``tighten`` (our own file), a folder writable by others is refused."""
    import stat

    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise CacheError(f"{path}: the response cache {what} is a symbolic link; refusing to follow it")
    if hasattr(os, "geteuid") and st.st_uid != os.geteuid():
        raise CacheError(f"{path}: the response cache {what} belongs to another user (uid {st.st_uid}); "
                         "use a cache folder of your own (TOKPROF_CACHE_DIR)")
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise CacheError(f"{path}: the response cache folder is writable by other users (mode {mode:o}); "
                             f"`chmod 700 {path}` or use another folder")
    elif mode & 0o077:
        if not tighten:
            raise CacheError(f"{path}: the response cache {what} is accessible by other users (mode {mode:o})")
        os.chmod(path, 0o600)


def _open_private_cache(directory: Path, size_limit: int) -> _JsonStore:
    import sqlite3

    try:
        if not directory.exists() and not directory.is_symlink():
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)  # mkdir's mode is filtered by the umask; be explicit
        _check_owned(directory, "folder", tighten=False)
        db = directory / "cache.db"
        if os.path.lexists(db):
            _check_owned(db, "database", tighten=True)
        else:
            # SQLite keeps an existing file's mode and gives its -wal/-shm files the same one.
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
            os.close(os.open(db, flags, 0o600))
        for extra in ("cache.db-wal", "cache.db-shm"):
            if os.path.lexists(directory / extra):
                _check_owned(directory / extra, "database", tighten=True)
        return _JsonStore(db, size_limit)
    except sqlite3.DatabaseError as exc:
        raise CacheError(f"{directory}: not a usable response cache ({exc}); delete the folder to start a new "
                         "cache, or point TOKPROF_CACHE_DIR elsewhere") from exc
    except OSError as exc:
        raise CacheError(f"{directory}: cannot open the response cache ({exc.strerror or exc})") from exc
