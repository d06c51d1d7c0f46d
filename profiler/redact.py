"""Secret redaction: API keys, tokens and private keys are replaced before anything is written to disk.

A profiler records prompts, tool outputs, arguments and error messages, and agents pass credentials
around in all of them (an ``Authorization`` header in a tool's HTTP log, an ``.env`` file a coding agent
read, a key pasted into a prompt). Run files and reports therefore go through :func:`redact_obj` /
:func:`redact_text` by default: every match becomes ``[REDACTED:<kind>]``.

What is recognised (syntax of the real credentials, so real keys are caught and prose is not):

* OpenAI ``sk-...`` / ``sk-proj-...`` / ``sk-svcacct-...``, Anthropic ``sk-ant-...``
* AWS access key ids (``AKIA...``, ``ASIA...`` and the other 4-letter prefixes) and secret access keys
  written next to their name (``aws_secret_access_key = ...``)
* Google API keys ``AIza...`` and OAuth access tokens ``ya29....``
* GitHub ``ghp_`` / ``gho_`` / ``ghu_`` / ``ghs_`` / ``ghr_`` tokens and ``github_pat_...``
* Slack ``xox[abposr]-...`` tokens and incoming-webhook URLs; Stripe ``sk_live_`` / ``rk_live_`` / ``*_test_``
* ``Bearer <token>`` and ``Authorization: Basic|Token ...`` headers; JSON Web Tokens (``eyJ...``)
* PEM private keys (``-----BEGIN ... PRIVATE KEY-----`` ... ``END``, also when cut short)
* ``api_key=...``, ``password: ...``, ``secret=...``, ``access_token=...`` style assignments, and the value
  of any dict key with such a name
* user patterns: :func:`add_pattern`, or ``$TOKPROF_REDACT_PATTERNS`` (one regular expression per line)

``TOKPROF_REDACT=0`` turns redaction off (for debugging with fake keys only).

Who calls it: :class:`tokprof.profiler.store.RunWriter` (streamed runs and :func:`~tokprof.profiler.store.save_run`) on every
line it writes, so anything loaded from a run file is already redacted. Code that renders or exports an
*in-memory* run (reports of a live run, OTLP export) should pass payload text through :func:`redact_text`
or whole records through :func:`redact_obj` before writing it.

Cost: the run writer first runs :func:`may_contain_secret` (C-level substring searches for the few literal
markers the patterns need) on the JSON line it is about to write, and redacts structurally only when one
hits, so a run without secrets pays a lower-casing and a few substring scans per written line, and nothing
on the traced call. Each pattern only runs on text holding one of its own markers.
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Iterable

from tokprof.profiler.policy import internal_error
from tokprof.profiler.model import Span as _Span

if TYPE_CHECKING:  # pragma: no cover
    from tokprof.profiler.model import Run

__all__ = [
    "REDACTED",
    "redact_text",
    "redact_obj",
    "may_contain_secret",
    "add_pattern",
    "clear_patterns",
    "enabled",
    "ENV_DISABLE",
    "ENV_PATTERNS",
]

REDACTED = "[REDACTED:{kind}]"
ENV_DISABLE = "TOKPROF_REDACT"
ENV_PATTERNS = "TOKPROF_REDACT_PATTERNS"

# Names of fields that hold credentials. Used three ways: as a marker for the fast pre-check, in the
# ``name = value`` text pattern, and for dict keys whose whole value is a secret.
_SECRET_NAMES = (
    r"api[_-]?key|apikey|x-api-key|secret[_-]?access[_-]?key|client[_-]?secret|secret|"
    r"passw(?:or)?d|access[_-]?token|auth[_-]?token|refresh[_-]?token|id[_-]?token|session[_-]?token|"
    r"private[_-]?key"
)
_SENSITIVE_KEY = re.compile(rf"(?i)^(?:[a-z0-9_.-]*[_.-])?(?:{_SECRET_NAMES}|authorization|proxy-authorization)$")

_AWS_PREFIXES = "AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA"
_B64 = r"A-Za-z0-9+/"
_URLSAFE = r"A-Za-z0-9_\-"
# Start of a token: not inside a longer word ("risk-assessment-..." is not an OpenAI key), but right after
# an escaped newline/tab is (reprs and JSON text write a newline as backslash-n).
_B = r"(?:(?<![A-Za-z0-9_\-])|(?<=\\[nrt]))"

# Lower-case markers: every match of a pattern contains one of its markers (the AWS key ids have their own
# pre-check below: their markers are upper-case and prose is full of "asia").
_NAME_MARKERS = ("key", "secret", "passw", "token")
_AWS_ID_HINT = re.compile(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA)[A-Z0-9]{16}")

# (kind, pattern, group to replace (0 = whole match), markers). Every match of a pattern contains one of
# its markers (compared lower-case), so a pattern is only run on text holding one: substring search is
# C-fast, and Python's regex engine is slow on long texts. Order matters: specific before generic.
_BUILTIN: list[tuple[str, str, int, tuple[str, ...]]] = [
    ("pem-private-key",
     r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
     r"(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\:.,\-…]*)", 0, ("key",)),
    ("anthropic-key", rf"{_B}sk-ant-[{_URLSAFE}]{{20,}}", 0, ("sk-ant-",)),
    ("openai-key", rf"{_B}sk-(?:proj-|svcacct-|admin-|None-)?[{_URLSAFE}]{{20,}}", 0, ("sk-",)),
    ("stripe-key", _B + r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", 0, ("k_live_", "k_test_")),
    ("aws-access-key-id", rf"{_B}(?:{_AWS_PREFIXES})[A-Z0-9]{{16}}(?![A-Z0-9])", 0, ()),
    ("aws-secret-key",
     rf"(?i:aws_?secret_?(?:access_?)?key|secret_?access_?key)[\W_]{{0,6}}([{_B64}]{{40}})(?![{_B64}])",
     1, ("secret",)),
    ("google-api-key", rf"{_B}AIza[{_URLSAFE}]{{35}}", 0, ("aiza",)),
    ("google-oauth-token", rf"ya29\.[{_URLSAFE}]{{20,}}", 0, ("ya29.",)),
    ("github-token", _B + r"gh[pousr]_[A-Za-z0-9]{36,}", 0, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
    ("github-token", r"github_pat_[A-Za-z0-9_]{22,}", 0, ("github_pat_",)),
    ("slack-token", _B + r"xox[abposr]-[A-Za-z0-9\-]{10,}", 0, ("xox",)),
    ("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}", 0, ("hooks.slack",)),
    ("jwt", rf"{_B}eyJ[{_URLSAFE}]{{8,}}\.[{_URLSAFE}]{{8,}}\.[{_URLSAFE}]{{8,}}", 0, ("eyj",)),
    # A bearer token is anything up to the next space or quote, as long as it is not a plain word
    # ("the bearer certificate" stays): it must hold a digit or a symbol.
    ("bearer-token", r"(?i:bearer)\s+(?=[^\s\"'\\,;]*[0-9+/=_\-.~&$!@#%^*])([^\s\"'\\,;]{8,})", 1, ("bearer",)),
    ("authorization-header",
     r"(?i:authorization)[\"':=\s\\]{1,6}(?i:basic|token|digest)\s+([A-Za-z0-9\-._~+/]{6,}=*)", 1,
     ("auth",)),
    ("credential", rf"(?i:{_SECRET_NAMES})[\"']?\\?[\"']?\s*[:=]\s*\\?[\"']?([^\s\"',;\\}}{{\[\]]{{8,}})", 1,
     _NAME_MARKERS),
]

_ALL_MARKERS: tuple[str, ...] = tuple(sorted({m for *_, markers in _BUILTIN for m in markers}))


def _markers_in(text: str, low: str) -> bool:
    for m in _ALL_MARKERS:
        if m in low:
            return True
    return "A" in text and _AWS_ID_HINT.search(text) is not None


_lock = threading.Lock()
_user_patterns: list[tuple[str, re.Pattern[str], int]] = []
_env_cache: tuple[str, list[tuple[str, re.Pattern[str], int]]] = ("", [])
_COMPILED = [(k, re.compile(p), g, markers) for k, p, g, markers in _BUILTIN]


def enabled() -> bool:
    """Redaction is on unless ``$TOKPROF_REDACT`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get(ENV_DISABLE, "1").strip().lower() not in ("0", "false", "no", "off")


def add_pattern(pattern: str | re.Pattern[str], name: str = "custom", group: int = 0) -> None:
    """Redact every match of ``pattern`` too (``group``: redact only that group, keep the rest).

    A pattern that is not a valid regular expression raises :class:`re.error` here, not while writing.
    """
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    with _lock:
        _user_patterns.append((name, compiled, group))


def clear_patterns() -> None:
    """Forget the patterns added with :func:`add_pattern` (the built-in ones always apply)."""
    with _lock:
        _user_patterns.clear()


def _env_patterns() -> list[tuple[str, re.Pattern[str], int]]:
    """Patterns from ``$TOKPROF_REDACT_PATTERNS`` (one per line; a JSON list of strings also works),
    compiled once per distinct value. An invalid one is reported once and skipped."""
    global _env_cache
    raw = os.environ.get(ENV_PATTERNS, "")
    if raw == _env_cache[0]:
        return _env_cache[1]
    items: Iterable[str]
    stripped = raw.strip()
    if stripped.startswith("["):
        try:
            items = [str(x) for x in json.loads(stripped)]
        except ValueError:
            items = stripped.splitlines()
    else:
        items = stripped.splitlines()
    out = []
    for item in items:
        if not item.strip():
            continue
        try:
            out.append(("custom", re.compile(item.strip()), 0))
        except re.error as exc:
            internal_error(f"{ENV_PATTERNS}: invalid pattern {item!r}", exc)
    _env_cache = (raw, out)
    return out


def _extra_patterns() -> list[tuple[str, re.Pattern[str], int]]:
    env = _env_patterns()
    return (_user_patterns + env) if env else _user_patterns


def may_contain_secret(text: str) -> bool:
    """Cheap pre-check: ``False`` means :func:`redact_text` would leave ``text`` unchanged.

    Works on JSON-encoded text too (the markers contain nothing JSON escapes). User patterns cannot be
    pre-checked, so with any registered this is always ``True``.
    """
    if not enabled():
        return False
    if _user_patterns or os.environ.get(ENV_PATTERNS):
        return True
    return _markers_in(text, text.lower())


def _sub(kind: str, pattern: re.Pattern[str], group: int, text: str) -> str:
    label = REDACTED.format(kind=kind)
    if group == 0:
        return pattern.sub(label, text)

    def repl(m: re.Match[str]) -> str:
        whole = m.group(0)
        start, end = m.start(group) - m.start(0), m.end(group) - m.start(0)
        return whole[:start] + label + whole[end:]

    return pattern.sub(repl, text)


def redact_text(text: str) -> str:
    """``text`` with every recognised secret replaced by ``[REDACTED:<kind>]`` (unchanged when off)."""
    if not isinstance(text, str) or not text or not enabled():
        return text
    return _redact_text(text, _extra_patterns())


def _redact_text(text: str, extra: list[tuple[str, re.Pattern[str], int]]) -> str:
    low = text.lower()
    if not extra and not _markers_in(text, low):
        return text  # no pattern's marker is there: no pattern can match (the common case)
    for kind, pattern, group, markers in _COMPILED:
        if any(m in low for m in markers) if markers else _AWS_ID_HINT.search(text) is not None:
            text = _sub(kind, pattern, group, text)
    for kind, pattern, group in extra:
        text = _sub(kind, pattern, group, text)
    return text


def redact_obj(obj: Any, _depth: int = 0) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, strings) with secrets redacted in every string, and the
    whole value of any key named like a credential (``api_key``, ``Authorization``, ``password``...)
    replaced. Other values are returned as they are. Very deep structures are cut at depth 200 rather
    than overflow the stack."""
    if not enabled():
        return obj
    return _redact_obj(obj, _extra_patterns(), _depth)


def _redact_obj(obj: Any, extra: list[tuple[str, re.Pattern[str], int]], depth: int) -> Any:
    """:func:`redact_obj` with the switch and the user patterns read once for the whole structure."""
    if isinstance(obj, str):
        return _redact_text(obj, extra) if obj else obj
    if depth > 200:
        return "[REDACTED:too-deep]"
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and isinstance(v, (str, int)) and not isinstance(v, bool) and v != "" \
                    and _SENSITIVE_KEY.match(k):
                out[k] = REDACTED.format(kind="credential")
            else:
                out[_redact_text(k, extra) if isinstance(k, str) and k else k] = _redact_obj(v, extra, depth + 1)
        return out
    if isinstance(obj, list):
        return [_redact_obj(v, extra, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_redact_obj(v, extra, depth + 1) for v in obj)
    return obj


# ---------------------------------------------------------------------------------------------------
# whole runs (reports and exports are files people share)
# ---------------------------------------------------------------------------------------------------
def redact_runs(runs: "Iterable[Run]") -> "list[Run]":
    """Copies of ``runs`` with every secret redacted (:mod:`tokprof.profiler.redact`) in names, tags, metadata,
    attributes, errors, messages and outputs. Messages shared by the calls of a growing history are
    redacted once (memo by identity), so this stays linear in the run's unique content."""
    import copy as _copy

    if not enabled():
        return list(runs)
    out = []
    memo: dict[int, Any] = {}

    def message(m: Any) -> Any:
        key = id(m)
        hit = memo.get(key)
        if hit is None or hit[0] is not m:
            hit = memo[key] = (m, redact_obj(m))
        return hit[1]

    for run in runs:
        spans = []
        for sp in run.spans:
            n = _Span(sp.span_id, sp.parent_id, sp.run_id, sp.kind, redact_text(sp.name), sp.start_ns,
                     sp.wall_start_ns, sp.end_ns, sp.status, redact_text(sp.error) if sp.error else sp.error,
                     redact_obj(sp.attributes) if sp.attributes else sp.attributes,
                     redact_obj(sp.tags) if sp.tags else sp.tags, None)
            if sp.llm is not None:
                llm = _copy.copy(sp.llm)
                llm.messages = [message(m) for m in sp.llm.messages]
                llm.output = redact_obj(sp.llm.output) if sp.llm.output is not None else None
                llm.params = redact_obj(sp.llm.params) if sp.llm.params else sp.llm.params
                n.llm = llm
            spans.append(n)
        new = _copy.copy(run)
        new.spans = spans
        new.name = redact_text(run.name)
        new.tags = redact_obj(run.tags)
        new.metadata = redact_obj(run.metadata)
        out.append(new)
    return out
