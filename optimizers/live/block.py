"""``profile(optimize=[...])``: the profile enter/exit hooks that switch a live session on for a block."""

from __future__ import annotations

from typing import Any

from tokprof.optimizers.live import langchain as live_langchain
from tokprof.optimizers.live import sdk as live_sdk
from tokprof.optimizers.live.session import LiveSession, enter_session, exit_session, requested_passes
from tokprof.profiler import keys
from tokprof.profiler.policy import internal_error


def activate_live(p: Any) -> None:
    """Profile enter hook: switch on the passes named in ``p.optimize`` for the block."""
    requested = requested_passes(list(p.optimize or []))
    if not requested:
        return
    session = LiveSession.open(requested)
    p.run.metadata[keys.LIVE_PASSES] = list(session.passes)
    if session.unknown:
        p.run.metadata[keys.LIVE_PASSES_UNAVAILABLE] = list(session.unknown)
    try:
        live_langchain.enter(session)
    except ImportError as exc:  # no langchain-core: the SDK side still works
        internal_error("live layer: langchain-core unavailable", exc)
    live_sdk.enter(session)
    enter_session(session)
    p.extras["live"] = session


def deactivate_live(p: Any) -> None:
    """Profile exit hook: undo :func:`activate_live` and record what the live passes did."""
    session: LiveSession | None = p.extras.pop("live", None)
    if session is None:
        return
    exit_session(session)
    try:
        live_langchain.exit(session)
    except ImportError:  # pragma: no cover - it was not entered either
        pass
    live_sdk.exit(session)
    p.run.metadata[keys.LIVE_STATS] = {k: dict(v) for k, v in session.stats.items()}
