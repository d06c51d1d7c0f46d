"""Red team 5: the importers added recently (mini-swe-agent v1/v2, SWE-agent RetryAgent files, Codex, Claude
Code, τ-bench ReAct, OTLP-JSON and the `tokprof collect` receiver, chat logs) against files damaged the way
files are damaged in the wild: truncated, BOM, UTF-16/32, gzip (nested, truncated), values nested 50,000
deep, 5,000-digit integers, NaN, duplicate keys, lone surrogates, NUL in ids, 100 KB strings, CR/CRLF and
raw line separators inside strings. Seeds are the hand-built files of tests/test_wild_importers.py."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import re
import signal
import warnings
from pathlib import Path
from typing import Any, Iterator

import pytest

import tests.test_wild_importers as wild
from tokprof.cli import main
from tokprof.profiler.interchange import import_file
from tokprof.profiler.model import LLMCall, Run, Span, Usage

SEPARATORS = "\u2028 \u2029 \u0085"
"""Valid raw inside a JSON string (only U+0000-U+001F must be escaped), left raw by Node's JSON.stringify
(Claude Code, Codex) and Python's ``ensure_ascii=False``; ``str.splitlines`` splits at each of them."""


def _chat_line(i: int, text: str) -> dict[str, Any]:
    return {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]},
            "response": {"choices": [{"message": {"role": "assistant", "content": f"a{i}"}}],
                         "usage": {"prompt_tokens": 5 + i, "completion_tokens": 1}}}


def test_chat_log_with_raw_line_separators_in_strings_loses_no_record(tmp_path: Path) -> None:
    """Before: profiler/interchange/base.py `iter_jsonl` used str.splitlines, so each line was cut at the
    separators: "no record could be imported" (12 of 12 records malformed) for 3 valid records."""
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(_chat_line(i, f"q{i} {SEPARATORS} end"), ensure_ascii=False)
                              for i in range(3)) + "\n", encoding="utf-8")
    result = import_file(path)
    calls = [s.llm for r in result.runs for s in r.llm_spans()]
    assert result.errors == [] and len(calls) == 3
    assert [c.messages[0]["content"] for c in calls] == [f"q{i} {SEPARATORS} end" for i in range(3)]
    assert [c.usage.input_tokens for c in calls] == [5, 6, 7]  # the provider's numbers, as sent


