"""Red team 6: token counts no provider can report (``2**62``, ``2**80``) in foreign trace files. The run
loader repairs such a count as missing (profiler/integrity.py, MAX_TOKENS = 2**53), but the importers took
it as provider truth: ``tokprof import`` printed 1.2e24 provider tokens and a cost of $3,022,314,549,036,572,936
for one chat-log line, and so did ``report``/``whatif`` run directly on the trace file, while the run file
that import saved loaded with the count missing. The same repair now applies to every importer's runs."""

from __future__ import annotations

import json
import warnings
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.cli import main

HUGE = 2**80


def _chatlog() -> str:
    return json.dumps({"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                       "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}],
                                    "usage": {"prompt_tokens": HUGE, "completion_tokens": 4}}}) + "\n"


def _otlp() -> str:
    attrs = [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
             {"key": "gen_ai.usage.input_tokens", "value": {"intValue": str(2**62)}},
             {"key": "gen_ai.usage.output_tokens", "value": {"stringValue": str(HUGE)}}]
    return json.dumps({"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": "1",
         "endTimeUnixNano": "2", "attributes": attrs}]}]}]})


def _json_out(argv: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(argv)
    out, err = capsys.readouterr()
    assert code in (0, None), err
    return json.loads(out)


@pytest.mark.parametrize("name,text", [("c.jsonl", _chatlog()), ("t.json", _otlp())], ids=["chatlog", "otlp"])
def test_impossible_counts_are_missing_not_provider_truth(name: str, text: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from tokprof.profiler import load_run
    from tokprof.profiler.store import iter_run_files

    src = tmp_path / name
    src.write_text(text)
    doc = _json_out(["import", str(src), "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert doc["tokens"]["input"] < 2**53 and doc["tokens"]["output"] < 2**53
    assert Decimal(doc["cost"]["amount"]) < 1  # one short call: well under a dollar (before: 3e18 USD)
    assert all(n < 2**53 for n in doc["tokens_by_source"].get("provider", {}).values())
    assert any("not a token count" in r for f in doc["files"] for r in f["partial_reasons"])
    # what import printed is what the saved file says
    saved = [load_run(p) for p in iter_run_files(tmp_path / "runs")]
    assert sum(s.llm.usage.input_tokens for r in saved for s in r.llm_spans()) == doc["tokens"]["input"]
    whatif = _json_out(["whatif", str(src), "--model", "gpt-4o-mini", "--json"], capsys)
    assert Decimal(whatif["paid"]["expected"]) < 1


def test_a_real_large_count_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The bound is 2**53 (what a JSON number holds exactly), far above any context window: a 2M-token
    prompt stays provider truth."""
    src = tmp_path / "c.jsonl"
    src.write_text(_chatlog().replace(str(HUGE), "2000000"))
    doc = _json_out(["import", str(src), "--out", str(tmp_path / "runs"), "--json"], capsys)
    assert doc["tokens"]["input"] == 2_000_000 and doc["tokens_by_source"]["provider"]["input"] == 2_000_000


def test_a_run_file_count_read_as_missing_is_counted_and_matches_the_cost(tmp_path: Path) -> None:
    """A saved run whose input count is impossible (2**80) loads with it missing; it was shown as 0 input
    tokens while the cost was priced from the counted messages. Now the missing count is counted locally
    (labelled ``counted``), so tokens and cost agree: gpt-4o $2.50/M input, $10/M output
    (https://openai.com/api/pricing/)."""
    import warnings as _w

    from tokprof.profiler import load_run
    from tokprof.profiler.accounting import span_cost

    head = {"type": "run", "schema": 1, "run_id": "r1", "name": "x", "tags": {}, "started_wall_ns": 0, "metadata": {}}
    root = {"type": "span", "span_id": "1", "parent_id": None, "run_id": "r1", "kind": "agent", "name": "a",
            "start_ns": 0, "end_ns": 10, "wall_start_ns": 0, "status": "ok"}
    llm = {"type": "span", "span_id": "2", "parent_id": "1", "run_id": "r1", "kind": "llm", "name": "chat",
           "start_ns": 0, "end_ns": 10, "wall_start_ns": 0, "status": "ok",
           "llm": {"provider": "openai", "model": "gpt-4o", "params": {}, "tools": [],
                   "messages": [{"role": "user", "content": "hello there, how are you today?"}],
                   "output": {"role": "assistant", "content": "yo"},
                   "usage": {"input_tokens": 2**80, "output_tokens": 1,
                             "sources": {"input": "provider", "output": "provider"}}}}
    path = tmp_path / "r1.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in (head, root, llm, {"type": "end", "ended_wall_ns": 10})) + "\n")
    with _w.catch_warnings():
        _w.simplefilter("ignore")
        run = load_run(path)
    (span,) = run.llm_spans()
    u = span.llm.usage
    assert 0 < u.input_tokens < 100 and u.sources["input_tokens"] == "counted"
    assert u.output_tokens == 1 and u.sources["output_tokens"] == "provider"
    cost = span_cost(span, "USD")
    assert cost is not None
    assert cost.amount == Decimal(u.input_tokens) * Decimal("2.5") / 10**6 + Decimal("10") / 10**6
