"""Syntactically valid *fake* credentials, one per format tokprof must redact (tests only).

Generated from a fixed seed at import time so no real-looking key sits in the repository as a literal
(secret scanners would flag it) and every run of the suite uses the same values.
"""

from __future__ import annotations

import base64
import json
import random
import string

_R = random.Random(20261122)
_ALNUM = string.ascii_letters + string.digits
_UPPER = string.ascii_uppercase + string.digits
_URLSAFE = _ALNUM + "-_"
_B64 = _ALNUM + "+/"


def _rs(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


def _b64url(d: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def _pem(kind: str, lines: int, width: int) -> str:
    body = "\n".join(_rs(width, _B64) for _ in range(lines))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----"


CUSTOM_PATTERN = r"ACME-[A-Z0-9]{24}"
"""A user-supplied pattern (an in-house token format) registered by the tests."""

SECRETS: dict[str, str] = {
    "openai-legacy": "sk-" + _rs(48),
    "openai-project": "sk-proj-" + _rs(120, _URLSAFE),
    "openai-service-account": "sk-svcacct-" + _rs(64, _URLSAFE),
    "anthropic-api": "sk-ant-api03-" + _rs(93, _URLSAFE) + "AA",
    "anthropic-admin": "sk-ant-admin01-" + _rs(80, _URLSAFE),
    "aws-access-key-id": "AKIA" + _rs(16, _UPPER),
    "aws-session-key-id": "ASIA" + _rs(16, _UPPER),
    "aws-secret-access-key": _rs(40, _B64),
    "google-api-key": "AIza" + _rs(35, _URLSAFE),
    "google-oauth-token": "ya29." + _rs(60, _URLSAFE),
    "github-classic-pat": "ghp_" + _rs(36),
    "github-oauth": "gho_" + _rs(36),
    "github-app-server": "ghs_" + _rs(36),
    "github-fine-grained-pat": "github_pat_" + _rs(22) + "_" + _rs(59),
    "slack-bot-token": "xoxb-" + _rs(11, string.digits) + "-" + _rs(13, string.digits) + "-" + _rs(24),
    "slack-user-token": "xoxp-" + _rs(11, string.digits) + "-" + _rs(11, string.digits) + "-"
                        + _rs(12, string.digits) + "-" + _rs(32, "0123456789abcdef"),
    "slack-webhook": "https://hooks.slack.com/services/T" + _rs(8, _UPPER) + "/B" + _rs(8, _UPPER) + "/" + _rs(24),
    "stripe-live-secret": "sk_live_" + _rs(24),
    "stripe-test-secret": "sk_test_" + _rs(24),
    "stripe-restricted": "rk_live_" + _rs(24),
    "jwt": _b64url({"alg": "HS256", "typ": "JWT"}) + "." + _b64url({"sub": "1234567890", "iat": 1516239022})
           + "." + _rs(43, _URLSAFE),
    "bearer-token": _rs(32, _URLSAFE),
    "basic-auth": base64.b64encode(b"admin:" + _rs(16).encode()).decode(),
    "pem-rsa": _pem("RSA ", 6, 64),
    "pem-openssh": _pem("OPENSSH ", 4, 70),
    "pem-ec": _pem("EC ", 3, 64),
    "pem-pkcs8": _pem("", 5, 64),
    "password-assignment": _rs(20, _ALNUM + "!@#$%^&*"),
    "api-key-assignment": _rs(32, "0123456789abcdef"),
    "custom-user-pattern": "ACME-" + _rs(24, _UPPER),
    # issue #21 point 9: the providers tokprof prices, and common formats that were missed
    "zhipu-glm-key": _rs(32, "0123456789abcdef") + "." + _rs(16),
    "doubao-ark-key": "-".join(_rs(n, "0123456789abcdef") for n in (8, 4, 4, 4, 12)),
    "ernie-qianfan-key": "bce-v3/ALTAK-" + _rs(20) + "/" + _rs(40, "0123456789abcdef"),
    "azure-openai-key": _rs(32, "0123456789abcdef"),
    "huggingface-token": "hf_" + _rs(34, string.ascii_letters),
    "groq-key": "gsk_" + _rs(52),
    "xai-key": "xai-" + _rs(80),
    "url-password": _rs(14),
    "dsn-query-password": _rs(12),
    "base64-openai-key": base64.b64encode(("sk-proj-" + _rs(48, _URLSAFE)).encode()).decode(),
    "token-named-value": _rs(24, _URLSAFE),
    "camelcase-apikey-value": _rs(28),
}


def in_context(kind: str, secret: str) -> str:
    """The secret as an agent would meet it: some formats are only secrets next to their name."""
    return {
        "aws-secret-access-key": f"aws_secret_access_key = {secret}",
        "bearer-token": f"Authorization: Bearer {secret}",
        "basic-auth": f"Authorization: Basic {secret}",
        "password-assignment": f"DB_PASSWORD={secret}",
        "api-key-assignment": f'{{"api_key": "{secret}"}}',
        "doubao-ark-key": f"export ARK_API_KEY={secret}",
        "azure-openai-key": f"api-key: {secret}",
        "url-password": f"DATABASE_URL=postgresql://app:{secret}@db.internal:5432/prod",
        "dsn-query-password": f"Server=db;Database=prod;https://db.example/connect?user=app&pwd={secret}",
        "token-named-value": f'{{"token": "{secret}"}}',
        "camelcase-apikey-value": f'{{"openaiApiKey": "{secret}"}}',
    }.get(kind, f"the credential is {secret} (from .env)")
