"""Exact response caching: the ``response-cache`` pass (simulated) and a live cache.

A request is identified by a canonical hash of what changes the model's answer: provider, model,
messages, tool definitions and the output-changing parameters (:func:`request_key`). Transport details
(``stream``, ``timeout``, ``user``, headers...) are not part of it.

* :class:`ResponseCachePass` replays a recorded run (or every run of one invocation, e.g. the trials of a
  benchmark, through ``ctx.state``): a call whose request was already seen is served from the cache, so
  it costs nothing and sends no tokens. Only deterministic requests are served by default.
* :class:`ResponseCache` is the live cache: SQLite-backed, JSON values only (safe under concurrent processes),
  with a TTL, a size cap and a namespace. :class:`TokprofLLMCache` plugs it into LangChain
  (``set_llm_cache(TokprofLLMCache())``) and :func:`cached_client` wraps an OpenAI or Anthropic client.
  Errors and streams are never stored: a failed call raises as it would without the cache and leaves no
  entry behind.

Deterministic means ``temperature == 0`` or a fixed ``seed``; anything else could legitimately return a
different answer, so it is not cached unless ``deterministic_only=False``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar, Iterable, Mapping, Sequence

from tokprof.optimizers.base import Evidence, LedgerRow, PassContext, register
from tokprof.optimizers.billing import request_digest
from tokprof.profiler import keys
from tokprof.profiler.policy import internal_error
from tokprof.profiler.integrations._sdk import served_copy
from tokprof.profiler.model import LLMCall, Run, Usage

TRANSPORT_PARAMS = frozenset({
    "stream", "stream_options", "timeout", "request_timeout", "user", "metadata", "extra_headers",
    "extra_query", "extra_body", "api_key", "base_url", "api_base", "organization", "max_retries",
    "http_client", "default_headers", "callbacks", "tags", "run_name", "service_tier", "store",
})
"""Parameters that change how a request travels, not what the model answers."""


def output_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters that change the model's output (everything but transport)."""
    return {k: v for k, v in (params or {}).items() if k not in TRANSPORT_PARAMS and v is not None}


def request_key(provider: str | None, model: str | None, messages: Sequence[Any],
                tools: Iterable[Any] | None = None, params: Mapping[str, Any] | None = None,
                namespace: str = "") -> str:
    """The canonical hash of a request (hex)."""
    return request_digest([namespace, (provider or "").lower(), model or "", list(messages),
                           list(tools or []), output_params(params)])


def call_key(call: LLMCall, namespace: str = "") -> str:
    return request_key(call.provider, call.model, call.messages, call.tools, call.params, namespace)


def is_deterministic(params: Mapping[str, Any] | None) -> bool | None:
    """True for temperature 0 or a fixed seed; False for a sampling temperature; None when unknown."""
    params = params or {}
    if params.get("seed") is not None:
        return True
    t = params.get("temperature")
    if t is None:
        return None
    try:
        return float(t) == 0.0
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------
# simulated pass
# ---------------------------------------------------------------------------------------------------
@register
class ResponseCachePass:
    """Serve calls whose full request repeats an earlier one (in this run or an earlier run of the same
    invocation) from an exact response cache."""

    name: ClassVar[str] = "response-cache"
    description: ClassVar[str] = ("serve calls whose exact request (model, messages, tools, output "
                                  "parameters) was already answered, across the runs of one invocation")
    evidence: ClassVar[Evidence] = "simulated"
    reads: ClassVar[frozenset[str]] = frozenset({"messages", "tools", "params", "model"})
    changes: ClassVar[frozenset[str]] = frozenset({"usage", "cache"})
    lossless: ClassVar[bool] = True
    """Serves only deterministic requests (temperature 0 or a seed) by default: the answer is the one the
    provider gave to the identical request."""

    def __init__(self, deterministic_only: bool = True, unknown_temperature: str = "serve",
                 namespace: str = "") -> None:
        """``unknown_temperature``: ``serve`` (with a medium risk note) or ``skip`` requests whose
        sampling parameters were not recorded."""
        if unknown_temperature not in ("serve", "skip"):
            raise ValueError("response-cache: unknown_temperature must be 'serve' or 'skip'")
        self.deterministic_only = deterministic_only
        self.unknown_temperature = unknown_temperature
        self.namespace = namespace

    def apply(self, run: Run, ctx: PassContext) -> tuple[Run, list[LedgerRow]]:
        new = run.copy()
        seen: dict[str, dict[str, str]] = ctx.state.setdefault(self.name, {}).setdefault("seen", {})
        rows = []
        ordered = sorted(new.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id))
        for span in ordered:
            call = span.llm
            assert call is not None
            if span.status == "error" or keys.served_by(span.attributes):
                continue  # a failed call left nothing to serve; an already served one sent nothing
            det = is_deterministic(call.params)
            if self.deterministic_only and (det is False or (det is None and self.unknown_temperature == "skip")):
                continue
            key = call_key(call, self.namespace)
            origin = seen.get(key)
            if origin is None:
                # only a completed answer can be served later
                if call.output is not None or span.status == "ok":
                    seen[key] = {"run_id": new.run_id, "span_id": span.span_id}
                continue
            before = call.usage.copy()
            served = Usage()
            for f in ("input_tokens", "output_tokens"):
                served.set(f, 0, call.usage.source(f) or "estimated")
            call.usage = served
            span.set_attribute(keys.SERVED_BY, self.name)
            span.set_attribute(keys.CACHE_ORIGIN, origin)
            risk = "low: identical request at temperature 0 / fixed seed"
            if det is None:
                risk = "medium: sampling parameters not recorded; a repeat may have answered differently"
            where = "this run" if origin["run_id"] == new.run_id else f"run {origin['run_id']}"
            rows.append(LedgerRow(
                pass_name=self.name, span_id=span.span_id, model=call.model,
                change=f"served from response cache (same request as span {origin['span_id']} in {where})",
                evidence=self.evidence,
                input_tokens_before=before.input_tokens, input_tokens_after=0,
                output_tokens_before=before.output_tokens, output_tokens_after=0,
                risk=risk, details={"origin": origin, "key": key}))
        return new, rows


