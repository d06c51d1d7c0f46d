"""Bad input: clear errors naming file and record; partly bad files import their good records.
Also the chat-log shapes and the import CLI's summary."""

from __future__ import annotations

import gzip
import json

import pytest

from tokprof.profiler.interchange import InterchangeError, detect_format, import_file
from tokprof.profiler.store import iter_run_files, load_run
from tests.conftest import CORPUS
from tokprof.cli import main


def chat_line(i: int, group: str | None = "conv-1", **extra) -> dict:
    line = {
        "request": {"model": "gpt-4o-mini", "temperature": 0,
                    "messages": [{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": f"question {i}"}],
                    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]},
        "response": {"id": f"chatcmpl-{i}", "object": "chat.completion", "created": 1_700_000_000 + i,
                     "model": "gpt-4o-mini-2024-07-18",
                     "choices": [{"index": 0, "message": {"role": "assistant", "content": f"answer {i}"},
                                  "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 100 + i, "completion_tokens": 10 + i, "total_tokens": 110 + 2 * i,
                               "prompt_tokens_details": {"cached_tokens": 64},
                               "completion_tokens_details": {"reasoning_tokens": 0}}},
    }
    if group is not None:
        line["session_id"] = group
    line.update(extra)
    return line


def write_lines(path, lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def test_chatlog_pairs_grouped_into_runs_with_provider_usage(tmp_path):
    p = write_lines(tmp_path / "log.jsonl", [chat_line(0), chat_line(1), chat_line(2, group="conv-2"),
                                             chat_line(3, group=None, latency_ms=250)])
    assert detect_format(p) == "chatlog"
    result = import_file(p)
    assert result.errors == [] and result.records == 4
    runs = {r.metadata["group"]: r for r in result.runs}
    assert set(runs) == {"conv-1", "conv-2", None}
    calls = runs["conv-1"].llm_spans()
    assert len(calls) == 2
    c = calls[1].llm
    assert (c.provider, c.model) == ("openai", "gpt-4o-mini")
    assert c.usage.to_dict() == {"input_tokens": 101, "output_tokens": 11, "cache_read_tokens": 64,
                                 "reasoning_tokens": 0,
                                 "sources": {k: "provider" for k in ("input_tokens", "output_tokens",
                                                                     "cache_read_tokens", "reasoning_tokens")}}
    assert c.messages[-1] == {"role": "user", "content": "question 1"}
    assert c.output == {"role": "assistant", "content": "answer 1"}
    assert c.tools[0]["function"]["name"] == "f"
    assert c.params == {"temperature": 0}
    assert (c.response_id, c.finish_reason) == ("chatcmpl-1", "stop")
    assert calls[1].wall_start_ns == 1_700_000_001 * 10**9
    lone = runs[None].llm_spans()[0]
    assert lone.duration_ns == 250_000_000


def test_chatlog_openai_batch_input_and_output_are_joined(tmp_path):
    req = chat_line(0)["request"]
    resp = chat_line(0)["response"]
    lines = [
        {"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions", "body": req},
        {"custom_id": "req-2", "method": "POST", "url": "/v1/chat/completions", "body": req},
        {"id": "batch_req_1", "custom_id": "req-1", "response": {"status_code": 200, "request_id": "x",
                                                                "body": resp}, "error": None},
        {"id": "batch_req_3", "custom_id": "req-3", "response": {"status_code": 200, "request_id": "y",
                                                                "body": resp}, "error": None},
    ]
    result = import_file(write_lines(tmp_path / "batch_output.jsonl", lines))
    assert result.errors == []
    (run,) = result.runs
    calls = {s.attributes["custom_id"]: s.llm for s in run.llm_spans()}
    assert set(calls) == {"req-1", "req-2", "req-3"}
    assert calls["req-1"].messages == req["messages"] and calls["req-1"].usage.source("input_tokens") == "provider"
    assert calls["req-2"].usage.source("input_tokens") == "counted"  # request only: counted locally
    assert calls["req-3"].messages == [] and calls["req-3"].usage.input_tokens == 100
    assert any("without its request" in n for n in run.metadata["notes"])


def test_partly_bad_chatlog_imports_good_lines_and_names_bad_ones(tmp_path):
    lines = [chat_line(0), "{not json", chat_line(1), {"hello": "world"}, chat_line(2),
             json.dumps(chat_line(3))[:40]]
    p = write_lines(tmp_path / "log.jsonl", lines)
    result = import_file(p)
    assert sum(len(r.llm_spans()) for r in result.runs) == 3
    assert [e.record for e in result.errors] == ["line 2", "line 4", "line 6"]
    assert result.records == 6
    msg = result.error_summary()
    assert msg.startswith("3 of 6 records not imported")
    assert f"{p}: line 2: malformed JSON" in msg
    assert "unrecognized line (keys: hello)" in msg


def test_partly_bad_tau2_imports_good_simulations(corpus, tmp_path):
    src = next(p for p in sorted((CORPUS / "tau2").glob("*.gz")) if "grok3" in p.name)
    with gzip.open(src, "rt") as fh:
        data = json.load(fh)
    n = len(data["simulations"])
    data["simulations"][1]["messages"] = "oops"
    data["simulations"][3]["task_id"] = "no-such-task"
    data["simulations"][4]["messages"][2]["role"] = "narrator"
    p = tmp_path / "bad.json.gz"
    with gzip.open(p, "wt") as fh:
        json.dump(data, fh)
    result = import_file(p)
    # Issue #17: only the simulation with nothing importable is an error; the one whose task is absent and
    # the one with an unknown role import what they can and say what could not be rebuilt.
    assert len(result.runs) == n - 1
    assert [e.record for e in result.errors] == ["simulation 1"]
    text = [str(e) for e in result.errors]
    assert text[0].startswith(f"{p}: simulation 1: ") and "'messages' list" in text[0]
    partial = {line.split(":")[0]: line for line in result.partial}
    assert "'no-such-task'" in partial["simulation 3"] and "user_scenario" in partial["simulation 3"]
    assert "'narrator'" in partial["simulation 4"]


def test_partly_bad_tau1(tmp_path):
    data = [{"task_id": 0, "trial": 0, "traj": [{"role": "user", "content": "hi"},
                                                 {"role": "assistant", "content": "hello"}]},
            {"task_id": 1, "trial": 0},
            {"task_id": 2, "trial": 0, "traj": [{"role": "wizard", "content": "?"}]}]
    p = tmp_path / "t.json"
    p.write_text(json.dumps(data))
    result = import_file(p, "tau1")
    assert len(result.runs) == 1
    assert [e.record for e in result.errors] == ["record 1", "record 2"]
    assert "traj[0]" in str(result.errors[1])


@pytest.mark.parametrize("content,fmt,expect", [
    ("", None, "empty file"),
    ("hello, world\n", None, "unknown trace format"),
    ('{"some": "object"}', None, "unknown trace format"),
    ('{"info": {}, "simulations": [', "tau2", "line 1: malformed JSON"),
    ('{"info": {}, "tasks": []}', "tau2", "no 'simulations' list"),
    ('{"a": 1}', "tau1", "expected a JSON list of τ-bench runs"),
    ('{"a": 1}\n', "chatlog", "no record could be imported"),
    ('{"a": 1}', "otlp", "no 'resourceSpans' list"),
    ('{"a": 1}', "bogus", "unknown format 'bogus'"),
])
def test_bad_files_raise_errors_naming_the_file(tmp_path, content, fmt, expect):
    p = tmp_path / "input.json"
    p.write_text(content)
    with pytest.raises(InterchangeError) as exc:
        import_file(p, fmt)
    assert expect in str(exc.value)
    if fmt != "bogus":
        assert str(p) in str(exc.value)


def test_truncated_gzip_and_missing_file(tmp_path):
    p = tmp_path / "t.json.gz"
    blob = gzip.compress(json.dumps([{"traj": []}] * 100).encode())
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InterchangeError, match="gzip data is truncated"):
        import_file(p)
    with pytest.raises(InterchangeError, match="no such file"):
        import_file(tmp_path / "missing.json")


def test_import_cli_json_summary_and_saved_runs(corpus, tmp_path, capsys):
    out = tmp_path / "imported"
    rc = main(["import", str(CORPUS / "swe-agent"), str(CORPUS / "tau2" / next(
        p.name for p in sorted((CORPUS / "tau2").glob("*.gz")) if "o3" in p.name)), "--out", str(out), "--json"])
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    assert [f["format"] for f in s["files"]] == ["swe_agent", "swe_agent", "tau2"]
    assert s["runs"] == 2 + 9 and s["errors"] == 0 and s["failed_files"] == 0
    assert s["calls"] == 21 + 13 + 194
    assert s["tokens"]["total"] == s["tokens"]["input"] + s["tokens"]["output"]
    assert set(s["tokens_by_source"]) <= {"provider", "counted", "estimated", "unknown"}
    assert sum(v["input"] for v in s["tokens_by_source"].values()) == s["tokens"]["input"]
    assert s["models"]["o3"] == 137
    assert s["cost"]["by_source"]["recorded"]
    files = list(iter_run_files(out))
    assert len(files) == 11
    runs = [load_run(f) for f in files]
    assert sum(len(r.llm_spans()) for r in runs) == 228


def test_import_cli_reports_bad_records_and_failed_files(tmp_path, capsys):
    good = write_lines(tmp_path / "a.jsonl", [chat_line(0), "{broken", chat_line(1)])
    bad = tmp_path / "b.json"
    bad.write_text("not a trace")
    rc = main(["import", str(good), str(bad), "--no-save"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "1 of 3 records not imported" in out and "line 2" in out
    assert "failed" in out and "unknown trace format" in out
