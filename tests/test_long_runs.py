"""Counting very long runs of one kind of character (issue #21): tiktoken is quadratic on one long
pre-tokenized piece, so tokprof cuts such a run into parts. Normal text is never cut (the count is exactly
tiktoken's); a cut text's count equals tiktoken's on these oracles (one letter, spaces: periodic merges)
and is labelled ``estimated``, since in general it can differ by about a token per cut
(benchmarks/bench_long_runs.py: +79 tokens on 800k random letters, 0 on the 30,446 corpus texts).
No timed assertions: the time is measured in the benchmark."""

from __future__ import annotations

from tokprof.profiler.accounting import fill_usage
from tokprof.profiler.model import LLMCall
from tokprof.profiler.providers.encoders import CHUNK, LONG_PIECE, get_encoder, has_long_piece, split_long_pieces

PROSE = "The quick brown fox, jumps over 12 lazy dogs! Then it rests.\n" * 5000


def test_normal_text_is_never_cut_and_counts_exactly() -> None:
    enc = get_encoder("o200k_base")
    assert split_long_pieces(PROSE) is None and not has_long_piece(PROSE)
    assert len(enc.encode(PROSE)) == len(enc.encoding.encode_ordinary(PROSE))  # type: ignore[attr-defined]
    # a run just under two windows long is not cut either
    text = "x " + "a" * (LONG_PIECE - 1) + " y"
    assert split_long_pieces(text) is None


def test_long_runs_are_cut_inside_the_run_only() -> None:
    text = "Here is the log:\n" + "a" * 20_000 + "\nend"
    parts = split_long_pieces(text)
    assert parts is not None and "".join(parts) == text
    assert parts[0].startswith("Here is the log:\na") and parts[-1].endswith("a\nend")
    assert all(len(p) <= 2 * CHUNK + 17 for p in parts)
    # every cut falls between two letters of the run
    pos = 0
    for p in parts[:-1]:
        pos += len(p)
        assert text[pos - 1] == "a" and text[pos] == "a"


def test_cut_counts_match_tiktoken_on_periodic_runs() -> None:
    for name in ("o200k_base", "cl100k_base"):
        enc = get_encoder(name)
        exact = enc.encoding.encode_ordinary  # type: ignore[attr-defined]
        for text in ("a" * 100_000, " " * 100_000, "!" * 100_000, "中" * 50_000):
            assert has_long_piece(text)
            assert len(enc.encode(text)) == len(exact(text)), (name, text[:1])


def test_a_count_that_was_cut_is_labelled_estimated() -> None:
    long_call = LLMCall(provider="openai", model="gpt-4o", messages=[{"role": "user", "content": "a" * 50_000}],
                        output={"role": "assistant", "content": "ok"})
    fill_usage(long_call)
    assert long_call.usage.source("input_tokens") == "estimated"
    assert long_call.usage.input_tokens > 6_000
    normal = LLMCall(provider="openai", model="gpt-4o", messages=[{"role": "user", "content": PROSE}],
                     output={"role": "assistant", "content": "ok"})
    fill_usage(normal)
    assert normal.usage.source("input_tokens") == "counted"