def repeated_requests(runs: Iterable[Run]) -> int:
    """How many calls repeat the full request of an earlier call (all runs in order; no filters)."""
    seen: set[str] = set()
    n = 0
    for run in runs:
        for span in sorted(run.llm_spans(), key=lambda s: (s.wall_start_ns, s.start_ns, s.span_id)):
            assert span.llm is not None
            k = call_key(span.llm)
            n += k in seen
            seen.add(k)
    return n


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


# -- LangChain --------------------------------------------------------------------------------------
_LC_TEMPERATURE = re.compile(r"""['"]temperature['"]\s*[,:]\s*([0-9.]+)""")
_LC_SEED = re.compile(r"""['"]seed['"]\s*[,:]\s*(\d+)""")


def _lc_params(llm_string: str) -> dict[str, Any]:
    """Sampling parameters as LangChain serialises them into ``llm_string``."""
    out: dict[str, Any] = {}
    t = _LC_TEMPERATURE.search(llm_string)
    if t:
        out["temperature"] = float(t.group(1))
    s = _LC_SEED.search(llm_string)
    if s:
        out["seed"] = int(s.group(1))
    return out


def _make_lc_cache_class() -> type:
    from langchain_core.caches import BaseCache
    from langchain_core.load import dumps, loads

    class TokprofLLMCache(BaseCache):
        """A LangChain ``BaseCache`` on a :class:`ResponseCache` (``set_llm_cache(TokprofLLMCache())``).

        LangChain calls ``update`` only after a successful generation, so errors are never stored."""

        def __init__(self, cache: ResponseCache | None = None, **options: Any) -> None:
            self.store = cache if cache is not None else ResponseCache(**options)

        def _key(self, prompt: str, llm_string: str) -> str:
            return request_digest(["langchain", self.store.namespace, prompt, llm_string])

        def lookup(self, prompt: str, llm_string: str) -> Any:
            if not self.store.cacheable(_lc_params(llm_string)):
                return None
            value = self.store.get(self._key(prompt, llm_string))
            if value is None:
                return None
            import warnings

            with warnings.catch_warnings():  # loads() is marked beta; what we load we wrote ourselves
                warnings.simplefilter("ignore")
                return [loads(g) for g in value]

        def update(self, prompt: str, llm_string: str, return_val: Sequence[Any]) -> None:
            if not self.store.cacheable(_lc_params(llm_string)):
                return
            self.store.set(self._key(prompt, llm_string), [dumps(g) for g in return_val])

        def clear(self, **kwargs: Any) -> None:
            self.store.clear()

    return TokprofLLMCache


