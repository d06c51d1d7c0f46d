"""Send every profiled run to an OTLP/HTTP endpoint as its profile ends (opt-in, by environment).

Switch it on with ``TOKPROF_OTLP_EXPORT``:

* ``TOKPROF_OTLP_EXPORT=1`` — the endpoint is the standard ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as
  is), else ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/traces`` appended), with ``OTEL_EXPORTER_OTLP_HEADERS``
  (https://opentelemetry.io/docs/specs/otel/protocol/exporter/); tokprof never sends on the OTel variables
  alone, since an app may set them for its own tracer;
* ``TOKPROF_OTLP_EXPORT=http://127.0.0.1:4318`` — that endpoint;
* unset, ``0`` or empty — off (the default: nothing leaves the machine).

The request is :func:`~tokprof.profiler.interchange.otlp_send.send_runs`'s: GenAI semantic conventions, plus
tokprof's extras under ``tokprof.*`` (``tokprof.cost.amount``/``.currency``/``.source``,
``tokprof.usage.sources``, ``tokprof.usage.evidence``), secrets redacted. It is registered through the public
:func:`~tokprof.profiler.hooks.on_profile_exit` hook. That hook runs just before the root span ends, so the
send runs on a background thread that waits for the profile to finish (root span ended, run file closed) and
then posts the whole run — the agent is never held up by the network. A run kept only in its file
(``keep_in_memory=False``) is read back from the file. Failures (endpoint down, refused, a bad URL) are logged
once per endpoint and swallowed; the local run file is written either way, so nothing is lost.
:func:`flush` waits for pending sends (tests; it also runs at interpreter exit, bounded by the timeout).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

from tokprof.profiler.hooks import on_profile_exit

log = logging.getLogger("tokprof")

ENV = "TOKPROF_OTLP_EXPORT"
TIMEOUT_S = 10.0
"""Per request; also how long a send waits for its profile to finish and how long exit waits for sends."""
_POLL_S = 0.005
_pending: list[threading.Thread] = []
_pending_lock = threading.Lock()
_warned: set[str] = set()
sent: list[dict[str, Any]] = []
"""What each send returned (``{endpoint, spans, status, partial_success, run_id}``), for inspection."""


def endpoint_from_env() -> str | None:
    """The endpoint the environment asks for, or ``None`` when live export is off."""
    raw = (os.environ.get(ENV) or "").strip()
    if raw.lower() in ("", "0", "false", "no", "off"):
        return None
    if raw.lower() in ("1", "true", "yes", "on"):
        return (os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or "")  # empty: resolve_endpoint names the missing variable
    return raw


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning("tokprof: %s (live OTLP export; the run file is still written)", message)


def _export_when_done(p: Any, endpoint: str) -> None:
    """Wait for the profile to finish, then send its run. Never raises."""
    try:
        from tokprof.profiler.interchange.otlp_send import send_runs

        deadline = time.monotonic() + TIMEOUT_S
        writer = p.collector.writer if p.collector is not None else None
        while time.monotonic() < deadline and (
                p.root is None or p.root.end_ns is None or p.run.ended_wall_ns is None
                or (writer is not None and not getattr(writer, "closed", True))):
            time.sleep(_POLL_S)
        run = p.run
        if not getattr(p, "keep_in_memory", True) and run.path is not None:  # only the file has every span
            from tokprof.profiler.store import load_run

            run = load_run(run.path)
        result = send_runs([run], endpoint, timeout=TIMEOUT_S)
        result["run_id"] = run.run_id
        sent.append(result)
    except Exception as exc:  # noqa: BLE001 - an export problem never reaches the agent
        _warn_once(endpoint, str(exc)[:300])


@on_profile_exit
def export_on_exit(p: Any) -> None:
    """The exit hook: start the send if ``TOKPROF_OTLP_EXPORT`` asks for one."""
    endpoint = endpoint_from_env()
    if endpoint is None:
        return
    t = threading.Thread(target=_export_when_done, args=(p, endpoint), name="tokprof-otlp-export", daemon=True)
    with _pending_lock:
        _pending[:] = [x for x in _pending if x.is_alive()]
        _pending.append(t)
    t.start()


def flush(timeout: float = TIMEOUT_S * 2) -> bool:
    """Wait for pending sends; ``True`` when none is left."""
    end = time.monotonic() + timeout
    with _pending_lock:
        threads = list(_pending)
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    return not any(t.is_alive() for t in threads)


atexit.register(flush)
