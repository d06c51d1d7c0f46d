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


_LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture(autouse=True, scope="session")
def _loopback_only():
    """Offline first: any connection a test (or tokprof under test) opens beyond loopback fails loudly.
    (Subprocesses are covered by their own tests: sockets blocked for counting, no requests from the
    report in the browser.)"""
    import socket

    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address: object) -> None:
        if isinstance(address, tuple) and not str(address[0]).startswith(_LOOPBACK):
            raise OSError(f"test tried to reach {address[0]!r}: tests may only use 127.0.0.1")

    def connect(self, address):  # noqa: ANN001, ANN202
        check(address)
        return real_connect(self, address)

    def connect_ex(self, address):  # noqa: ANN001, ANN202
        check(address)
        return real_connect_ex(self, address)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    yield
    socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


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


# Under CI a missing prerequisite of the strongest tests (the shared corpus, Chromium/Playwright for the
# browser tests) must fail the run, not skip silently (issue #21 "Also"). Locally they still skip.
_CI_REQUIRED = ("corpus", "chromium", "playwright")


def _under_ci() -> bool:
    import os

    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201
    outcome = yield
    rep = outcome.get_result()
    if not rep.skipped or not _under_ci() or getattr(rep, "wasxfail", None) is not None:
        return
    reason = str(rep.longrepr[2] if isinstance(rep.longrepr, tuple) else rep.longrepr).lower()
    if any(k in reason for k in _CI_REQUIRED) or ("empty parameter set" in reason and "corpus" in item.nodeid):
        rep.outcome = "failed"
        rep.longrepr = f"CI=true: a prerequisite is missing, so this test fails instead of skipping: {reason}"
