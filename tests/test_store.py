"""Run files: round trip, payload deduplication, streaming, truncated and malformed files."""

from __future__ import annotations

import json
import os
import stat
import warnings

import pytest

from tokprof.profiler import load_run, profile, record_llm_call, trace
from tokprof.profiler.store import RunFileError, TruncatedRunWarning, resolve_run, save_run


def agent_with_growing_history(calls: int = 50) -> None:
    history = [{"role": "system", "content": "You are a helpful agent. " * 50}]
    for i in range(calls):
        history.append({"role": "user", "content": f"step {i}: " + "context " * 40})
        record_llm_call(model="gpt-4o", provider="openai", messages=history, output=f"answer {i}",
                        usage={"input_tokens": 100 + i, "output_tokens": 5})
        history.append({"role": "assistant", "content": f"answer {i}"})


def test_round_trip_keeps_everything(tmp_path):
    @trace(tags={"customer": "acme"})
    def step(x):
        return x

    with profile("rt", tags={"team": "a"}) as run:
        step(1)
        agent_with_growing_history(3)
    path = run.save(tmp_path)
    assert path == tmp_path / f"{run.run_id}.jsonl"
    back = load_run(path)
    assert back.complete and back.run_id == run.run_id and back.tags == {"team": "a"}
    assert [s.to_dict() for s in sorted(back.spans, key=lambda s: s.span_id)] == \
        [s.to_dict() for s in sorted(run.spans, key=lambda s: s.span_id)]
    assert back.total_usage().input_tokens == 100 + 101 + 102


def test_growing_history_is_stored_once(tmp_path):
    with profile("history", save=tmp_path) as run:
        agent_with_growing_history(200)
    size = run.path.stat().st_size
    total_message_chars = sum(len(json.dumps(s.llm.messages)) for s in run.spans if s.llm)
    unique_chars = len(json.dumps({json.dumps(m, sort_keys=True): 1 for s in run.spans if s.llm
                                   for m in s.llm.messages}))
    # Written naively the history costs ~200x its size; stored by hash, the file is the unique content
    # plus a constant-size line per span.
    assert size < total_message_chars / 20
    assert size < unique_chars + 1200 * 201
    lines = run.path.read_text().splitlines()
    span_lines = [line for line in lines if '"type":"span"' in line]
    assert max(len(line) for line in span_lines) < 1200
    payloads = [json.loads(line) for line in lines if '"type":"payload"' in line]
    assert len(payloads) == 1 + 200 + 199  # system, users, assistants (the last answer is only an output)
    back = load_run(run.path)
    assert back.complete
    assert [s.llm.messages for s in back.llm_spans()] == [s.llm.messages for s in run.llm_spans()]


def test_stream_file_is_owner_only_and_flushed_as_spans_finish(tmp_path):
    with profile("stream", save=tmp_path) as run:
        record_llm_call(model="m", usage={"input_tokens": 1, "output_tokens": 1})
        # before the profile ends, the finished span is already on disk
        text = (tmp_path / f"{run.run_id}.jsonl").read_text()
        assert '"type":"span"' in text
    mode = stat.S_IMODE(os.stat(run.path).st_mode)
    assert mode == 0o600


def test_truncated_last_line_warns_and_keeps_finished_spans(tmp_path):
    with profile("trunc", save=tmp_path) as run:
        for i in range(5):
            record_llm_call(model="m", usage={"input_tokens": i, "output_tokens": 1})
    text = run.path.read_text()
    lines = text.splitlines()
    # drop the end line and cut the last span line in half, as a kill mid-write would
    cut = "\n".join(lines[:-2]) + "\n" + lines[-2][: len(lines[-2]) // 2]
    run.path.write_text(cut)
    with pytest.warns(TruncatedRunWarning, match=rf"{run.path.name}:\d+: last line is truncated"):
        back = load_run(run.path)
    assert not back.complete
    assert len([s for s in back.spans if s.llm]) == 5  # the cut line was the root span, written last


def test_missing_end_line_marks_incomplete(tmp_path):
    with profile("noend", save=tmp_path) as run:
        record_llm_call(model="m", usage={"input_tokens": 1, "output_tokens": 1})
    lines = run.path.read_text().splitlines()
    run.path.write_text("\n".join(lines[:-1]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = load_run(run.path)
    assert not back.complete and len(back.spans) == 2


def test_wrong_schema_version_is_rejected_with_file_and_line(tmp_path):
    p = tmp_path / "old.jsonl"
    p.write_text(json.dumps({"type": "run", "schema": 99, "run_id": "x"}) + "\n")
    with pytest.raises(RunFileError, match=r"old\.jsonl:1: schema version 99 is not supported"):
        load_run(p)


def test_malformed_line_names_file_and_line(tmp_path):
    run_path = None
    with profile("bad", save=tmp_path) as run:
        record_llm_call(model="m", usage={"input_tokens": 1, "output_tokens": 1})
        run_path = tmp_path / f"{run.run_id}.jsonl"
    lines = run_path.read_text().splitlines()
    lines.insert(1, "{not json")
    run_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFileError, match=r":2: malformed JSON"):
        load_run(run_path)
    run_path.write_text("\n".join([lines[0], '{"type": "span"}']) + "\n")
    with pytest.raises(RunFileError, match=r":2: malformed span record"):
        load_run(run_path)


def test_not_a_run_file(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"type": "span"}\n')
    with pytest.raises(RunFileError, match="expected the run header first"):
        load_run(p)
    p.write_text("")
    with pytest.raises(RunFileError, match="empty file"):
        load_run(p)
    with pytest.raises(RunFileError, match="no such run file"):
        load_run(tmp_path / "missing.jsonl")


def test_resolve_latest_and_prefix(tmp_path):
    with profile("a") as a:
        pass
    with profile("b") as b:
        pass
    pa = save_run(a, tmp_path)
    pb = save_run(b, tmp_path)
    os.utime(pa, (1, 1))
    assert resolve_run(None, tmp_path) == pb
    assert resolve_run(a.run_id[:10], tmp_path) == pa
    with pytest.raises(RunFileError, match="no run file or run id"):
        resolve_run("zzzz", tmp_path)


def test_unserialisable_attributes_are_stored_as_text(tmp_path):
    with profile("odd") as run:
        s = record_llm_call(model="m", usage={"input_tokens": 1, "output_tokens": 1}, params={"obj": object()})
    assert s is not None
    back = load_run(run.save(tmp_path))
    assert back.llm_spans()[0].llm.params["obj"].startswith("<object object")


def test_run_copy_owns_its_attributes_and_calls() -> None:
    """A pass rewriting a copy (set_attribute, usage) leaves the run it was given untouched."""
    from tokprof.profiler.model import LLMCall, Run, Span

    run = Run()
    span = Span("a", None, run.run_id, "llm", "chat", 0, 0, attributes={"k": 1}, tags={"team": "x"},
                llm=LLMCall(model="gpt-4o", messages=[{"role": "user", "content": "hi"}]))
    run.spans.append(span)
    copy = run.copy()
    copy.spans[0].set_attribute("optimizer.served_by", "response-cache")
    copy.spans[0].tags["team"] = "y"
    copy.spans[0].llm.messages[0]["content"] = "masked"
    assert span.attributes == {"k": 1} and span.tags == {"team": "x"}
    assert span.llm.messages[0]["content"] == "hi"
    assert copy.spans[0].to_dict()["attributes"] == {"k": 1, "optimizer.served_by": "response-cache"}
