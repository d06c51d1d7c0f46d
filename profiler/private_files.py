"""Owner-only files and folders: folders checked for owner and mode before use, files created with
``O_EXCL|O_NOFOLLOW`` under random temp names and renamed into place, stale temp files cleaned."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


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


NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def owner_only(path: Path) -> None:
    """Tighten a file that another program created (DuckDB's ledger, its Parquet export) to 0600, and a
    folder to 0700: they hold the prompts, like the run files. Only our own entries, never through a link."""
    try:
        st = os.lstat(path)
    except OSError:
        return
    if stat.S_ISLNK(st.st_mode) or (hasattr(os, "geteuid") and st.st_uid != os.geteuid()):
        return
    mode = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
    if stat.S_IMODE(st.st_mode) & ~mode:
        try:
            os.chmod(path, stat.S_IMODE(st.st_mode) & mode)
        except OSError:  # pragma: no cover - filesystems without permissions (FAT): nothing to tighten
            pass


def open_private(path: Path) -> int:
    """Create ``path`` new, mode 0600: ``O_EXCL|O_NOFOLLOW``, so a symlink or file planted under that name
    is never followed or truncated. An existing entry (a previous run file of the same id) is unlinked
    first — that removes a link, never its target."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
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


def temp_path(target: Path) -> Path:
    """A random, hidden temp name next to ``target`` (unpredictable: nobody can plant a link there first)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")


STALE_TEMP_SECONDS = 24 * 3600


_cleaned_folders: set[str] = set()


def clean_stale_temps(folder: Path) -> None:
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
    tmp = temp_path(path)
    fd = open_private(tmp)
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
