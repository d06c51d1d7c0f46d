"""Send tokprof runs to any OTLP/HTTP trace endpoint (an OpenTelemetry Collector, Langfuse, Phoenix, ...).

The request is :func:`tokprof.profiler.interchange.otlp.export_runs` — GenAI semantic conventions plus
``tokprof.*`` attributes — POSTed as OTLP JSON (gzip) to ``<endpoint>/v1/traces``. Before sending, each call
also gets what another tool cannot work out for itself, all under ``tokprof.``:

* ``tokprof.cost.amount`` / ``.currency`` / ``.source`` — the call's cost as the run recorded it, else as
  tokprof prices it (``computed``; absent when the model has no price);
* ``tokprof.usage.sources`` (per count: ``provider``/``counted``/``estimated``) and
  ``tokprof.usage.evidence`` — the weakest of them, the one label to trust the numbers by.

Endpoint and headers follow the OTel exporter conventions: a URL without a path gets ``/v1/traces``
(``OTEL_EXPORTER_OTLP_ENDPOINT`` semantics); ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``
and ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``) are read when no endpoint/headers are given
(https://opentelemetry.io/docs/specs/otel/protocol/exporter/).
"""

from __future__ import annotations

import gzip
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Iterable, Mapping

from tokprof.profiler.interchange.base import InterchangeError
from tokprof.profiler.interchange.otlp import decode_attributes, encode_value, export_runs
from tokprof.profiler.model import TOKEN_SOURCES, Run


def resolve_endpoint(endpoint: str | None) -> str:
    """The traces URL: as given (``/v1/traces`` added to a bare base URL), else from the OTel env vars."""
    if not endpoint:
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if endpoint:
            return endpoint
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        raise InterchangeError(None, None, "no OTLP endpoint: pass --otlp-endpoint URL or set "
                                           "OTEL_EXPORTER_OTLP_ENDPOINT")
    parts = urllib.parse.urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InterchangeError(None, None, f"OTLP endpoint {endpoint!r} is not an http(s) URL")
    if parts.path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def env_headers() -> dict[str, str]:
    """``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``, values URL-encoded) as a dict."""
    out: dict[str, str] = {}
    for item in (os.environ.get("OTEL_EXPORTER_OTLP_HEADERS") or "").split(","):
        k, sep, v = item.partition("=")
        if sep and k.strip():
            out[k.strip()] = urllib.parse.unquote(v.strip())
    return out


def _weakest(sources: Mapping[str, str]) -> str | None:
    known = [s for s in sources.values() if s in TOKEN_SOURCES]
    return max(known, key=TOKEN_SOURCES.index) if known else None


def enrich(request: dict[str, Any], runs: list[Run], currency: str = "USD") -> dict[str, Any]:
    """Add computed costs and the evidence label to the exported spans (``tokprof.*``)."""
    from tokprof.profiler.accounting import call_cost
    from tokprof.profiler.providers.cost import call_start_ns

    calls = {(r.run_id, s.span_id): s.llm for r in runs for s in r.spans if s.llm is not None}
    starts = {(r.run_id, s.span_id): call_start_ns(s) for r in runs for s in r.spans if s.llm is not None}
    run_ids = [r.run_id for r in runs]
    for rs, run_id in zip(request["resourceSpans"], run_ids, strict=True):
        for ss in rs["scopeSpans"]:
            for sp in ss["spans"]:
                a = decode_attributes(sp["attributes"])
                key = (run_id, str(a.get("tokprof.span.id")))
                call = calls.get(key)
                if call is None:
                    continue
                extra: dict[str, Any] = {}
                if call.cost is None:
                    try:
                        cost = call_cost(call, currency, started_ns=starts.get(key))  # peak / off-peak
                    except Exception:  # noqa: BLE001 - a price problem leaves the cost out, never the span
                        cost = None
                    if cost is not None and cost.amount is not None:
                        extra.update({"tokprof.cost.amount": str(cost.amount), "tokprof.cost.currency": cost.currency,
                                      "tokprof.cost.source": cost.source})
                evidence = _weakest(call.usage.sources)
                if evidence:
                    extra["tokprof.usage.evidence"] = evidence
                sp["attributes"].extend({"key": k, "value": encode_value(v)} for k, v in extra.items())
    return request


def send_runs(runs: Iterable[Run], endpoint: str | None = None, headers: dict[str, str] | None = None,
              timeout: float = 30.0, currency: str = "USD") -> dict[str, Any]:
    """POST ``runs`` to an OTLP/HTTP endpoint. Returns ``{endpoint, spans, status, partial_success}``;
    raises :class:`InterchangeError` naming the endpoint when it refuses or cannot be reached."""
    runs = list(runs)
    url = resolve_endpoint(endpoint)
    request = enrich(export_runs(runs), runs, currency)
    n = sum(len(ss["spans"]) for rs in request["resourceSpans"] for ss in rs["scopeSpans"])
    body = gzip.compress(json.dumps(request, ensure_ascii=False).encode("utf-8"))
    hdrs = {"Content-Type": "application/json", "Content-Encoding": "gzip", "User-Agent": "tokprof"}
    hdrs.update(env_headers() if headers is None else headers)
    req = urllib.request.Request(url, data=body, method="POST", headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the user's own endpoint
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        raise InterchangeError(None, None, f"OTLP endpoint {url} refused the export: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise InterchangeError(None, None, f"cannot reach OTLP endpoint {url} ({reason})") from None
    partial = None
    try:
        partial = (json.loads(raw) if raw else {}).get("partialSuccess")
    except (ValueError, AttributeError):
        pass
    return {"endpoint": url, "spans": n, "status": status, "partial_success": partial}
