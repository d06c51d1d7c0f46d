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
    r"private[_-]?key|pwd|credentials?"
)
# Dict keys whose whole value is a secret. Any prefix (``openaiApiKey``, ``DB_PASSWORD``); numbers only
# for the strong names (a ``max_token`` of 4096 is not a credential, a ``token`` string is).
_SENSITIVE_KEY = re.compile(
    rf"(?i)^[a-z0-9_.\-]*(?:{_SECRET_NAMES}|authorization|proxy-authorization)$")
_WEAK_KEY = re.compile(r"(?i)^[a-z0-9_.\-]*token$")

_AWS_PREFIXES = "AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|AROA|APKA|ASCA"
_B64 = r"A-Za-z0-9+/"
_URLSAFE = r"A-Za-z0-9_\-"
# Start of a token: not inside a longer word ("risk-assessment-..." is not an OpenAI key), but right after
# an escaped newline/tab is (reprs and JSON text write a newline as backslash-n).
_B = r"(?:(?<![A-Za-z0-9_\-])|(?<=\\[nrt]))"

# Lower-case markers: every match of a pattern contains one of its markers (the AWS key ids have their own
# pre-check below: their markers are upper-case and prose is full of "asia").
_NAME_MARKERS = ("key", "secret", "passw", "token", "pwd", "credential")
_AWS_ID_HINT = re.compile(r"A(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA)[A-Z0-9]{16}")

# (kind, pattern, group to replace (0 = whole match), markers). Every match of a pattern contains one of
# its markers (compared lower-case), so a pattern is only run on text holding one: substring search is
# C-fast, and Python's regex engine is slow on long texts. Order matters: specific before generic.
# Base64 of the start of a prefixed key (``sk-``, ``sk-ant-``, ``ghp_``, ``AKIA``, ``hf_``, ``gsk_``,
# ``xai-``, ``AIza``, ``sk_live_``, ``github_pat_``): what ``base64(key)`` begins with.
_B64_KEY_STARTS = ("c2st", "Z2hwX", "Z2hvX", "Z2hzX", "QUtJQ", "QVNJQ", "aGZf", "Z3NrX", "eGFpL", "QUl6Y",
                   "c2tfbGl2ZV", "Z2l0aHViX3BhdF")

_BUILTIN: list[tuple[str, str, int, tuple[str, ...]]] = [
    # PEM private keys are found by a linear scanner (_redact_pem), not a regex: a lazy "up to END" scan
    # from every BEGIN is quadratic on text full of BEGIN headers and no END (issue #21 point 5).
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
    # Hugging Face user tokens hf_ + 34 letters (https://huggingface.co/docs/hub/security-tokens);
    # Groq gsk_ + 52 (https://console.groq.com/docs/api-keys); xAI xai- + 80 (https://docs.x.ai/docs)
    ("huggingface-token", _B + r"hf_[A-Za-z0-9]{30,}", 0, ("hf_",)),
    ("groq-key", _B + r"gsk_[A-Za-z0-9]{40,}", 0, ("gsk_",)),
    ("xai-key", _B + r"xai-[A-Za-z0-9]{40,}", 0, ("xai-",)),
    # Baidu Qianfan/ERNIE: "Bearer bce-v3/ALTAK-*********/614fb**********"
    # (https://cloud.baidu.com/doc/qianfan-api/s/3m9b5lqft); the ALTAK- access key also alone
    ("baidu-qianfan-key", r"(?i:bce-v3/)?ALTAK-[A-Za-z0-9]{10,}(?:/[0-9a-fA-F]{16,})?", 0, ("altak-",)),
    # Zhipu/GLM (open.bigmodel.cn): "<id>.<secret>", split on "." to sign a JWT
    # (https://open.bigmodel.cn/dev/api/http-call/http-auth)
    ("zhipu-key", _B + r"[0-9a-f]{32}\.[A-Za-z0-9]{16}(?![A-Za-z0-9])", 0, ("<hint:zhipu>",)),
    # Azure OpenAI keys: 32 hex digits, in the api-key header or an AZURE_*KEY variable
    # (https://learn.microsoft.com/azure/ai-services/openai/reference#authentication)
    ("azure-key", r"(?i:api-key|subscription-key|azure[a-z_\-]{0,30}key)[\"':=\s\\]{1,8}([0-9a-fA-F]{32})(?![0-9a-fA-F])",
     1, ("key",)),
    # Volcengine Ark/Doubao API keys are UUIDs: only next to an ark/doubao/volc key name
    # (https://www.volcengine.com/docs/82379/1399008)
    ("ark-key", r"(?i:ark|doubao|volc[a-z]{0,6})[a-z_\-]{0,20}(?i:key|token)[\"':=\s\\]{1,8}"
                r"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})", 1, ("key", "token")),
    ("slack-token", _B + r"xox[abposr]-[A-Za-z0-9\-]{10,}", 0, ("xox",)),
    ("slack-webhook", r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]{20,}", 0, ("hooks.slack",)),
    ("jwt", rf"{_B}eyJ[{_URLSAFE}]{{8,}}\.[{_URLSAFE}]{{8,}}\.[{_URLSAFE}]{{8,}}", 0, ("eyj",)),
    # Passwords in URLs and DSNs: scheme://user:PASSWORD@host (each part stops at its delimiter: linear)
    # (starts at the literal "://", so the engine only tries there)
    ("url-password", r"://[^\s/:@\"'<>]{0,256}:([^\s/@\"'<>]{1,256})@", 1, ("://",)),
    ("url-query-secret",
     r"(?i)[?&;](?:pwd|pass|password|passwd|token|access_token|api_key|apikey|key|secret|sig|signature)="
     r"([^&\s\"'#<>]{4,})", 1, ("pwd=", "pass=", "token=", "key=", "secret=", "sig=", "signature=", "passwd=")),
    ("base64-key", _B + r"(?:" + "|".join(_B64_KEY_STARTS) + r")[A-Za-z0-9+/]{20,}={0,2}", 0,
     tuple(m.lower() for m in _B64_KEY_STARTS)),
    # A bearer token is anything up to the next space or quote, as long as it is not a plain word
    # ("the bearer certificate" stays): it must hold a digit or a symbol.
    ("bearer-token", r"(?i:bearer)\s+(?=[^\s\"'\\,;]*[0-9+/=_\-.~&$!@#%^*])([^\s\"'\\,;]{8,})", 1, ("bearer",)),
    ("authorization-header",
     r"(?i:authorization)[\"':=\s\\]{1,6}(?i:basic|token|digest)\s+([A-Za-z0-9\-._~+/]{6,}=*)", 1,
     ("auth",)),
    ("credential", rf"(?i:{_SECRET_NAMES}|token)[\"']?\\?[\"']?\s*[:=]\s*\\?[\"']?(?![0-9]+\b)([^\s\"',;\\}}{{\[\]]{{8,}})", 1,
     _NAME_MARKERS),
]