def __getattr__(name: str) -> Any:
    # langchain-core is imported only when the LangChain cache is asked for.
    if name == "TokprofLLMCache":
        cls = _make_lc_cache_class()
        globals()["TokprofLLMCache"] = cls
        return cls
    raise AttributeError(name)


# -- SDK clients ------------------------------------------------------------------------------------
_REQUEST_FIELDS = ("messages", "tools", "system", "model")


def _response_type(provider: str) -> Any:
    """The SDK's response class for a provider — fixed here, never read from the cache (an entry naming a
    module would otherwise make the cache import it)."""
    if provider == "anthropic":
        from anthropic.types import Message

        return Message
    from openai.types.chat import ChatCompletion

    return ChatCompletion


SERVED_BY_CACHE = "response-cache"


class _CachedCreate:
    """Wraps one ``create`` method: a hit returns the stored response as the SDK's own type.

    Works for sync and async clients (``AsyncOpenAI``, ``AsyncAnthropic``): an async ``create`` gets an
    async wrapper."""

    def __init__(self, create: Any, cache: ResponseCache, provider: str, is_async: bool = False) -> None:
        self._create = create
        self._cache = cache
        self._provider = provider
        import inspect

        # the SDKs wrap their methods, which hides the coroutine function: the client class says it
        self._is_async = is_async or inspect.iscoroutinefunction(create)

    def _lookup(self, kwargs: dict[str, Any]) -> tuple[str | None, Any]:
        """(key to store under or None, cached response or None). Never raises."""
        try:
            messages = list(kwargs.get("messages") or [])
            if kwargs.get("system") is not None:  # Anthropic's system prompt is a separate field
                messages = [{"role": "system", "content": kwargs["system"]}, *messages]
            params = {k: v for k, v in kwargs.items() if k not in _REQUEST_FIELDS}
            if isinstance(kwargs.get("extra_body"), dict):  # sampling parameters an SDK has no argument for
                params.update(kwargs["extra_body"])
            if not self._cache.cacheable(params):
                return None, None
            key = self._cache.key(self._provider, kwargs.get("model"), messages, kwargs.get("tools"), params)
            hit = self._cache.get(key)
            if isinstance(hit, dict) and hit.get("provider") == self._provider and isinstance(
                    hit.get("response"), dict):
                return key, served_copy(_response_type(self._provider).model_validate(hit["response"]))
            return key, None
        except Exception as exc:  # the cache must never break the user's call
            internal_error("response_cache.lookup", exc)
            return None, None

    def _store(self, key: str | None, response: Any) -> None:
        if key is None:
            return
        try:
            self._cache.set(key, {"provider": self._provider, "response": response.model_dump(mode="json")})
        except Exception as exc:
            internal_error("response_cache.store", exc)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # positional calls are not part of the SDKs' API; streams are passed through and never stored
        if args or kwargs.get("stream"):
            return self._create(*args, **kwargs)
        if self._is_async:
            return self._acall(kwargs)
        key, hit = self._lookup(kwargs)
        if hit is not None:
            return hit
        response = self._create(**kwargs)  # errors propagate unchanged and store nothing
        self._store(key, response)
        return response

    async def _acall(self, kwargs: dict[str, Any]) -> Any:
        key, hit = self._lookup(kwargs)
        if hit is not None:
            return hit
        response = await self._create(**kwargs)
        self._store(key, response)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._create, name)


class _Proxy:
    def __init__(self, target: Any, overrides: dict[str, Any]) -> None:
        self._target = target
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._target, name)


def cached_client(client: Any, cache: ResponseCache | None = None, **options: Any) -> Any:
    """An OpenAI (``chat.completions.create``) or Anthropic (``messages.create``) client whose
    non-streaming deterministic requests are answered from ``cache`` when they repeat.

    Everything else on the client is the original object."""
    store = cache if cache is not None else ResponseCache(**options)
    module = type(client).__module__.split(".")[0]
    is_async = type(client).__name__.startswith("Async")
    if module == "anthropic" or hasattr(client, "messages") and not hasattr(client, "chat"):
        messages = client.messages
        create = _CachedCreate(messages.create, store, "anthropic", is_async)
        return _Proxy(client, {"messages": _Proxy(messages, {"create": create})})
    completions = client.chat.completions
    wrapped = _Proxy(completions, {"create": _CachedCreate(completions.create, store, "openai", is_async)})
    return _Proxy(client, {"chat": _Proxy(client.chat, {"completions": wrapped})})
