"""Live instrumentation: LangChain/LangGraph (automatic inside ``profile()``) and the OpenAI and Anthropic
SDKs (opt-in).

>>> from tokprof.profiler import instrument, uninstrument, profile
>>> instrument("openai")            # every chat.completions / responses call is recorded inside a profile
>>> uninstrument("openai")          # the SDK is exactly as it was
>>> with profile("agent", instrument=["anthropic"]):   # patched for the block only
...     ...

Importing this package registers its ``profile()`` enter/exit hooks (``profiler/__init__.py`` imports it),
so ``tokprof.profiler.hooks`` never imports an integration. Each SDK module is imported only when instrumented;
langchain-core on the first ``profile()`` (not by ``import profiler``: it takes most of a second).
A LangChain run gets the handler when langchain-core was importable at the time the profile was entered.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from tokprof.profiler import hooks
from tokprof.profiler.policy import internal_error
from tokprof.profiler.integrations import _sdk
from tokprof.profiler.integrations import auto as _auto
from tokprof.profiler.integrations.middleware import Middleware, add_middleware, remove_middleware
from tokprof.profiler.integrations.sdk_streams import end_open_streams

__all__ = [
    "instrument",
    "uninstrument",
    "instrumented",
    "SUPPORTED",
    "Middleware",
    "add_middleware",
    "remove_middleware",
]

SUPPORTED: dict[str, tuple[str, str]] = {
    "openai": ("tokprof.profiler.integrations.openai_completions", "pip install 'tokprof[openai]' (or: pip install openai)"),
    "anthropic": ("tokprof.profiler.integrations.anthropic", "pip install 'tokprof[anthropic]' (or: pip install anthropic)"),
    "litellm": ("tokprof.profiler.integrations.litellm", "pip install litellm"),
    "google-genai": ("tokprof.profiler.integrations.gemini", "pip install google-genai"),
    "openai-agents": ("tokprof.profiler.integrations.openai_agents", "pip install openai-agents"),
}
SUPPORTED.update({  # the HTTP-level fallback (http_fallback.py): one patch function per library
    "httpx": ("tokprof.profiler.integrations.http_fallback:patch_httpx", "pip install httpx"),
    "httpx2": ("tokprof.profiler.integrations.http_fallback:patch_httpx2", "pip install httpx2"),
    "requests": ("tokprof.profiler.integrations.http_requests:patch_requests", "pip install requests"),
})
"""SDK name -> (our patch module, or ``module:function``, how to install the SDK)."""
SUPPORTED.update({
    "dashscope": ("tokprof.profiler.integrations.dashscope_client", "pip install dashscope"),
    "zai-sdk": ("tokprof.profiler.integrations.zai", "pip install zai-sdk"),
    "volcengine-ark": ("tokprof.profiler.integrations.ark", "pip install 'volcengine-python-sdk[ark]'"),
})

_IMPORT_NAME = {**_auto.IMPORT_NAMES, **_auto.HTTP_IMPORT_NAMES}
"""SDK name -> its import name."""

_lock = threading.RLock()
_active: dict[str, list[_sdk.Patch]] = {}
"""SDK name -> the patches in force."""
_explicit: set[str] = set()
"""SDKs patched by an explicit :func:`instrument` call (they stay patched after profile blocks end)."""
_profile_refs: dict[str, int] = {}
"""SDK name -> number of active ``profile(instrument=[...])`` blocks relying on the patch."""


def _check(name: str) -> str:
    key = str(name).lower().strip()
    if key not in SUPPORTED:
        raise ValueError(f"tokprof cannot instrument {name!r}: supported SDKs are {sorted(SUPPORTED)}")
    return key


def _patch(key: str) -> bool:
    """Patch one SDK unless already patched; ``True`` when this call patched it. Caller holds the lock."""
    if key in _active:
        return False
    module_name, install = SUPPORTED[key]
    try:
        importlib.import_module(_IMPORT_NAME.get(key, key))
    except ImportError as exc:
        raise ImportError(f"tokprof.instrument({key!r}): the {key} SDK is not installed; {install}") from exc
    module_name, _, function = module_name.partition(":")
    _active[key] = getattr(importlib.import_module(module_name), function or "patch")()
    return True


def _unpatch(key: str) -> None:
    patches = _active.pop(key, None)
    if patches:
        _sdk.unpatch(patches)


def instrument(*names: str) -> list[str]:
    """Patch the named SDKs (``"openai"``, ``"anthropic"``) so their calls become ``llm`` spans inside a
    profile, until :func:`uninstrument`. Idempotent. Returns the names that this call newly patched.

    Raises ``ValueError`` for an unknown name and ``ImportError`` (saying what to install) when the SDK is
    not installed.
    """
    newly: list[str] = []
    with _lock:
        for name in names:
            key = _check(name)
            if _patch(key):
                newly.append(key)
            _explicit.add(key)
    return newly


def uninstrument(*names: str) -> None:
    """Undo the patching of the named SDKs (all of them when none is named), restoring the very objects
    that were patched. Explicit: it also unpatches SDKs that an active ``profile(instrument=...)`` uses."""
    with _lock:
        for name in names or tuple(_active):
            key = _check(name)
            _explicit.discard(key)
            _profile_refs.pop(key, None)
            _unpatch(key)


def instrumented() -> list[str]:
    """Names of the SDKs currently patched."""
    with _lock:
        return sorted(_active)


# ---------------------------------------------------------------------------------------------------
# profile() hooks
# ---------------------------------------------------------------------------------------------------
def _patch_for_auto(key: str) -> bool:
    with _lock:
        return _patch(key)


def _keep(key: str) -> bool:
    return key in _explicit or _profile_refs.get(key, 0) > 0


def _unpatch_for_auto(key: str) -> None:
    with _lock:
        if not _keep(key):
            _unpatch(key)


def _enter_instrument(p: Any) -> None:
    """Enter hook: the SDKs named in ``profile(instrument=[...])`` are imported and patched for the block;
    unless the profile says ``instrument=False`` (or ``TOKPROF_INSTRUMENT=0``), every supported SDK that is
    or gets imported is patched too (:mod:`.auto`)."""
    value = getattr(p, "instrument", True)
    names = [] if isinstance(value, bool) else list(value or [])
    auto_on = value is not False and not _auto.disabled_by_env()
    held: list[str] = []
    with _lock:
        for name in names:
            try:
                key = _check(name)
                _patch(key)
            except Exception as exc:  # an SDK missing must not stop the profile; say which and why
                # the reason is tokprof's own text (which SDKs exist, what to install), not user content:
                # it goes into the location, since internal-error lines never quote exception text
                internal_error(f"profile(instrument=[{name!r}]): {exc}", exc)
                continue
            _profile_refs[key] = _profile_refs.get(key, 0) + 1
            held.append(key)
        if auto_on:
            _auto.enter(_patch_for_auto, _unpatch_for_auto)
    p.extras["instrumented"] = held
    p.extras["instrument_auto"] = auto_on


def _exit_instrument(p: Any) -> None:
    """Release this block's hold; the last block out unpatches, unless instrument() was called explicitly
    (concurrent or nested blocks keep the patch while any of them runs)."""
    end_open_streams(p)  # first: a stream left open by the caller's exception is one of this run's calls
    _auto.warn_if_no_calls(p)
    held = p.extras.pop("instrumented", None) or []
    with _lock:
        for key in held:
            if key not in _profile_refs:  # uninstrument() was called inside the block: already undone
                continue
            _profile_refs[key] -= 1
            if _profile_refs[key] <= 0:
                del _profile_refs[key]
                if key not in _explicit:
                    _unpatch(key)
        if p.extras.pop("instrument_auto", False):
            _auto.exit_(_keep)


def _attach_langchain(p: Any) -> None:
    """Enter hook: attach the LangChain handler for the block. langchain-core is imported here, on the
    first profile, rather than by ``import profiler`` (it takes most of a second to import)."""
    if not getattr(p, "langchain", True):
        return
    try:
        from tokprof.profiler.integrations import langchain as _langchain
    except ImportError:  # langchain-core is not installed: nothing to attach
        return
    _langchain.attach(p)


def _detach_langchain(p: Any) -> None:
    if "langchain_token" not in p.extras:
        return
    from tokprof.profiler.integrations import langchain as _langchain

    _langchain.detach(p)


def _register() -> None:
    for enter, exit_ in ((_enter_instrument, _exit_instrument), (_attach_langchain, _detach_langchain)):
        hooks.on_profile_enter(enter)
        hooks.on_profile_exit(exit_)


_register()