def test_claude_code_transcript_with_raw_line_separators(tmp_path: Path) -> None:
    """A Claude Code session (Node writes U+2028 raw) whose user pasted text holding a line separator:
    both calls import, with the transcript's own usage (4 + 1000 and 3 + 200 + 1000 input tokens)."""
    def usage(fresh: int, write: int, read: int, out: int) -> dict[str, Any]:
        return {"input_tokens": fresh, "cache_creation_input_tokens": write, "cache_read_input_tokens": read,
                "output_tokens": out}

    def answer(mid: str, text: str, u: dict[str, Any]) -> dict[str, Any]:
        return {"id": mid, "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "usage": u}
    lines = [
        wild._cc_line("user", "u1", None, "2025-06-01T10:00:00.000Z", {"role": "user", "content": "hi\u2028there"}),
        wild._cc_line("assistant", "a1", "u1", "2025-06-01T10:00:02.000Z", answer("m1", "a\u2029b", usage(4, 1000, 0, 12))),
        wild._cc_line("user", "u2", "a1", "2025-06-01T10:00:10.000Z", {"role": "user", "content": "again\u0085"}),
        wild._cc_line("assistant", "a2", "u2", "2025-06-01T10:00:12.000Z", answer("m2", "ok", usage(3, 200, 1000, 5))),
    ]
    path = tmp_path / "s-1.jsonl"
    # json.dumps escapes them by default; Node does not: write them raw, as Claude Code does
    path.write_text("\n".join(json.dumps(json.loads(x), ensure_ascii=False) for x in lines) + "\n", encoding="utf-8")
    calls = [s.llm for s in import_file(path).runs[0].llm_spans()]
    assert [c.usage.input_tokens for c in calls] == [4 + 1000, 3 + 200 + 1000]


def _otlp_request(span_id: str, text: str) -> dict[str, Any]:
    from tokprof.profiler.interchange import otlp

    run = Run(run_id="collect-u2028", name="collect")
    sp = Span(span_id, None, run.run_id, "llm", "chat", 1, 2, 1796171699367370899)
    sp.llm = LLMCall(model="gpt-4o", messages=[{"role": "user", "content": text}],
                     usage=Usage.from_provider(input_tokens=7, output_tokens=1))
    run.spans.append(sp)
    return otlp.export_runs([run])


def test_collector_keeps_spans_with_raw_line_separators(tmp_path: Path) -> None:
    """`tokprof collect` spools each request as one line written with ensure_ascii=False; the run is rebuilt
    from the spool on every request and on restart. Before: the spool was split with str.splitlines (in
    base.iter_jsonl and in receiver.Collector), so a span attribute holding U+2028 cut its line: the run
    file lost that request's spans (2 requests -> 1 call)."""
    from tokprof.profiler import load_run
    from tokprof.profiler.interchange.receiver import Collector

    out = tmp_path / "collected"
    col = Collector(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert col.accept(_otlp_request("1", f"first {SEPARATORS}"))[0] == 1
        assert col.accept(_otlp_request("2", f"second {SEPARATORS}"))[0] == 1
        (run_file,) = col.runs.values()
        assert len(load_run(run_file).llm_spans()) == 2
        again = Collector(out)  # a restart rebuilds every run from the spool
        (run_file,) = again.runs.values()
        contents = sorted(s.llm.messages[0]["content"] for s in load_run(run_file).llm_spans())
    assert contents == [f"first {SEPARATORS}", f"second {SEPARATORS}"]


# ---- the sweep ----------------------------------------------------------------------------------------------
def _claude() -> str:
    u = {"input_tokens": 4, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 0, "output_tokens": 2}
    ans = {"id": "m", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
           "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "usage": u}
    return "\n".join([wild._cc_line("user", "u1", None, "2025-06-01T10:00:00.000Z", {"role": "user", "content": "hi"}),
                      wild._cc_line("assistant", "a1", "u1", "2025-06-01T10:00:02.000Z", ans, costUSD=0.0001)]) + "\n"


def _seeds() -> dict[str, tuple[str, str]]:
    react = [{"task_id": 3, "trial": 0, "reward": 1.0, "info": {}, "traj": [
        {"role": "system", "content": "policy"}, {"role": "user", "content": "I want to return an item."},
        {"role": "assistant", "content": 'Thought:\nx\nAction:\n{"name": "get_user", "arguments": {"id": "u1"}}'},
        {"role": "user", "content": 'API output: {"name": "A"}'}]}]
    a0, a1 = wild._swe_1x(False), wild._swe_1x(True)
    retry = {"attempts": [a0, a1], **json.loads(json.dumps(a0))}
    return {
        "mini-v2": ("m.traj.json", json.dumps(wild.mini_v2())),
        "mini-v1": ("m1.traj.json", json.dumps(wild.mini_v1())),
        "claude-code": ("s-1.jsonl", _claude()),
        "codex": ("rollout-2025-05-01T10-00-00-5973b6c0.jsonl", "\n".join(json.dumps(x) for x in wild.LEGACY_CODEX) + "\n"),
        "tau1-react": ("react.json", json.dumps(react)),
        "swe-retry": ("retry.traj", json.dumps(retry)),
        "chatlog": ("log.jsonl", "\n".join(json.dumps(_chat_line(i, f"q{i}")) for i in range(2)) + "\n"),
        "otlp": ("t.otlp.json", json.dumps(_otlp_request("1", "x"))),
    }


DEEP = "[" * 50_000 + "]" * 50_000


def _variants(text: str) -> Iterator[tuple[str, str | bytes]]:
    data = text.encode()
    yield "as-is", text
    for f in (0.25, 0.5, 0.99):
        yield f"truncated-{f}", data[: int(len(data) * f)]
    yield "bom", "\ufeff" + text
    yield "utf16", text.encode("utf-16")
    yield "utf32", text.encode("utf-32")
    yield "gzip-truncated", gzip.compress(data)[:-12]
    yield "gzip-of-gzip", gzip.compress(gzip.compress(data))
    yield "deep-value", re.sub(r'": "[^"]*"', '": ' + DEEP, text, count=1)
    yield "int-5000-digits", re.sub(r'(_tokens": )\d+', r"\g<1>" + "9" * 5000, text)
    yield "nan-tokens", re.sub(r'(_tokens": )\d+', r"\g<1>NaN", text)
    yield "dup-keys-junk-last", re.sub(r'"(usage|model|role|content|messages|type)": ', r'"\1": 0, "\1": ', text)
    yield "dup-keys-list-last", re.sub(r'"(usage|content|messages|choices|output|traj|history|trajectory)": ',
                                       r'"\1": [1], "\1": ', text)
    yield "lone-surrogates", re.sub(r'"content": "', r'"content": "\\ud800', text)
    yield "nul-ids", re.sub(r'"(id|uuid|parentUuid|spanId|traceId)": "', r'"\1": "\\u0000../', text)
    yield "strings-100kb", re.sub(r'"content": "', '"content": "' + "A" * 100_000, text, count=2)
    yield "cr-only", text.replace("\n", "\r")
    yield "nul-bytes", text.replace("\n", "\n\x00")


def _cli(argv: list[str]) -> str | None:
    def hang(*_: Any) -> None:
        raise TimeoutError("no answer in 120 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(120)  # a hang becomes a failure; nothing here asserts on time
    err = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            main(argv)
    except SystemExit:
        pass
    except BaseException as exc:  # noqa: BLE001 - what the sweep counts
        return f"{type(exc).__name__}: {str(exc)[:150]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return "traceback printed" if "Traceback" in err.getvalue() else None


def test_importer_sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TOKPROF_MAX_INPUT_BYTES", str(8 << 20))
    monkeypatch.chdir(tmp_path)
    seeds = _seeds()
    tried, failures = 0, []
    for sname, (fname, text) in seeds.items():
        for vname, content in _variants(text):
            path = tmp_path / "in" / sname / vname / fname
            path.parent.mkdir(parents=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8", errors="surrogatepass")
            out = tmp_path / "out" / sname / vname
            for argv in (["import", str(path), "--out", str(out)], ["report", str(path), "--no-html", "--json"]):
                tried += 1
                problem = _cli(argv)
                if problem:
                    failures.append(f"{sname}/{vname}: tokprof {argv[0]}: {problem}")
    inputs = sum(1 for _ in _variants("x")) * len(seeds)
    stray = [p for p in tmp_path.rglob("*") if not any(p.is_relative_to(tmp_path / d) for d in ("in", "out", "home"))]
    with capsys.disabled():
        print(f"\nredteam5: importer sweep {inputs} inputs x 2 commands ({tried} runs), tracebacks/hangs "
              f"{len(failures)}, files written elsewhere {len(stray)}")
    assert failures == [] and stray == []


def _long_first_record(fmt: str) -> tuple[str, str]:
    big = "A" * 70_000  # longer than the 64 KiB the format sniffer looks at
    if fmt == "chatlog":
        return "log.jsonl", "\n".join(json.dumps(_chat_line(i, big)) for i in range(2)) + "\n"
    if fmt == "claude_code":
        return "s-1.jsonl", wild._cc_line("user", "u1", None, "2025-06-01T10:00:00.000Z",
                                          {"role": "user", "content": big}) + "\n" + _claude()
    meta = dict(wild.LEGACY_CODEX[0], instructions=big)
    return "rollout-2025-05-01T10-00-00-5973b6c0.jsonl", "\n".join(
        json.dumps(x) for x in [meta, *wild.LEGACY_CODEX[1:]]) + "\n"


@pytest.mark.parametrize("fmt", ["chatlog", "claude_code", "codex"])
def test_first_record_longer_than_the_sniffed_head(fmt: str, tmp_path: Path) -> None:
    """Before: profiler/interchange/__init__.py `_sniff` parsed the JSONL lines of the first 64 KiB only, so
    a log whose first record held a long prompt was "unknown trace format" (`tokprof import`/`ingest` refused
    it unless --format was given)."""
    from tokprof.profiler.interchange import detect_format

    name, text = _long_first_record(fmt)
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    assert detect_format(path) == fmt
    assert import_file(path).runs[0].llm_spans()
