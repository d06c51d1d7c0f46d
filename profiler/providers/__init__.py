"""Everything tokprof knows about LLM providers, in one place.

- :mod:`~tokprof.profiler.providers.prices` — the price table (``data/prices.json``), model resolution, currency conversion.
- :mod:`~tokprof.profiler.providers.price_rows` — one row of that table (``ModelPrice``, ``PriceTier``) and its parser.
- :mod:`~tokprof.profiler.providers.tokenizers` — model -> tokenizer (offline BPE files shipped in packages).
- :mod:`~tokprof.profiler.providers.chat_format` — each family's chat template: how a message list becomes billed prompt tokens.
- :mod:`~tokprof.profiler.providers.resolver` — model names seen in traffic -> price-table names (aliases, snapshots).
- :mod:`~tokprof.profiler.providers.cost` — THE per-call cost function (every caller prices through it).
- :mod:`~tokprof.profiler.providers.cache_rules` — each provider's prompt-caching rule (``data/billing_rules.json``),
  every field with its source and confidence.
- :mod:`~tokprof.profiler.providers.media` — image/audio/video tokens by each provider's published formula.
- :mod:`~tokprof.profiler.providers.currency` — the reporting currency of a run and how money is written.
"""
