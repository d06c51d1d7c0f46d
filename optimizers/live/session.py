"""One live session: the passes of a ``profile(optimize=[...])`` block, applied to each request.

A live pass *is* the pass the simulator runs (:func:`tokprof.optimizers.base.make_pass`), applied to the
messages of one request instead of every call of a recorded run:

* the message passes (``minify``, ``dedupe``, ``observation-mask``) run their ``compress(messages, model)``,
  the function their simulated ``apply`` runs on each recorded call;
* ``prompt-cache`` runs :meth:`PromptCachePass.plan_call`, the step its ``apply`` runs per recorded call,
  keeping the per-conversation planning state across the block's requests; the live layer then puts the
  ``cache_control`` markers exactly where the plan says;
* ``response-cache`` is served by the LangChain cache / SDK middleware of the block (see
  :mod:`tokprof.optimizers.live.langchain` and :mod:`tokprof.optimizers.live.sdk`).

Every request gets a record of what each pass did to it (:data:`tokprof.profiler.keys.LIVE_DELTAS` on its
LLM span: tokens before and after, as the model's tokenizer counts them, or the breakpoints placed).
"""

from __future__ import annotations

import contextvars
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tokprof.optimizers.base import PASSES, make_pass
from tokprof.optimizers.live.compress import MessageCompressor
from tokprof.optimizers.prompt_cache import PromptCachePass, ThreadState
from tokprof.profiler import keys
from tokprof.profiler.model import LLMCall, Message, Span

LIVE_PASSES: tuple[str, ...] = ("response-cache", "minify", "truncate-outputs", "dedupe", "observation-mask", "prompt-cache")
"""Every pass that can act live, in the order they act (message passes first, then the prompt-cache
plan on the final messages; the response cache is consulted on the transformed request)."""

MESSAGE_PASSES: tuple[str, ...] = ("minify", "truncate-outputs", "dedupe", "observation-mask")
"""The live passes that rewrite a request's messages, in the order they run whatever order was asked."""

DEFAULT_LIVE_PASSES: tuple[str, ...] = tuple(
    n for n in LIVE_PASSES if getattr(PASSES[n], "lossless", False) and n not in ("minify", "dedupe"))
"""Passes switched on by ``optimize=["default"]``: ``response-cache`` and ``prompt-cache``. A pass acts live by
default only if it is lossless *and* it passed the behaviour rule on a real model:

    out of the default when, over the task runs the pass changed, the Wilson 95% lower bound of the share of
    runs whose answer or tool calls changed is above max(10%, the repeat variance of unchanged requests).

Measured by ``benchmarks/bench_live_real.py`` (SmolLM2-135M on llama-server, 24 tasks, temperature 0, repeat 2;
data: ``benchmarks/results/live_real_runs_smollm2-135m_v3.jsonl``, tables: ``benchmarks/results/README.md``): with
the clearer tool template (2026-12-02, second run) ``minify`` changed 14 of the 16 runs it touched (95% CI 64-97%)
and ``dedupe`` 2 of 4 (15-85%, one of them a lost strict success), above the bar as in the first run (14/16 and
4/4), so both are named explicitly, like the lossy passes. A 135M model rewords on a whitespace change; a stronger
model may not, and the rule should be re-run with one. ``prompt-cache`` changed no request (OpenAI-format requests
carry no markers) and ``response-cache`` replays a reply the model itself gave to the identical request."""

ALIASES = {
    "prompt-cache-plan": "prompt-cache", "prompt-caching": "prompt-cache", "cache-plan": "prompt-cache",
    "mask": "observation-mask", "observation-masking": "observation-mask",
    "minify-json": "minify", "json-minify": "minify", "tool-output-minify": "minify",
    "dedup": "dedupe", "dedupe-tool-outputs": "dedupe", "response_cache": "response-cache",
}

LIVE_PASS_OPTIONS: dict[str, dict[str, Any]] = {"observation-mask": {"keep_turns": 3}}
"""Options of the live message passes, pinned (a live agent acts on what it is sent): masking keeps the
outputs of the last three steps, as an agent re-reads recent outputs (the recorded-run default of one step
is tuned for simulation). minify takes none: it is whitespace-only (lossless) and cuts nothing."""


def canonical_pass(name: str) -> str:
    """The pass name for an alias (``mask`` -> ``observation-mask``)."""
    return ALIASES.get(name, name)


def requested_passes(names: list[Any]) -> list[str]:
    """Canonical names of ``names``, with ``default`` expanded to :data:`DEFAULT_LIVE_PASSES`."""
    out: list[str] = []
    for raw in names:
        for name in str(raw).split(","):
            name = canonical_pass(name.strip())
            if name == "default":
                out.extend(n for n in DEFAULT_LIVE_PASSES if n not in out)
            elif name and name not in out:
                out.append(name)
    return out


@dataclass
class Rewrite:
    """One request after the live passes: its messages, the prompt-cache plan, what each pass did."""

    messages: list[Message]
    plan: dict[str, Any]
    deltas: dict[str, dict[str, Any]]


