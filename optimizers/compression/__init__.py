"""Context compression passes. Importing this package registers them with :mod:`tokprof.optimizers.base`:

``minify`` (lossless), ``truncate-outputs``, ``dedupe``, ``observation-mask``, ``history-budget``,
``relevance-prune`` (all lossy).

Each is a pure function of one call's message list (see :mod:`tokprof.optimizers.compression.common`), so it
decides only from what was known before the call, keeps the prompt prefix stable between block
compactions, and is usable live on any OpenAI-style message list (:mod:`tokprof.optimizers.live`).
"""

from __future__ import annotations

# Importing each pass module registers its pass.
from tokprof.optimizers.compression import dedupe, history_budget, mask, minify, relevance, truncate  # noqa: E402,F401

COMPRESSION_PASSES = ("minify", "truncate-outputs", "observation-mask", "dedupe", "history-budget", "relevance-prune")
"""Pass names, in the order they compose best: minify first (each output shrinks once, on entry), mask
before dedupe (a copy is never replaced by a reference to an output about to be masked), the budget
last; then ``prompt-cache``, so the cache plan sees the final prompts."""

DEFAULT_COMPRESSION = ("minify", "truncate-outputs", "observation-mask", "dedupe", "history-budget")
"""The compression of the default pipeline (``relevance-prune`` is opt-in: it edits instructions)."""
