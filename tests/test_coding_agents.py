"""Coding-agent transcripts (issue #17, point 2): Claude Code sessions and Codex CLI rollouts.

Fixtures (tests/data/coding_agents/) are written by hand after public transcripts' shape: a Claude Code
session with a streamed response logged twice under one ``message.id``, an entry duplicated verbatim, a
``Task`` sub-agent on a sidechain, a ``<synthetic>`` notice; a Codex rollout with a null ``token_count``,
a duplicated ``token_count`` and function/custom tool calls. Oracles: hand arithmetic on the fixture's
numbers, a plain-JSON sum deduplicated by message id, and Codex's own cumulative ``total_token_usage``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


from tokprof.cli import main
from tokprof.profiler.interchange import detect_format, import_file

DATA = Path(__file__).parent / "data" / "coding_agents"
CLAUDE_HOME = DATA / "claude"
CLAUDE_SESSION = next((CLAUDE_HOME / "projects" / "-home-dev-calc").glob("*.jsonl"))
CODEX_HOME = DATA / "codex"
CODEX_SESSION = next((CODEX_HOME / "sessions").rglob("rollout-*.jsonl"))


def _sum(run) -> dict[str, int]:  # noqa: ANN001
    out = dict.fromkeys(("input", "output", "cache_read", "cache_write", "cache_write_1h", "reasoning"), 0)
    for s in run.llm_spans():
        u = s.llm.usage
        assert all(u.source(f) == "provider" for f in ("input_tokens", "output_tokens"))
        out["input"] += u.input_tokens
        out["output"] += u.output_tokens
        out["cache_read"] += u.cache_read_tokens
        out["cache_write"] += u.cache_write_tokens
        out["cache_write_1h"] += u.cache_write_1h_tokens
        out["reasoning"] += u.reasoning_tokens
    return out


def independent_claude_sum(path: Path) -> dict[str, int]:
    """Plain JSON: last usage per message id, <synthetic> left out, Anthropic input + cache read + write."""
    by_id: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        e = json.loads(line)
        if e.get("type") == "assistant" and e["message"]["model"] != "<synthetic>":
            by_id[e["message"]["id"]] = e["message"]["usage"]
    return {
        "input": sum(u["input_tokens"] + u["cache_read_input_tokens"] + u["cache_creation_input_tokens"]
                     for u in by_id.values()),
        "output": sum(u["output_tokens"] for u in by_id.values()),
        "cache_read": sum(u["cache_read_input_tokens"] for u in by_id.values()),
        "cache_write": sum(u["cache_creation_input_tokens"] for u in by_id.values()),
        "cache_write_1h": sum(u["cache_creation"]["ephemeral_1h_input_tokens"] for u in by_id.values()),
        "calls": len(by_id),
    }


def test_claude_code_totals_match_hand_arithmetic_and_independent_sum():
    assert detect_format(CLAUDE_SESSION) == "claude_code"
    result = import_file(CLAUDE_SESSION)
    assert len(result.runs) == 1 and not result.errors
    run = result.runs[0]
    got = _sum(run)
    # Hand arithmetic on the fixture: msg A 3+1500+500+10000, B 5+300+12000, C 1200+800, D 20+2000,
    # E 8+100+12300 (A logged as two streamed entries, E written twice: each counted once).
    assert got == {"input": 40736, "output": 240, "cache_read": 36300, "cache_write": 3200,
                   "cache_write_1h": 600, "reasoning": 0}
    oracle = independent_claude_sum(CLAUDE_SESSION)
    assert len(run.llm_spans()) == oracle.pop("calls") == 5
    assert {k: got[k] for k in oracle} == oracle
    assert all(s.llm.provider == "anthropic" for s in run.llm_spans())


def test_claude_code_tree_sub_agent_under_its_task_tool():
    run = import_file(CLAUDE_SESSION).runs[0]
    by_id = {s.span_id: s for s in run.spans}
    tools = {s.name: s for s in run.spans if s.kind == "tool"}
    assert sorted(tools) == ["Grep", "Read", "Task"]
    sub = [s for s in run.spans if s.kind == "agent" and s.parent_id is not None]
    assert len(sub) == 1 and by_id[sub[0].parent_id] is tools["Task"]
    sub_calls = [s for s in run.llm_spans() if s.parent_id == sub[0].span_id]
    assert [s.llm.model for s in sub_calls] == ["claude-haiku-4-5-20251001"] * 2
    assert by_id[tools["Grep"].parent_id] is sub[0]
    # The Task tool lasts from its call (10:00:06) to its result (10:00:13).
    assert tools["Task"].end_ns - tools["Task"].start_ns == 7_000_000_000
    # The second main call's prompt holds the first call's tool result, in OpenAI format.
    second = [s for s in run.llm_spans() if s.parent_id == run.spans[0].span_id][1]
    assert any(m["role"] == "tool" and m["tool_call_id"] == "toolu_01" for m in second.llm.messages)


def test_claude_code_subagent_files_beside_the_session(tmp_path):
    """Newer Claude Code writes sidechains to <session>/subagents/agent-*.jsonl: same totals, same tree."""
    lines = CLAUDE_SESSION.read_text().splitlines()
    main_lines = [x for x in lines if not json.loads(x).get("isSidechain")]
    side = [x for x in lines if json.loads(x).get("isSidechain")]
    proj = tmp_path / "projects" / "p"
    (proj / CLAUDE_SESSION.stem / "subagents").mkdir(parents=True)
    (proj / CLAUDE_SESSION.name).write_text("\n".join(main_lines) + "\n")
    (proj / CLAUDE_SESSION.stem / "subagents" / "agent-a1b2.jsonl").write_text("\n".join(side) + "\n")
    run = import_file(proj / CLAUDE_SESSION.name).runs[0]
    assert _sum(run) == _sum(import_file(CLAUDE_SESSION).runs[0])
    assert len([s for s in run.spans if s.kind == "agent"]) == 2


def test_codex_totals_equal_its_own_cumulative_total():
    assert detect_format(CODEX_SESSION) == "codex"
    result = import_file(CODEX_SESSION)
    run = result.runs[0]
    last_total = [json.loads(x)["payload"]["info"]["total_token_usage"] for x in CODEX_SESSION.read_text().splitlines()
                  if '"token_count"' in x and '"total_token_usage"' in x][-1]
    got = _sum(run)
    assert len(run.llm_spans()) == 3  # four token_count events with usage, one a repeat
    assert got["input"] == last_total["input_tokens"] == 16700
    assert got["cache_read"] == last_total["cached_input_tokens"] == 10624
    assert got["output"] == last_total["output_tokens"] == 480  # total_tokens = input + output: reasoning inside
    assert got["reasoning"] == last_total["reasoning_output_tokens"] == 320
    assert sorted(s.name for s in run.spans if s.kind == "tool") == ["apply_patch", "shell"]
    assert all(s.llm.model == "gpt-5-codex" for s in run.llm_spans())


def test_cli_discovers_sessions(tmp_path, monkeypatch, capsys):
    out = tmp_path / "runs"
    assert main(["import", "--claude-code", "--path", str(CLAUDE_HOME), "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["runs"], s["calls"], s["tokens"]["input"], s["tokens"]["cache_write_1h"]) == (1, 5, 40736, 600)
    assert len(list(out.glob("*"))) >= 1
    monkeypatch.setenv("CODEX_HOME", str(CODEX_HOME))
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(CLAUDE_HOME))
    assert main(["import", "--codex", "--claude-code", "--no-save", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["runs"], s["calls"], s["tokens"]["input"]) == (2, 8, 40736 + 16700)
    assert {f["format"] for f in s["files"]} == {"claude_code", "codex"}


def test_cli_discovery_with_nothing_there_names_the_folder(tmp_path, capsys):
    assert main(["import", "--codex", "--path", str(tmp_path), "--no-save"]) != 0
    assert str(tmp_path) in capsys.readouterr().err


def test_broken_lines_are_reported_not_fatal(tmp_path):
    p = tmp_path / "s.jsonl"
    shutil.copy(CLAUDE_SESSION, p)
    with p.open("a") as fh:
        fh.write('{"type": "assistant", "message": {"id": "x"\n')
    result = import_file(p)
    assert len(result.runs) == 1 and [e.record for e in result.errors] == ["line 15"]


GEMINI_HOME = DATA / "gemini"


def test_gemini_cli_session_totals():
    path = next(GEMINI_HOME.rglob("session-*.json"))
    assert detect_format(path) == "gemini_cli"
    run = import_file(path).runs[0]
    got = _sum(run)
    # Hand arithmetic: input 8100 + 8300 (tool-use prompt 0), output 25+140 and 12+60 (thoughts billed as
    # output), cached 7900, reasoning 140+60; each total = input + output + thoughts + tool.
    assert (got["input"], got["output"], got["cache_read"], got["reasoning"]) == (16400, 237, 7900, 200)
    assert [s.name for s in run.spans if s.kind == "tool"] == ["list_directory"]
    assert all(s.llm.model == "gemini-2.5-pro" and s.llm.provider == "google" for s in run.llm_spans())


def test_cli_discovers_gemini_sessions(capsys):
    assert main(["import", "--gemini", "--path", str(GEMINI_HOME), "--no-save", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["runs"], s["calls"], s["tokens"]["input"]) == (1, 2, 16400)


# --- the same spirit as the benchmark importers: files vary, totals do not ----------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = dict(derandomize=True, deadline=None, database=None, max_examples=40,
            suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(**FUZZ)
@given(data=st.data())
def test_claude_code_variants_keep_totals(tmp_path, data):
    """Entries repeated (streaming, resumed sessions), lines out of order, unknown fields added, optional
    blocks dropped (the TTL split when no 1h write): the totals never move."""
    lines = [json.loads(x) for x in CLAUDE_SESSION.read_text().splitlines()]
    expected = _sum(import_file(CLAUDE_SESSION).runs[0])
    repeats = data.draw(st.lists(st.sampled_from(range(len(lines))), max_size=6))
    out = lines + [json.loads(json.dumps(lines[i])) for i in repeats]
    out = data.draw(st.permutations(out))
    for e in out:
        if data.draw(st.booleans()):
            e["someFutureField"] = {"x": [1, 2]}
            if isinstance(e.get("message"), dict):
                e["message"]["container"] = None
    p = tmp_path / "v.jsonl"
    p.write_text("\n".join(json.dumps(e) for e in out) + "\n")
    result = import_file(p, "claude_code")
    assert not result.errors and _sum(result.runs[0]) == expected


@settings(**FUZZ)
@given(data=st.data())
def test_codex_variants_keep_totals(tmp_path, data):
    lines = CODEX_SESSION.read_text().splitlines()
    expected = _sum(import_file(CODEX_SESSION).runs[0])
    token_lines = [i for i, x in enumerate(lines) if '"total_token_usage"' in x]
    out = list(lines)
    # Repeat token_count events right after themselves or anywhere later.
    for i in sorted(data.draw(st.lists(st.sampled_from(token_lines), max_size=4)), reverse=True):
        at = data.draw(st.integers(i + 1, len(out)))
        out.insert(at, lines[i])
    if data.draw(st.booleans()):
        out = [json.dumps({**json.loads(x), "extra": 1}) for x in out]
    p = tmp_path / "rollout-v.jsonl"
    p.write_text("\n".join(out) + "\n")
    result = import_file(p)
    assert not result.errors and _sum(result.runs[0]) == expected


def test_a_too_deep_line_skips_only_that_record(tmp_path):
    """One line nested past the JSON decoder's recursion limit is one bad record of a coding-agent transcript,
    not a failed file (the shared ``json_lines`` reader; the OTLP importer had its own fix)."""
    from test_qwen_opencode import QWEN_SESSION

    deep = '{"a": ' * 100_000 + "1" + "}" * 100_000
    for src in (CLAUDE_SESSION, CODEX_SESSION, QWEN_SESSION):
        clean = import_file(src)
        p = tmp_path / src.name
        shutil.copy(src, p)
        with p.open("a") as fh:
            fh.write(deep + "\n")
        result = import_file(p)
        assert [(e.record, e.reason.split(";")[0]) for e in result.errors] == \
            [(f"line {len(src.read_text().splitlines()) + 1}", "nested too deeply")], src
        assert [len(r.llm_spans()) for r in result.runs] == [len(r.llm_spans()) for r in clean.runs], src
