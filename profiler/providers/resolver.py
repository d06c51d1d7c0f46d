"""Model identity: one resolver from the model names seen in real traffic to the price table's names.

Traffic names a model in many ways: dated or versioned snapshots (``gpt-4.1-2025-04-14``,
``claude-sonnet-4-5-20250929``, Volcengine Ark's ``doubao-seed-1-6-250615``), router prefixes
(``anthropic/claude-sonnet-4.5``, ``moonshotai/Kimi-K2-Instruct``, Bedrock ``us.anthropic.…-v1:0``),
case and separator variants (``Claude_Sonnet_4.5``), and endpoint ids that say nothing about the model
(Ark ``ep-20250615-abcde``). :func:`candidates` lists the names to try, in order; a user alias map
(:func:`set_model_alias`, or a JSON file ``{"aliases": {"ep-…": "doubao-seed-1.6"}}`` named by
``$TOKPROF_MODEL_ALIASES``) maps endpoint ids and in-house names first.

A name that resolves to nothing gets a "did you mean" suggestion (:func:`suggest`); its cost is unknown.

Hosts of other vendors' open-weight models (Groq, Together, Fireworks) price the same model differently, and
send it under the vendor's own id (``openai/gpt-oss-20b`` on Groq is not OpenAI's price). Their price rows are
keyed ``host/<id as the host sends it>`` (``groq/openai/gpt-oss-20b``); :func:`host_label` names the host of
a call's provider label (litellm's ``together_ai`` is ``together``), and a model written with its host in
front (``together_ai/meta-llama/...``) is also tried as ``together/meta-llama/...``. Which row a *call*
resolves to, given its provider, is :func:`tokprof.profiler.providers.prices.priced_model`.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import threading
import warnings
from pathlib import Path
from typing import Callable, Iterable

ALIASES_ENV = "TOKPROF_MODEL_ALIASES"

_lock = threading.RLock()
_user_aliases: dict[str, str] = {}
_env_loaded = False

_PREFIX = re.compile(r"^(?:[\w.-]+/)+")
_BEDROCK = re.compile(r"^(?:[a-z]{2}\.)?(?:anthropic|openai|meta|amazon|mistral|cohere|deepseek|qwen)\.")
_SUFFIXES = [
    re.compile(r"-v\d+(?::\d+)?$"),            # bedrock "-v2:0"
    re.compile(r"@\d{8}$"),                     # vertex "@20241022"
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),         # openai "-2025-04-14"
    re.compile(r"-\d{8}$"),                     # anthropic "-20250929"
    re.compile(r"-\d{6}$"),                     # volcengine ark "-250615" (YYMMDD)
    re.compile(r"-\d{4}$"),                     # "-0125", "-0613", "-0905"
    re.compile(r"-(?:latest|preview|exp)$"),
]
# "4.5" and "4-5", "1.6" and "1-6" name the same version in different catalogues
_DOTTED = re.compile(r"(?<=\d)\.(?=\d)")
_DASHED = re.compile(r"(?<=[a-z-]\d)-(?=\d(?:$|[^\d]))")


HOST_LABELS: dict[str, str] = {
    "together_ai": "together", "togetherai": "together", "together": "together",
    "fireworks_ai": "fireworks", "fireworksai": "fireworks", "fireworks": "fireworks",
    "groq": "groq", "ollama": "ollama", "ollama_chat": "ollama",
}
"""Provider labels (tokprof's http routes, litellm's ``custom_llm_provider`` names) -> the host label its
price rows are keyed under. Any other label is used as written (lower case)."""

_HOST_PATHS = (("accounts/fireworks/", "fireworks"),)
"""Model ids whose path names their host (Fireworks' ``accounts/fireworks/models/...``)."""

LOCAL_HOSTS = frozenset({"ollama"})
"""Hosts that serve models on the user's own machine: no per-token price exists, so a call there is priced
only by a row the user adds for it (``ollama/<tag>``), never by a hosted provider's row of the same name."""


def host_label(provider: str | None) -> str | None:
    """The host label of a call's provider label (``together_ai`` -> ``together``), ``None`` without one."""
    if not provider:
        return None
    p = provider.strip().lower()
    return HOST_LABELS.get(p, p) or None


def is_local(provider: str | None) -> bool:
    """Whether ``provider`` serves models locally (Ollama): see :data:`LOCAL_HOSTS`."""
    return host_label(provider) in LOCAL_HOSTS


class AliasFileError(ValueError):
    """The model alias file is malformed."""


def set_model_alias(alias: str, model: str) -> None:
    """Resolve ``alias`` (an endpoint id such as ``ep-20250615-abcde``, or any in-house name) as ``model``."""
    with _lock:
        _user_aliases[alias.strip().lower()] = model.strip().lower()
    _changed()


def load_model_aliases(path: str | Path) -> dict[str, str]:
    """Load ``{"aliases": {alias: model}}`` (or a plain ``{alias: model}`` object) and apply it."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: model alias file not found") from None
    except json.JSONDecodeError as exc:
        raise AliasFileError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    table = doc.get("aliases", doc) if isinstance(doc, dict) else None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise AliasFileError(f"{p}: expected {{\"aliases\": {{\"ep-…\": \"doubao-seed-1.6\"}}}}")
    for alias, model in table.items():
        set_model_alias(alias, model)
    return dict(table)


def reset_model_aliases() -> None:
    """Forget user aliases (tests); ``$TOKPROF_MODEL_ALIASES`` is read again on next use."""
    global _env_loaded
    with _lock:
        _user_aliases.clear()
        _env_loaded = False
    _changed()


def user_aliases() -> dict[str, str]:
    """The user's alias map (loading ``$TOKPROF_MODEL_ALIASES`` once)."""
    global _env_loaded
    if not _env_loaded:
        with _lock:
            _env_loaded = True
        path = os.environ.get(ALIASES_ENV)
        if path:
            try:
                load_model_aliases(path)
            except Exception as exc:  # noqa: BLE001 - a bad alias file must not break an agent run
                warnings.warn(f"tokprof: could not load {ALIASES_ENV}={path!r}: {exc}", UserWarning, stacklevel=2)
    return _user_aliases


_listeners: list[Callable[[], None]] = []


def on_change(fn: Callable[[], None]) -> None:
    """Call ``fn`` when the alias map changes (the price table drops its resolution cache)."""
    _listeners.append(fn)


def _changed() -> None:
    for fn in _listeners:
        fn()


def candidates(model: str) -> list[str]:
    """Names to look ``model`` up by, most specific first (see the module docstring)."""
    m = model.strip().lower()
    out = [m]
    aliases = user_aliases()
    if m in aliases:
        out.insert(0, aliases[m])
    for path, host in _HOST_PATHS:
        if m.startswith(path):
            out.append(f"{host}/{m}")  # the id names its host: that host's row, not the vendor's
    head, sep, rest = m.partition("/")
    if sep and rest and HOST_LABELS.get(head, head) != head:
        out.append(f"{HOST_LABELS[head]}/{rest}")  # litellm's "together_ai/..." is the "together/..." row
    m = _PREFIX.sub("", m)
    m = _BEDROCK.sub("", m)
    m = m.replace("_", "-").replace(" ", "-")
    out.append(m)
    if m in aliases:
        out.append(aliases[m])
    # strip snapshot suffixes one at a time, trying the name after each
    changed = True
    while changed:
        changed = False
        for pat in _SUFFIXES:
            new = pat.sub("", m)
            if new != m and new:
                m = new
                out.append(m)
                changed = True
    for name in list(out):
        out.extend((_DOTTED.sub("-", name), _DASHED.sub(".", name)))
    seen: set[str] = set()
    return [c for c in out if c and not (c in seen or seen.add(c))]  # type: ignore[func-returns-value]


def resolve(model: str | None, lookup: Callable[[str], str | None]) -> str | None:
    """The first candidate of ``model`` that ``lookup`` (table name or alias -> table key) knows."""
    if not model:
        return None
    for cand in candidates(model):
        key = lookup(cand)
        if key is not None:
            return key
    return None


def suggest(model: str, known: Iterable[str], n: int = 3) -> list[str]:
    """Known names close to ``model`` ("did you mean …"), best first."""
    bare = candidates(model)[-1] if model else ""
    return difflib.get_close_matches(bare, sorted(set(known)), n=n, cutoff=0.6)