@dataclass
class LiveSession:
    """The live passes of one profile block, their state and what they did."""

    passes: list[str]
    unknown: list[str] = field(default_factory=list)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Options per pass (default :data:`LIVE_PASS_OPTIONS`)."""
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    sdk_cache: dict[str, Any] = field(default_factory=dict)
    """Responses of instrumented SDK calls in this block, by request (the response cache for SDK clients)."""
    cache: Any = None
    """The LangChain response cache of the block, if ``response-cache`` is on."""
    previous_cache: Any = None
    token: contextvars.Token[LiveSession | None] | None = None
    objects: dict[str, Any] = field(default_factory=dict)
    """The pass objects, by name: the same objects the simulator would run."""
    threads: dict[tuple[str | None, str | None], ThreadState] = field(default_factory=dict)
    compressor: MessageCompressor | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, requested: list[str], options: dict[str, dict[str, Any]] | None = None) -> LiveSession:
        """A session for the live passes among ``requested`` (others go to ``unknown``)."""
        opts = {k: dict(v) for k, v in LIVE_PASS_OPTIONS.items()}
        opts.update({k: dict(v) for k, v in (options or {}).items()})
        session = cls(passes=[n for n in LIVE_PASSES if n in requested],
                      unknown=[n for n in requested if n not in LIVE_PASSES], options=opts)
        message_passes = [n for n in MESSAGE_PASSES if n in session.passes]
        session.compressor = MessageCompressor(message_passes, session.options)
        session.objects.update({p.name: p for p in session.compressor.passes})
        if "prompt-cache" in session.passes:
            session.objects["prompt-cache"] = make_pass("prompt-cache", **session.options.get("prompt-cache", {}))
        return session

    def bump(self, name: str, key: str, n: int = 1) -> None:
        with self._lock:
            counters = self.stats.setdefault(name, {})
            counters[key] = counters.get(key, 0) + n

    def rewrite(self, messages: list[Message], model: str | None, provider: str | None = None) -> Rewrite:
        """Apply the active message passes to one request (OpenAI-format messages; the input list is not
        modified), then plan its prompt-cache breakpoints. A pass that fails is skipped (logged once).
        Markers add no tokens: the prompt-cache record holds the breakpoints only."""
        out: list[Message] = list(messages)
        deltas: dict[str, dict[str, Any]] = {}
        if self.compressor is not None and self.compressor.passes:
            out, deltas = self.compressor.rewrite(out, model)
            for name, d in deltas.items():
                self.bump(name, "chars_removed", d["chars_removed"])
                self.bump(name, "tokens_removed", d["tokens_before"] - d["tokens_after"])
        plan: dict[str, Any] = {}
        if "prompt-cache" in self.objects:
            plan = self.plan(out, model, provider)
            if plan:
                deltas["prompt-cache"] = {"breakpoints": list(plan["breakpoints"]), "ttl": plan["ttl"]}
                self.bump("prompt-cache", "breakpoints", len(plan["breakpoints"]))
        return Rewrite(out, plan, deltas)

    def plan(self, messages: list[Message], model: str | None, provider: str | None = None) -> dict[str, Any]:
        """The ``prompt-cache`` pass's plan for this request, from the block's earlier requests to the same
        model (one conversation per model, as the live layer cannot see the simulator's ``side`` tags)."""
        p: PromptCachePass = self.objects["prompt-cache"]
        call = LLMCall(provider=provider, model=model, messages=list(messages))
        with self._lock:
            st = self.threads.setdefault((provider, model), ThreadState())
            return p.plan_call(call, st, time.time_ns())


_session: contextvars.ContextVar[LiveSession | None] = contextvars.ContextVar("tokprof_live", default=None)


def current_session() -> LiveSession | None:
    """The live session of the innermost active ``profile(optimize=...)`` block, if any."""
    return _session.get()


def enter_session(session: LiveSession) -> None:
    session.token = _session.set(session)


def exit_session(session: LiveSession) -> None:
    if session.token is not None:
        try:
            _session.reset(session.token)
        except ValueError:  # exited from another context
            _session.set(None)


# ---- per-request records ----------------------------------------------------------------------------
# The requests rewritten in this context and not yet recorded: (number of messages sent, deltas). The span
# of a request is made by the integration after the rewrite, in the same context; the LLM-finish hook below
# pairs it with its record.
_pending: contextvars.ContextVar[list[tuple[int, dict[str, Any]]] | None] = contextvars.ContextVar(
    "tokprof_live_pending", default=None)


def expect_requests(records: list[tuple[int, dict[str, Any]]]) -> contextvars.Token[Any]:
    """Announce the per-pass records of the requests about to be sent from this context."""
    return _pending.set(list(records))


def forget_requests(token: contextvars.Token[Any]) -> None:
    try:
        _pending.reset(token)
    except ValueError:
        _pending.set(None)


def attach_deltas(span: Span) -> None:
    """LLM-finish hook: put the record of the request this span made on it (matched by message count)."""
    pending = _pending.get()
    if not pending or span.llm is None:
        return
    n = len(span.llm.messages)
    for i, (sent, deltas) in enumerate(pending):
        if sent == n or len(pending) == 1:
            del pending[i]
            if deltas:
                span.set_attribute(keys.LIVE_DELTAS, deltas)
            return
