"""Issue #21 point 2: the response cache is data, never code — JSON in SQLite, no pickles, no module
names from cache entries, and no folder or database another user controls."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import sys
from pathlib import Path

import pytest

from tokprof.optimizers import cached_clients, request_keys, response_store
from tokprof.optimizers import response_cache as rc
from tokprof.optimizers.response_cache import CacheError, ResponseCache


def test_values_are_json_text_never_pickles(tmp_path: Path) -> None:
    c = ResponseCache(tmp_path / "c", deterministic_only=False)
    c.set("k", {"answer": [1, 2, "three"]})
    c.close()
    con = sqlite3.connect(tmp_path / "c" / "cache.db")
    rows = con.execute("SELECT value, typeof(value) FROM tokprof_entries").fetchall()
    assert rows == [(json.dumps({"answer": [1, 2, "three"]}), "text")]
    src = "".join(Path(m.__file__).read_text() for m in (rc, request_keys, response_store, cached_clients))
    assert "import pickle" not in src and "import diskcache" not in src and "import_module" not in src


def test_an_entry_naming_a_module_never_imports_it(tmp_path: Path) -> None:
    """The old format stored the response's type as ``module:qualname`` and imported it on a hit."""
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil_mod_21.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass X:\n    @staticmethod\n"
                    "    def model_validate(d):\n        return d\n")
    sys.path.insert(0, str(tmp_path))
    try:
        cache = ResponseCache(tmp_path / "c", deterministic_only=False)
        created = []
        create = cached_clients._CachedCreate(lambda **kw: created.append(kw) or _completion(), cache, "openai")
        kw = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
        key = cache.key("openai", "gpt-4o", kw["messages"], None, {"temperature": 0})
        cache.set(key, {"type": "evil_mod_21:X", "response": {"x": 1}})
        out = create(**kw)
        assert not marker.exists() and "evil_mod_21" not in sys.modules
        assert created and out.choices[0].message.content == "real"  # a miss: the real call was made
    finally:
        sys.path.remove(str(tmp_path))


def _completion():
    from openai.types.chat import ChatCompletion

    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 1, "model": "gpt-4o",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "real"}}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 1, "total_tokens": 9}})


def test_hit_is_labelled_as_served_by_the_cache(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c")
    calls = []
    create = cached_clients._CachedCreate(lambda **kw: calls.append(1) or _completion(), cache, "openai")
    kw = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    first, second = create(**kw), create(**kw)
    assert len(calls) == 1
    assert first.usage.prompt_tokens == 8
    assert second.tokprof_served_by == "response-cache"
    assert (second.usage.prompt_tokens, second.usage.completion_tokens, second.usage.total_tokens) == (0, 0, 0)
    assert second.tokprof_cached_usage["prompt_tokens"] == 8


def test_group_or_world_writable_folder_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir()
    os.chmod(d, 0o777)
    with pytest.raises(CacheError, match="writable by other users"):
        ResponseCache(d)


def test_folder_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "c"
    d.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: os.stat(d).st_uid + 1)
    with pytest.raises(CacheError, match="another user"):
        ResponseCache(d)


def test_database_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = tmp_path / "c"
    ResponseCache(d).close()
    uid = os.stat(d).st_uid
    real_lstat = os.lstat

    def lstat(p, *a, **k):  # noqa: ANN001, ANN202
        st = real_lstat(p, *a, **k)
        if str(p).endswith("cache.db"):
            return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, uid + 1, *st[5:10]))
        return st

    monkeypatch.setattr(os, "lstat", lstat)
    with pytest.raises(CacheError, match="another user"):
        ResponseCache(d)


def test_0666_database_is_tightened(tmp_path: Path) -> None:
    d = tmp_path / "c"
    ResponseCache(d).close()
    os.chmod(d / "cache.db", 0o666)
    c = ResponseCache(d)
    c.close()
    assert stat.S_IMODE((d / "cache.db").stat().st_mode) == 0o600


def test_symlinked_database_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "c"
    d.mkdir(mode=0o700)
    (d / "cache.db").symlink_to(tmp_path / "elsewhere.db")
    with pytest.raises(CacheError, match="symbolic link"):
        ResponseCache(d)


def test_stored_responses_are_redacted(tmp_path: Path) -> None:
    c = ResponseCache(tmp_path / "c", deterministic_only=False)
    secret = "sk-proj-" + "A1b2C3d4" * 6
    c.set("k", {"content": f"your key is {secret}"})
    c.close()
    raw = (tmp_path / "c" / "cache.db").read_bytes()
    assert secret.encode() not in raw
