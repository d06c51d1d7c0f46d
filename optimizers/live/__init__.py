"""The live layer: ``profile("name", optimize=[...])`` switches optimization passes on for the agent inside
the block, so a saving is *measured* on a real re-run.

>>> from tokprof import profile
>>> with profile("support", optimize=["response-cache", "minify", "dedupe", "prompt-cache"]) as run:
...     agent.invoke(...)
>>> run.metadata["live_passes"]
['response-cache', 'minify', 'dedupe', 'prompt-cache']

A live pass is the simulator's own pass object applied to one request (:mod:`.session`): ``minify``,
``truncate-outputs``, ``dedupe``, ``observation-mask`` rewrite the request's messages with their ``compress``; ``prompt-cache``
places ``cache_control`` breakpoints exactly where :func:`tokprof.optimizers.prompt_cache.plan_breakpoints`
plans them; ``response-cache`` answers a repeated deterministic request from the block's cache, billing
nothing. ``optimize=["default"]`` (:data:`DEFAULT_LIVE_PASSES`) is the lossless passes that also kept a real
model's answers in the live benchmark (``response-cache``, ``prompt-cache``; see the rule there); the others
(``minify``, ``dedupe``, and the lossy ``truncate-outputs`` and ``observation-mask``) act only when named. Unknown
names go to ``run.metadata["live_passes_unavailable"]``; what the passes did over the block to
``run.metadata["live_stats"]``, and what they did to each request to its span's
``attributes["tokprof.live_deltas"]``.

Importing this module registers the profile hooks (``tokprof`` imports it, so ``profile(optimize=...)``
works however tokprof is installed). Every failure inside is logged once and swallowed: the agent then
runs unoptimized, never broken.
"""

from __future__ import annotations

from tokprof.optimizers.live.block import activate_live, deactivate_live
from tokprof.optimizers.live.compress import (
    DEFAULT_MESSAGE_PASSES,
    MessageCompressor,
    chat_model_summarizer,
    compress_messages,
)
from tokprof.optimizers.live.langchain import message_transform, rewrite_messages
from tokprof.optimizers.live.session import (
    ALIASES,
    DEFAULT_LIVE_PASSES,
    LIVE_PASS_OPTIONS,
    LIVE_PASSES,
    MESSAGE_PASSES,
    LiveSession,
    Rewrite,
    attach_deltas,
    canonical_pass,
    current_session,
)
from tokprof.profiler.hooks import on_llm_finish, on_profile_enter, on_profile_exit

on_profile_enter(activate_live)
on_profile_exit(deactivate_live)
on_llm_finish(attach_deltas)

__all__ = [
    "ALIASES", "DEFAULT_LIVE_PASSES", "DEFAULT_MESSAGE_PASSES", "LIVE_PASSES", "LIVE_PASS_OPTIONS",
    "MESSAGE_PASSES", "LiveSession", "MessageCompressor", "Rewrite", "activate_live", "attach_deltas",
    "canonical_pass", "chat_model_summarizer", "compress_messages", "current_session", "deactivate_live",
    "message_transform", "rewrite_messages",
]
