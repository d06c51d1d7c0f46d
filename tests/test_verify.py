"""Issue #16.4: `tokprof verify` replays rewritten requests to an OpenAI-compatible endpoint (the loopback
server, real HTTP) and measures whether the model's next action changes.

The stand-in model answers from the context it is given: it calls ``cite`` with every scalar value of the
JSON tool outputs it can read, so a rewrite that keeps every value (whitespace) gets the same action, and
one that hides a record (a masking placeholder) gets a different one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compression_runs import run_from_transcript, transcript
from llm_server import Reply
from tokprof.cli import main
from tokprof.optimizers.base import PassContext, make_pass
from tokprof.optimizers.verify import VerifyError, action_of, openai_asker, verify_run


def _values(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for x in node.values() for v in _values(x)]
    if isinstance(node, list):
        return [v for x in node for v in _values(x)]
    return [str(node)]


def cite_from_context(body: dict) -> Reply:
    seen: list[str] = []
    for m in body["messages"]:
        if m.get("role") == "tool":
            try:
                seen += _values(json.loads(m.get("content") or ""))
            except ValueError:
                pass
    return Reply(text="", tool_calls=[{"id": "call_1", "name": "cite", "arguments": {"values": sorted(set(seen))}}])


@pytest.fixture
def stand_in(llm_server):
    llm_server.responder = cite_from_context
    yield llm_server
    llm_server.responder = None


def test_action_of_compares_tool_and_arguments_or_answer() -> None:
    a = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"b": 2, "a": 1}'}}]}
    b = {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1, "b": 2}}}]}
    assert action_of(a) == action_of(b)
    assert action_of({"content": "Done.  OK"}) == action_of({"content": "done. ok"})
    assert action_of({"content": "yes"}) != action_of(a)


def test_lossless_rewrite_agrees_masking_does_not(stand_in) -> None:
    run = run_from_transcript(transcript())
    ask = openai_asker(stand_in.openai_url, "stand-in")
    minified, _ = make_pass("minify").apply(run, PassContext())
    ok = verify_run(run, minified, ask, "stand-in")
    assert ok.checks and ok.agreement == 1.0
    masked, _ = make_pass("observation-mask", threshold_tokens=100).apply(run, PassContext())
    bad = verify_run(run, masked, ask, "stand-in")
    assert bad.checks and bad.agreement is not None and bad.agreement < 1.0
    # every checked call was really sent over HTTP, original and rewritten
    assert len(stand_in.requests) == 2 * (len(ok.checks) + len(bad.checks))
    assert all(r.body["model"] == "stand-in" and r.body["temperature"] == 0 for r in stand_in.requests)


def test_verify_command_json(stand_in, tmp_path: Path, capsys) -> None:
    run = run_from_transcript(transcript())
    path = run.save(tmp_path)
    rc = main(["verify", str(path), "--passes", "minify", "--base-url", stand_in.openai_url,
               "--model", "stand-in", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["evidence"] == "measured" and out["agreement"] == 1.0 and out["checked"] > 0


def test_unreachable_endpoint_is_a_clear_error() -> None:
    ask = openai_asker("http://127.0.0.1:9/v1", "m", timeout=2)
    with pytest.raises(VerifyError, match="OpenAI-compatible server"):
        ask([{"role": "user", "content": "hi"}], None)


def test_verify_command_sends_max_tokens_and_extra_body(stand_in, tmp_path: Path, capsys) -> None:
    """The bound and the endpoint-specific fields reach the server as given (llama.cpp's ``cache_prompt``:
    the original and the rewritten request share a prefix, and a reused cache changes the arithmetic)."""
    path = run_from_transcript(transcript()).save(tmp_path)
    rc = main(["verify", str(path), "--passes", "minify", "--base-url", stand_in.openai_url, "--model", "stand-in",
               "--max-tokens", "48", "--extra-body", '{"cache_prompt": false, "seed": 1}', "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["checked"] > 0
    assert stand_in.requests and all(r.body["max_tokens"] == 48 and r.body["cache_prompt"] is False
                                     and r.body["seed"] == 1 and r.body["model"] == "stand-in"
                                     for r in stand_in.requests)


def test_verify_command_rejects_a_non_object_extra_body(tmp_path: Path, capsys) -> None:
    path = run_from_transcript(transcript()).save(tmp_path)
    rc = main(["verify", str(path), "--passes", "minify", "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
               "--extra-body", "[1, 2]"])
    assert rc != 0
    assert "--extra-body must be a JSON object" in capsys.readouterr().err
