"""Qwen Code and OpenCode sessions (issue #17, point 2).

Fixtures (tests/data/coding_agents/qwen, .../opencode) are written by hand after the formats in the two
projects' sources (QwenLM/qwen-code ``chatRecordingService.ts`` and the OpenAI converter; sst/opencode
``storage.ts``, ``session/processor.ts``, ``Session.getUsage``): see each importer's docstring. Oracles: hand
arithmetic on the fixtures' numbers, and plain-JSON sums computed another way (billed output as
``totalTokenCount - promptTokenCount``; OpenCode's per-step parts, never the message's overwritten tokens).
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path

from tokprof.cli import main
from tokprof.profiler.interchange import detect_format, import_file, import_text

DATA = Path(__file__).parent / "data" / "coding_agents"
QWEN_HOME = DATA / "qwen"
QWEN_SESSION = next((QWEN_HOME / "projects").rglob("*.jsonl"))
OPENCODE_HOME = DATA / "opencode"
OC_STORAGE = OPENCODE_HOME / "storage"
OC_PARENT = OC_STORAGE / "session" / "proj_calc" / "ses_5a1f0c2e3ffeAbCdEf012345.json"
OC_EXPORT = OPENCODE_HOME / "export-fix-add.json"


def _sum(run) -> dict[str, int]:  # noqa: ANN001
    out = dict.fromkeys(("calls", "input", "output", "cache_read", "cache_write", "reasoning"), 0)
    for s in run.llm_spans():
        u = s.llm.usage
        assert all(u.source(f) == "provider" for f in ("input_tokens", "output_tokens"))
        out["calls"] += 1
        out["input"] += u.input_tokens
        out["output"] += u.output_tokens
        out["cache_read"] += u.cache_read_tokens
        out["cache_write"] += u.cache_write_tokens
        out["reasoning"] += u.reasoning_tokens
    return out


def independent_qwen_sum(path: Path) -> dict[str, int]:
    """Plain JSON, another way round: one usage per assistant uuid; billed output = total - prompt (true in
    both dialects: thoughts inside candidates or beside them); input = prompt, plus the cache when the cache
    is larger than the prompt (a prompt count that excluded it)."""
    by_uuid = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["type"] == "assistant" and "usageMetadata" in r:
            by_uuid[r["uuid"]] = r["usageMetadata"]
    inp = out = cached = 0
    for u in by_uuid.values():
        c = u.get("cachedContentTokenCount", 0)
        inp += u["promptTokenCount"] + (c if c > u["promptTokenCount"] else 0)
        out += u["totalTokenCount"] - u["promptTokenCount"]
        cached += c
    return {"calls": len(by_uuid), "input": inp, "output": out, "cache_read": cached}


def test_qwen_code_totals_match_hand_arithmetic_and_independent_sum():
    assert detect_format(QWEN_SESSION) == "qwen_code"
    result = import_file(QWEN_SESSION)
    assert result.errors == [] and len(result.runs) == 1
    got = _sum(result.runs[0])
    # Hand arithmetic: 6 distinct calls (a3 appended twice counts once; the ui_telemetry replay of a1 is not
    # a call). input 12000 + 12400 + 3000 + (100 + 3500 cache excluded by that prompt) + 13000 + 500 = 44500;
    # output 150 + 60 + 500 + 20 + 30 + (20 + 100 thoughts beside candidates) = 880;
    # cache 8000 + 12000 + 3500 + 12400 = 35900; reasoning 40 (inside candidates) + 100 = 140.
    assert got == {"calls": 6, "input": 44500, "output": 880, "cache_read": 35900, "cache_write": 0,
                   "reasoning": 140}
    ind = independent_qwen_sum(QWEN_SESSION)
    assert {k: got[k] for k in ind} == ind


def test_qwen_code_tree_and_labels():
    run = import_file(QWEN_SESSION).runs[0]
    by_id = {s.span_id: s for s in run.spans}
    sub = next(s for s in run.spans if s.kind == "agent" and s.parent_id)
    assert by_id[sub.parent_id].kind == "tool" and by_id[sub.parent_id].name == "task"  # under its launcher
    sub_calls = [s for s in run.llm_spans() if s.parent_id == sub.span_id]
    assert [s.llm.usage.input_tokens for s in sub_calls] == [3000, 3600]
    assert [s.name for s in run.spans if s.kind == "tool"] == ["read_file", "task", "write_file"]
    by_model = {s.llm.model: s for s in run.llm_spans()}
    # thoughts inside candidates (OpenAI path) may be Qwen's estimate; beside them (Gemini) they are reported
    first = min(run.llm_spans(), key=lambda s: s.start_ns)
    assert first.llm.usage.source("reasoning_tokens") == "estimated"
    assert by_model["gemini-2.5-pro"].llm.usage.source("reasoning_tokens") == "provider"
    assert by_model["gemini-2.5-pro"].llm.provider == "google"
    # the second call saw the conversation: prompt, first answer with its call, the tool result
    second = sorted(run.llm_spans(), key=lambda s: s.start_ns)[1]
    assert [m["role"] for m in second.llm.messages] == ["user", "assistant", "tool"]
    assert any("counted once" in n for n in run.metadata["notes"])


def test_qwen_code_bad_lines_are_reported_not_fatal(tmp_path):
    p = tmp_path / "s.jsonl"
    shutil.copy(QWEN_SESSION, p)
    with p.open("a") as fh:
        fh.write('{"type": "assistant", "uuid": "x"\n')
        fh.write("[" * 100_000 + "]" * 100_000 + "\n")  # nested too deep for the JSON parser
    result = import_file(p, "qwen_code")
    assert len(result.runs) == 1 and _sum(result.runs[0])["input"] == 44500
    assert [e.record for e in result.errors] == ["line 16", "line 17"]
    assert "nested too deeply" in str(result.errors[1])


def test_qwen_code_legacy_gemini_shaped_session_is_read():
    legacy = next((DATA / "gemini").rglob("session-*.json")).read_text()
    result = import_text(legacy, "qwen_code")
    assert result.format == "qwen_code" and result.runs[0].tags["agent"] == "qwen-code"
    assert _sum(result.runs[0])["input"] == 16400  # the Gemini CLI fixture's own total


def independent_opencode_sum(storage: Path) -> dict[str, object]:
    """Plain JSON over the storage folder: every step-finish part is a call; a message with none is one call
    from its own tokens. Billed input including the cache = total - output (- reasoning when the parts sum
    to total with it) where ``total`` is written; else the stored input (OpenAI's includes the cache)."""
    stepped = set()
    rows = []
    for f in sorted((storage / "part").rglob("*.json")):
        p = json.loads(f.read_text())
        if p["type"] == "step-finish":
            stepped.add(p["messageID"])
            rows.append((p["tokens"], p["cost"]))
    for f in sorted((storage / "message").rglob("*.json")):
        m = json.loads(f.read_text())
        if m["role"] == "assistant" and m["id"] not in stepped:
            rows.append((m["tokens"], m["cost"]))
    inp = out = 0
    cost = Decimal(0)
    for t, c in rows:
        if "total" in t:
            rsn_apart = t["input"] + t["output"] + t["reasoning"] + t["cache"]["read"] + t["cache"]["write"] == t["total"]
            billed_out = t["output"] + (t["reasoning"] if rsn_apart else 0)
            inp += t["total"] - billed_out
            out += billed_out
        else:
            inp += t["input"]
            out += t["output"]
        cost += Decimal(str(c))
    return {"calls": len(rows), "input": inp, "output": out, "cost": cost}


def test_opencode_storage_totals_match_hand_arithmetic_and_independent_sum():
    assert detect_format(OC_PARENT) == "opencode"
    result = import_file(OC_PARENT)
    assert result.errors == [] and len(result.runs) == 1
    run = result.runs[0]
    got = _sum(run)
    # Hand arithmetic: 3 steps of the parent (input excludes cache, `total` written) + the child session's one
    # older-style message (OpenAI: input includes cache, no total): input (1500 + 9000) + (300 + 9000 + 1700)
    # + (50 + 10700) + 4000 = 36250; output 200 + 80 + (120 + 64 reasoning apart) + 300 = 764.
    # The parent message's own tokens (= its last step's) are never added again.
    assert got == {"calls": 4, "input": 36250, "output": 764, "cache_read": 21748, "cache_write": 10700,
                   "reasoning": 164}
    ind = independent_opencode_sum(OC_STORAGE)
    assert (got["calls"], got["input"], got["output"]) == (ind["calls"], ind["input"], ind["output"])
    recorded = [s.llm.cost for s in run.llm_spans() if s.llm.cost is not None]
    assert [c.source for c in recorded] == ["recorded"] * 3  # the child's cost 0 is left to the price table
    assert sum(c.amount for c in recorded) == ind["cost"] == Decimal("0.0549")  # = the message's own sum


def test_opencode_child_session_is_a_child_span_under_its_task_tool():
    run = import_file(OC_PARENT).runs[0]
    by_id = {s.span_id: s for s in run.spans}
    sub = next(s for s in run.spans if s.kind == "agent" and s.parent_id)
    assert by_id[sub.parent_id].name == "task" and sub.attributes["session_id"] == "ses_5a1f0d9a1ffeGhIjKl678901"
    (child_call,) = [s for s in run.llm_spans() if s.parent_id == sub.span_id]
    assert (child_call.llm.model, child_call.llm.provider) == ("gpt-5-mini", "openai")
    failed = next(s for s in run.spans if s.kind == "tool" and s.name == "write")
    assert failed.status == "error" and failed.parent_id == sub.span_id and "permission" in failed.error
    # each step saw the conversation before it: prompt; + step 1's answer and its tool result; ...
    steps = sorted((s for s in run.llm_spans() if s.parent_id == run.spans[0].span_id), key=lambda s: s.start_ns)
    assert [len(s.llm.messages) for s in steps] == [1, 3, 5]


def test_opencode_export_equals_storage_and_duplicate_parts_count_once():
    assert detect_format(OC_EXPORT) == "opencode"
    run = import_file(OC_EXPORT).runs[0]  # session A only; a step-finish part appears twice in it
    got = _sum(run)
    assert got == {"calls": 3, "input": 32250, "output": 464, "cache_read": 19700, "cache_write": 10700,
                   "reasoning": 64}
    storage = import_file(OC_PARENT).runs[0]
    top = [s for s in storage.llm_spans() if s.parent_id == storage.spans[0].span_id]
    assert [(s.llm.usage.input_tokens, s.llm.usage.output_tokens) for s in top] == \
        [(s.llm.usage.input_tokens, s.llm.usage.output_tokens) for s in run.llm_spans()]


def test_opencode_usage_conventions_are_detected_never_summed_twice():
    from tokprof.profiler.interchange.opencode import to_usage

    # no total (older release), Anthropic: the AI SDK's input excluded the cache
    u, conv = to_usage({"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 900, "write": 90}}, "anthropic")
    assert (u.input_tokens, u.cache_read_tokens, conv) == (1000, 900, "input excludes cache")
    # no total, OpenAI: input included the cache
    u, _ = to_usage({"input": 1000, "output": 5, "reasoning": 3, "cache": {"read": 900, "write": 0}}, "openai")
    assert (u.input_tokens, u.output_tokens) == (1000, 5)
    # a cache larger than the input can only be outside it, whatever the provider
    u, _ = to_usage({"input": 10, "output": 5, "reasoning": 0, "cache": {"read": 900, "write": 0}}, "openrouter")
    assert u.input_tokens == 910
    # total written with the cache inside input (a release that did not subtract it)
    u, conv = to_usage({"input": 1000, "output": 5, "reasoning": 0, "cache": {"read": 900, "write": 0},
                        "total": 1005}, "openai")
    assert (u.input_tokens, conv) == (1000, "input includes cache")


def test_cli_discovers_qwen_and_opencode_sessions(tmp_path, capsys, monkeypatch):
    assert main(["import", "--qwen-code", "--path", str(QWEN_HOME), "--no-save", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["runs"], s["calls"], s["tokens"]["input"]) == (1, 6, 44500)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    shutil.copytree(OC_STORAGE, tmp_path / "opencode" / "storage")
    out = tmp_path / "runs"
    assert main(["import", "--opencode", "--out", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    # the child session is imported inside its parent, not as a second run
    assert (s["runs"], s["calls"], s["tokens"]["input"]) == (1, 4, 36250)
    assert [f["format"] for f in s["files"]] == ["opencode"]
    assert len(list(out.glob("*.jsonl"))) == 1


def test_opencode_session_without_messages_is_one_clear_error(tmp_path):
    lone = tmp_path / "storage" / "session" / "p" / "ses_x.json"
    lone.parent.mkdir(parents=True)
    lone.write_text(json.dumps({"id": "ses_x", "projectID": "p", "title": "t", "time": {"created": 1}}))
    assert main(["import", str(lone), "--no-save"]) != 0
    result_err = None
    try:
        import_file(lone)
    except ValueError as exc:
        result_err = str(exc)
    assert result_err and "ses_x" in result_err and "no assistant step" in result_err


# --- files vary, totals do not ---------------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ = dict(derandomize=True, deadline=None, database=None, max_examples=40,
            suppress_health_check=[HealthCheck.function_scoped_fixture])


@settings(**FUZZ)
@given(data=st.data())
def test_qwen_code_variants_keep_totals(tmp_path, data):
    """Records repeated (resume copies, retried appends), lines shuffled, unknown fields added to records and
    to ``usageMetadata`` (Gemini's ``trafficType``, ``promptTokensDetails``), zero cache counts dropped,
    telemetry replays inserted: the totals never move."""
    lines = [json.loads(x) for x in QWEN_SESSION.read_text().splitlines()]
    expected = _sum(import_file(QWEN_SESSION).runs[0])
    repeats = data.draw(st.lists(st.sampled_from(range(len(lines))), max_size=6))
    out = lines + [json.loads(json.dumps(lines[i])) for i in repeats]
    out = data.draw(st.permutations(out))
    for r in out:
        if data.draw(st.booleans()):
            r["someFutureField"] = {"x": [1, 2]}
            um = r.get("usageMetadata")
            if um is not None:
                um["trafficType"] = "ON_DEMAND"
                um["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": um["promptTokenCount"]}]
                if um.get("cachedContentTokenCount") == 0:
                    del um["cachedContentTokenCount"]
    if data.draw(st.booleans()):
        out.append({"uuid": "tel", "sessionId": lines[0]["sessionId"], "timestamp": lines[3]["timestamp"],
                    "type": "system", "subtype": "ui_telemetry",
                    "systemPayload": {"uiEvent": {"input_token_count": 99999, "output_token_count": 99999}}})
    p = tmp_path / "v.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in out) + "\n")
    result = import_file(p)
    assert not result.errors and _sum(result.runs[0]) == expected


def _storage_as_export(inline_children: bool) -> dict:
    """OC_STORAGE as one `opencode export` document (the parent; optionally its child's messages inline)."""
    sessions = {json.loads(f.read_text())["id"]: json.loads(f.read_text())
                for f in (OC_STORAGE / "session").rglob("*.json")}
    parent = next(s for s in sessions.values() if not s.get("parentID"))
    messages = []
    for sid in sessions if inline_children else [parent["id"]]:
        for mf in sorted((OC_STORAGE / "message" / sid).glob("*.json")):
            info = json.loads(mf.read_text())
            parts = [json.loads(f.read_text()) for f in sorted((OC_STORAGE / "part" / info["id"]).glob("*.json"))]
            messages.append({"info": info, "parts": parts})
    return {"info": parent, "messages": messages}


@settings(**FUZZ)
@given(data=st.data())
def test_opencode_export_variants_keep_totals(tmp_path, data):
    """An export with the child session inline, parts and messages shuffled, parts repeated (a part file is
    rewritten as it streams), unknown fields added: equal to the storage folder's run."""
    expected = _sum(import_file(OC_PARENT).runs[0])
    doc = _storage_as_export(inline_children=True)
    doc["messages"] = data.draw(st.permutations(doc["messages"]))
    for m in doc["messages"]:
        parts = m["parts"] + [json.loads(json.dumps(p)) for p in
                              data.draw(st.lists(st.sampled_from(m["parts"]), max_size=3))]
        m["parts"] = data.draw(st.permutations(parts))
        if data.draw(st.booleans()):
            m["info"]["someFutureField"] = [1]
            for p in m["parts"]:
                p["metadata"] = {"openai": {"itemId": "x"}}
    p = tmp_path / "export.json"
    p.write_text(json.dumps(doc))
    result = import_file(p)
    assert not result.errors and _sum(result.runs[0]) == expected
    run = result.runs[0]
    sub = next(s for s in run.spans if s.kind == "agent" and s.parent_id)
    assert {s.span_id: s for s in run.spans}[sub.parent_id].name == "task"


def _storage_as_db(db: Path) -> Path:
    """OC_STORAGE written into OpenCode's SQLite layout (session.sql.ts: ``session`` columns; ``message`` and
    ``part`` rows whose ``data`` is the stored object without its ids)."""
    import sqlite3

    con = sqlite3.connect(db)
    con.executescript("""
        CREATE TABLE session (id TEXT PRIMARY KEY, project_id TEXT NOT NULL, workspace_id TEXT, parent_id TEXT,
            slug TEXT NOT NULL, directory TEXT NOT NULL, path TEXT, title TEXT NOT NULL, version TEXT NOT NULL,
            cost REAL NOT NULL DEFAULT 0, time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL);
        CREATE TABLE message (id TEXT PRIMARY KEY, session_id TEXT NOT NULL, time_created INTEGER NOT NULL,
            time_updated INTEGER NOT NULL, data TEXT NOT NULL);
        CREATE TABLE part (id TEXT PRIMARY KEY, message_id TEXT NOT NULL, session_id TEXT NOT NULL,
            time_created INTEGER NOT NULL, time_updated INTEGER NOT NULL, data TEXT NOT NULL);""")
    for f in (OC_STORAGE / "session").rglob("*.json"):
        s = json.loads(f.read_text())
        con.execute("INSERT INTO session (id, project_id, parent_id, slug, directory, title, version, time_created,"
                    " time_updated) VALUES (?,?,?,?,?,?,?,?,?)", (s["id"], s["projectID"], s.get("parentID"), "slug",
                                                                  s["directory"], s["title"], s["version"],
                                                                  s["time"]["created"], s["time"]["updated"]))
    for f in (OC_STORAGE / "message").rglob("*.json"):
        m = json.loads(f.read_text())
        mid, sid = m.pop("id"), m.pop("sessionID")
        con.execute("INSERT INTO message VALUES (?,?,?,?,?)", (mid, sid, 0, 0, json.dumps(m)))
    for f in (OC_STORAGE / "part").rglob("*.json"):
        p = json.loads(f.read_text())
        pid, mid, sid = p.pop("id"), p.pop("messageID"), p.pop("sessionID")
        con.execute("INSERT INTO part VALUES (?,?,?,?,?,?)", (pid, mid, sid, 0, 0, json.dumps(p)))
    con.commit()
    con.close()
    return db


def test_opencode_sqlite_database_equals_the_json_storage(tmp_path, capsys):
    db = _storage_as_db(tmp_path / "opencode.db")
    assert detect_format(db) == "opencode"
    result = import_file(db)
    assert result.errors == [] and len(result.runs) == 1  # the child session is inside its parent
    run = result.runs[0]
    assert _sum(run) == _sum(import_file(OC_PARENT).runs[0])
    sub = next(s for s in run.spans if s.kind == "agent" and s.parent_id)
    assert {s.span_id: s for s in run.spans}[sub.parent_id].name == "task"
    # discovery prefers the database (current releases migrated the JSON storage into it)
    shutil.copytree(OC_STORAGE, tmp_path / "storage")
    assert main(["import", "--opencode", "--path", str(tmp_path), "--no-save", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["runs"], s["calls"], s["tokens"]["input"]) == (1, 4, 36250)
    assert [Path(f["path"]).name for f in s["files"]] == ["opencode.db"]


def test_a_database_that_is_not_opencodes_is_one_clear_error(tmp_path):
    import sqlite3

    db = tmp_path / "other.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    try:
        import_file(db)
    except ValueError as exc:
        assert "other.db" in str(exc) and "not an OpenCode database" in str(exc)
    else:
        raise AssertionError("expected an error")


def test_a_fifo_named_like_a_database_is_never_opened(tmp_path):
    """Sniffing for OpenCode's SQLite file reads magic bytes only from regular files (a FIFO would block)."""
    import os

    from tokprof.profiler.interchange.opencode import is_db

    fifo = tmp_path / "opencode.db"
    os.mkfifo(fifo)
    assert not is_db(fifo)
    try:
        import_file(fifo)
    except ValueError as exc:
        assert "not a regular file" in str(exc)
    else:
        raise AssertionError("expected an error")
