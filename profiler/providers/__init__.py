"""Everything tokprof knows about LLM providers, in one place.

- :mod:`~tokprof.profiler.providers.prices` — the price table (``data/prices.json``), model resolution, currency conversion.
- :mod:`~tokprof.profiler.providers.tokenizers` — model -> tokenizer (offline BPE files shipped in packages).
- :mod:`~tokprof.profiler.providers.chat_format` — each family's chat template: how a message list becomes billed prompt tokens.
- ``data/billing_rules.json`` — each provider's prompt-caching rules (read by the billing simulator).
"""