_HINTS = {"<hint:zhipu>": re.compile(r"[0-9a-f]{32}\.[A-Za-z0-9]{16}")}
"""Patterns without a literal marker: a cheap regex hint instead (no nested quantifier: linear)."""
_ALL_MARKERS: tuple[str, ...] = tuple(sorted({m for *_, markers in _BUILTIN for m in markers
                                              if m not in _HINTS} | {"private key"}))


def _marker_hit(m: str, text: str, low: str) -> bool:
    hint = _HINTS.get(m)
    if hint is not None:
        return "." in text and hint.search(text) is not None
    return m in low


def _markers_in(text: str, low: str) -> bool:
    for m in _ALL_MARKERS:
        if m in low:
            return True
    if "." in text and _HINTS["<hint:zhipu>"].search(text) is not None:
        return True
    return "A" in text and _AWS_ID_HINT.search(text) is not None


_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s\\:.,\-…]*")


def _redact_pem(text: str) -> str:
    """Every PEM private key (``BEGIN … PRIVATE KEY`` to its ``END``, or to the end of the key-like text
    after a header cut short) replaced. One pass, left to right: each character is looked at a bounded
    number of times whatever the number of headers (the search for an END resumes where it stopped and
    is not repeated once there is none)."""
    label = REDACTED.format(kind="pem-private-key")
    out: list[str] = []
    pos = 0
    end_search_from = 0
    end_match: re.Match[str] | None = None
    no_more_end = False
    while True:
        b = _PEM_BEGIN.search(text, pos)
        if b is None:
            break
        out.append(text[pos:b.start()])
        if not no_more_end and (end_match is None or end_match.start() < b.end()):
            end_match = _PEM_END.search(text, max(b.end(), end_search_from))
            if end_match is None:
                no_more_end = True
            else:
                end_search_from = end_match.end()
        if end_match is not None and not no_more_end and end_match.start() >= b.end():
            pos = end_match.end()
        else:
            body = _PEM_BODY.match(text, b.end())
            pos = body.end() if body is not None else b.end()
        out.append(label)
    out.append(text[pos:])
    return "".join(out)


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
    if "private key" in low:
        text = _redact_pem(text)
    for kind, pattern, group, markers in _COMPILED:
        if any(_marker_hit(m, text, low) for m in markers) if markers else _AWS_ID_HINT.search(text) is not None:
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
            if isinstance(k, str) and ((isinstance(v, (str, int)) and not isinstance(v, bool) and v != ""
                                        and _SENSITIVE_KEY.match(k))
                                       or (isinstance(v, str) and len(v) >= 8 and _WEAK_KEY.match(k))):
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
                # tool definitions too: descriptions and defaults hold keys as often as prompts do
                llm.tools = redact_obj(sp.llm.tools) if sp.llm.tools else sp.llm.tools
                n.llm = llm
            spans.append(n)
        new = _copy.copy(run)
        new.spans = spans
        new.name = redact_text(run.name)
        new.tags = redact_obj(run.tags)
        new.metadata = redact_obj(run.metadata)
        out.append(new)
    return out
