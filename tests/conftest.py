"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus"


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(autouse=True)
def _runs_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes runs to its own folder, never to the repo's .tokprof."""
    d = tmp_path / "runs"
    monkeypatch.setenv("TOKPROF_DIR", str(d))
    return d


@pytest.fixture(scope="session")
def _llm_server_session():
    """One loopback OpenAI/Anthropic-compatible server for the session (see tests/llm_server.py)."""
    from llm_server import LLMServer

    server = LLMServer().start()
    yield server
    server.stop()


@pytest.fixture
def llm_server(_llm_server_session):
    """The loopback LLM server with an empty script and request log."""
    _llm_server_session.reset()
    yield _llm_server_session
    _llm_server_session.reset()
