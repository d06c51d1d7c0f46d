"""No silent zero: inside ``profile()`` the LLM SDKs in use are instrumented by default.

While at least one profile with automatic instrumentation is open:

* every supported SDK already imported is patched when the profile enters;
* an SDK imported *inside* the block (``tokprof run script.py`` imports the script's SDKs after the profile
  opened) is patched as soon as its import finishes, by a small ``sys.meta_path`` finder that only watches
  the SDKs' top-level module names;
* when the last such profile exits, what was patched automatically is restored (SDKs instrumented
  explicitly with :func:`tokprof.profiler.instrument` stay patched).

Opt out with ``profile(instrument=False)`` or ``TOKPROF_INSTRUMENT=0``. A profile that ends with no LLM
call while an LLM SDK is imported logs one warning saying what to do.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
from typing import Any, Callable, Sequence

log = logging.getLogger("tokprof")

IMPORT_NAMES: dict[str, str] = {"openai": "openai", "anthropic": "anthropic", "litellm": "litellm",
                                "google-genai": "google.genai", "openai-agents": "agents"}
"""SDK name (as ``instrument()`` takes it) -> the module whose import makes it patchable."""
IMPORT_NAMES.update({"dashscope": "dashscope", "zai-sdk": "zai", "volcengine-ark": "volcenginesdkarkruntime"})
"""The native SDKs of Chinese providers (Qwen, GLM, Doubao)."""
HTTP_IMPORT_NAMES: dict[str, str] = {"httpx": "httpx", "httpx2": "httpx2", "requests": "requests"}
"""HTTP client libraries hooked by the generic fallback (``http_fallback.py``: LLM calls of client libraries
without an SDK patch); patched like the SDKs, but not named in the no-LLM-call warning (importing them says
nothing about calling a model). ``TOKPROF_HTTP_FALLBACK=0`` leaves them alone."""

_lock = threading.RLock()
_open_profiles = 0
_patched_here: set[str] = set()
"""SDKs this module patched (and so restores)."""
_patch_fn: Callable[[str], bool] | None = None
_unpatch_fn: Callable[[str], None] | None = None


def disabled_by_env() -> bool:
    return os.environ.get("TOKPROF_INSTRUMENT", "").strip().lower() in ("0", "false", "no", "off")


def imported_sdks() -> list[str]:
    """Supported SDKs whose module is imported in this process."""
    return [key for key, mod in IMPORT_NAMES.items() if mod in sys.modules]


def http_fallback_disabled() -> bool:
    return os.environ.get("TOKPROF_HTTP_FALLBACK", "").strip().lower() in ("0", "false", "no", "off")


def imported_http() -> list[str]:
    """Hooked HTTP libraries imported in this process (none when the fallback is switched off)."""
    if http_fallback_disabled():
        return []
    return [key for key, mod in HTTP_IMPORT_NAMES.items() if mod in sys.modules]


def _watched(fullname: str) -> str | None:
    """The key of a watched module (an SDK, or an HTTP library while the fallback is on)."""
    key = next((k for k, mod in IMPORT_NAMES.items() if mod == fullname), None)
    if key is None and not http_fallback_disabled():
        key = next((k for k, mod in HTTP_IMPORT_NAMES.items() if mod == fullname), None)
    return key


def _try_patch(key: str) -> None:
    assert _patch_fn is not None
    try:
        if _patch_fn(key):
            _patched_here.add(key)
    except Exception as exc:  # an SDK version we cannot patch must not stop the user's import or profile
        from tokprof.profiler.hooks import internal_error

        internal_error(f"automatic instrumentation of {key}", exc)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches a watched SDK right after its module finishes importing."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: Any = None) -> Any:
        key = _watched(fullname)
        if key is None:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        loader = getattr(spec, "loader", None)
        exec_module = getattr(loader, "exec_module", None)
        if spec is None or exec_module is None:
            return None

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            sys.modules[fullname] = module  # the patch imports the SDK's submodules through it
            with _lock:
                if _open_profiles > 0:
                    _try_patch(key)

        loader.exec_module = exec_and_patch  # type: ignore[union-attr]
        return spec


_finder = _Finder()


def enter(patch: Callable[[str], bool], unpatch: Callable[[str], None]) -> None:
    """A profile with automatic instrumentation opens."""
    global _open_profiles, _patch_fn, _unpatch_fn
    with _lock:
        _patch_fn, _unpatch_fn = patch, unpatch
        _open_profiles += 1
        for key in imported_sdks() + imported_http():
            _try_patch(key)
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def exit_(keep: Callable[[str], bool]) -> None:
    """A profile with automatic instrumentation closes; the last one restores what was patched here
    (except SDKs ``keep`` says are still wanted: explicitly instrumented, or held by a listed profile)."""
    global _open_profiles
    with _lock:
        _open_profiles = max(0, _open_profiles - 1)
        if _open_profiles:
            return
        if _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
        for key in sorted(_patched_here):
            if not keep(key) and _unpatch_fn is not None:
                _unpatch_fn(key)
        _patched_here.clear()


def warn_if_no_calls(p: Any) -> None:
    """One warning for a profile that saw no LLM call while an LLM SDK is imported."""
    try:
        if not getattr(p, "keep_in_memory", True):
            return
        if any(s.kind == "llm" for s in p.run.spans):
            return
        sdks = imported_sdks()
        if not sdks:
            return
        how = ("it was opened with instrument=False or TOKPROF_INSTRUMENT=0: remove that"
               if p.instrument is False or disabled_by_env() else
               "call the model through a supported path (openai, anthropic, google-genai, litellm, LangChain), "
               "or record the call with tokprof.profiler.record_llm_call(...)")
        p.run.metadata["no_llm_calls_warning"] = True
        log.warning("tokprof: profile %r recorded 0 LLM calls although %s is imported, so its cost shows as 0. "
                    "If the code called a model, %s.", p.run.name, ", ".join(sdks), how)
    except Exception:  # a warning must never break the profile's exit
        pass
