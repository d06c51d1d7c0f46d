"""Hostile tokprof run files beyond tests/test_attack_suite.py's HOSTILE list (red team, issue #21): each
built by breaking one thing in a small, valid two-call run. Shared by the attack suite's run-file tests.

``CASES`` every command must survive; ``DOWNSTREAM`` once crashed one command in a module past the loader
(each names the file:line where it crashed); the loader now repairs them at the boundary
(tokprof.profiler.integrity), and the attack suite runs each through that command.
"""

from __future__ import annotations

import copy
import gzip
import json
from typing import Any

_HEADER = {"type": "run", "schema": 1, "run_id": "hostile", "name": "base", "tags": {"team": "a"},
           "started_wall_ns": 1796171696218156870, "metadata": {"source": "live"}}
_SYS = {"type": "payload", "id": "p-sys", "data": {"role": "system", "content": "be nice"}}
_USER = {"type": "payload", "id": "p-user", "data": {"role": "user", "content": "hi there"}}
_ASSIST = {"type": "payload", "id": "p-assist", "data": {"role": "assistant", "content": "hello"}}
_MORE = {"type": "payload", "id": "p-more", "data": {"role": "user", "content": "more"}}


def _span(sid: str, parent: str | None, kind: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"span_id": sid, "parent_id": parent, "run_id": "hostile", "kind": kind, "name": name,
            "start_ns": 1000 * int(sid), "end_ns": 1000 * int(sid) + 500, "wall_start_ns": 1796171699367370899,
            "status": "ok", "type": "span", **extra}


def _llm(messages: Any, usage: dict[str, Any], **over: Any) -> dict[str, Any]:
    d = {"provider": None, "model": "gpt-4o", "params": {"temperature": 0.5}, "messages": messages,
         "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
         "output": {"role": "assistant", "content": "ok"}, "usage": usage, "cost": None}
    d.update(over)
    return d


def base() -> list[dict[str, Any]]:
    """A valid run: root agent -> agent -> (llm, tool, llm), the second call sharing the first's prefix."""
    return [
        _HEADER, _SYS, _USER,
        _span("3", "2", "llm", "gpt-4o", llm=_llm({"$refs": ["p-sys", "p-user"]},
                                                   {"input_tokens": 30, "output_tokens": 5})),
        _span("4", "2", "tool", "tool"),
        _ASSIST, _MORE,
        _span("5", "2", "llm", "gpt-4o", llm=_llm({"$base": "3", "$keep": 2, "$refs": ["p-assist", "p-more"]},
                                                   {"input_tokens": 40, "output_tokens": 2, "cache_read_tokens": 20})),
        _span("2", "1", "agent", "agent"),
        _span("1", None, "agent", "base"),
        {"type": "end", "ended_wall_ns": 1796171699373700836},
    ]


def dump(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def _with(pred: Any, change: Any) -> str:
    recs = copy.deepcopy(base())
    for r in recs:
        if isinstance(r, dict) and pred(r):
            change(r)
    return dump(recs)


def _is_llm(r: dict[str, Any]) -> bool:
    return r.get("kind") == "llm"


def _set_usage(**u: Any) -> Any:
    return lambda r: r["llm"].update(usage=u)


TEXT = dump(base())
CASES: list[tuple[str, str, str | bytes]] = [
    ("bom", "run.jsonl", "\ufeff" + TEXT),
    ("crlf", "run.jsonl", TEXT.replace("\n", "\r\n")),
    ("latin1-bytes", "run.jsonl", TEXT.encode().replace(b"be nice", b"be n\xe9ce\xff\xfe")),
    ("utf16", "run.jsonl", TEXT.encode("utf-16")),
    ("zero-byte", "run.jsonl", b""),
    ("only-newlines", "run.jsonl", "\n\n\n"),
    ("duplicate-span-ids", "run.jsonl", dump(base()[:4] + [base()[3]] + base()[4:])),
    ("duplicate-id-other-parent", "run.jsonl", dump(base()[:4] + [dict(base()[4], span_id="3")] + base()[5:])),
    ("parents-before-children", "run.jsonl", dump([base()[0]] + list(reversed(base()[1:-1])) + [base()[-1]])),
    ("missing-parent", "run.jsonl", dump([r for r in base() if r.get("span_id") != "2"])),
    ("unicode-and-control-tags", "run.jsonl",
     dump([dict(_HEADER, tags={"t\u202e\u0000": "\U0001F600\u200b", "[/]": "\x1b[31m"})] + base()[1:])),
    ("tags-is-list", "run.jsonl", dump([dict(_HEADER, tags=["a", "b"])] + base()[1:])),
    ("run-id-nul-and-path", "run.jsonl", dump([dict(_HEADER, run_id="a\x00b/../c")] + base()[1:])),
    ("run-id-dotdot", "run.jsonl", dump([dict(_HEADER, run_id="..")] + base()[1:])),
    ("run-id-empty", "run.jsonl", dump([dict(_HEADER, run_id="")] + base()[1:])),
    ("run-id-int", "run.jsonl", dump([dict(_HEADER, run_id=12)] + base()[1:])),
    ("two-headers", "run.jsonl", dump(base()[:-1] + base())),
    ("no-header", "run.jsonl", dump(base()[1:])),
    ("record-is-list", "run.jsonl", dump(base()[:3] + [[1, 2]] + base()[3:])),
    ("record-is-nan", "run.jsonl", dump(base()[:3]) + "7\nNaN\n" + dump(base()[3:])),
    ("base-points-forward", "run.jsonl",
     _with(lambda r: r.get("span_id") == "3", lambda r: r["llm"].update(messages={"$base": "5", "$keep": 1, "$refs": []}))),
    ("keep-negative", "run.jsonl",
     _with(lambda r: r.get("span_id") == "5", lambda r: r["llm"].update(messages={"$base": "3", "$keep": -3, "$refs": []}))),
    ("keep-huge", "run.jsonl",
     _with(lambda r: r.get("span_id") == "5", lambda r: r["llm"].update(messages={"$base": "3", "$keep": 10**12, "$refs": []}))),
    ("content-parts-junk", "run.jsonl", _with(lambda r: r.get("type") == "payload", lambda r: r.update(
        data={"role": "user", "content": [1, None, {"type": "image_url"}, {"type": "text", "text": 5}]}))),
    ("role-int", "run.jsonl", _with(lambda r: r.get("type") == "payload", lambda r: r.update(data={"role": 5, "content": "x"}))),
    ("model-int", "run.jsonl", _with(_is_llm, lambda r: r["llm"].update(model=123))),
    ("model-markup-controls", "run.jsonl", _with(_is_llm, lambda r: r["llm"].update(model="gpt-4o\u0000[/]\x1b]0;x\x07"))),
    ("cost-nan-string", "run.jsonl", _with(_is_llm, lambda r: r["llm"].update(cost="NaN"))),
    ("cost-overflow-string", "run.jsonl", _with(_is_llm, lambda r: r["llm"].update(cost="1e999999"))),
    ("cost-object", "run.jsonl", _with(_is_llm, lambda r: r["llm"].update(cost={"usd": "NaN"}))),
    ("usage-nan", "run.jsonl", _with(_is_llm, _set_usage(input_tokens=float("nan"), output_tokens=float("inf")))),
    ("usage-strings", "run.jsonl", _with(_is_llm, _set_usage(input_tokens="30", output_tokens="1e3"))),
    ("usage-cache-beyond-input", "run.jsonl",
     _with(_is_llm, _set_usage(input_tokens=3, output_tokens=1, cache_read_tokens=300, cache_write_tokens=10**18))),
    ("usage-sources-junk", "run.jsonl",
     _with(_is_llm, _set_usage(input_tokens=3, sources={"input_tokens": ["x"], "bogus": 1}))),
    ("span-name-null", "run.jsonl", _with(lambda r: r.get("type") == "span", lambda r: r.update(name=None))),
    ("span-name-list", "run.jsonl", _with(lambda r: r.get("type") == "span", lambda r: r.update(name=["x"]))),
    ("tag-value-list", "run.jsonl", dump([dict(_HEADER, tags={"team": ["a"]})] + base()[1:])),
    ("tag-value-object", "run.jsonl", dump([dict(_HEADER, tags={"team": {"a": 1}})] + base()[1:])),
    ("attributes-deep", "run.jsonl",
     _with(lambda r: r.get("kind") == "tool", lambda r: r.update(attributes={"a": json.loads("[" * 900 + "]" * 900)}))),
    ("kind-escape", "run.jsonl", _with(lambda r: r.get("kind") == "tool", lambda r: r.update(kind="\x1b[2J"))),
    ("tool-call-function-null", "run.jsonl", _with(lambda r: r.get("type") == "payload", lambda r: r.update(
        data={"role": "assistant", "content": None, "tool_calls": [{"id": "c", "function": None}]}))),
    ("gzip-truncated", "run.jsonl.gz", gzip.compress(TEXT.encode())[:-30]),
    ("gzip-garbage", "run.jsonl.gz", b"\x1f\x8b\x08\x00garbage"),
    ("gzip-valid", "run.jsonl.gz", gzip.compress(TEXT.encode())),
    ("json-document-nan", "t.json", '{"resourceSpans": NaN}'),
    ("otlp-nul-run-id-nan-tokens", "t.json", json.dumps({"resourceSpans": [{
        "resource": {"attributes": [{"key": "tokprof.run.id", "value": {"stringValue": "a\u0000b"}}]},
        "scopeSpans": [{"spans": [{"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "startTimeUnixNano": "1",
                                   "endTimeUnixNano": "2", "attributes": [
                                       {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                                       {"key": "gen_ai.usage.input_tokens", "value": {"doubleValue": float("nan")}}]}]}]}]})),
    ("chatlog-nan-negative", "c.jsonl", json.dumps({"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                                                    "response": {"usage": {"prompt_tokens": float("nan"), "completion_tokens": -3}}}) + "\n"),
]

DOWNSTREAM: list[tuple[str, str, str | bytes, str, str]] = [
    # (name, file name, content, command that crashed, where it crashed before the loader repaired it)
    ("tool-call-entry-not-object", "run.jsonl", _with(lambda r: r.get("type") == "payload", lambda r: r.update(
        data={"role": "assistant", "content": None, "tool_calls": [5, {"function": {"name": 5, "arguments": {}}}]})),
     "show", "optimizers/billing.py:191 (call.get on a non-dict tool call; the loader, profiler/store.py, accepts it)"),
    ("role-list", "run.jsonl", _with(lambda r: r.get("type") == "payload", lambda r: r.update(data={"role": ["x"], "content": "x"})),
     "whatif", "profiler/providers/chat_format.py:582 (unhashable role; the loader accepts a non-string role)"),
    ("tag-value-list-ingest", "run.jsonl", dump([dict(_HEADER, tags={"team": ["a"]})] + base()[1:]),
     "ingest", "tokprof/fleet/rows.py:131 (unhashable tag value)"),
    ("tag-value-int-ingest", "run.jsonl", dump([dict(_HEADER, tags={"team": -1})] + base()[1:]),
     "ingest", "tokprof/fleet (pyarrow ArrowTypeError: tag value not a string)"),
    ("start-ns-beyond-int64", "run.jsonl", _with(lambda r: r.get("span_id") == "3", lambda r: r.update(start_ns=10**30)),
     "ingest", "tokprof/fleet (pyarrow OverflowError; the loader accepts a timestamp beyond int64)"),
    ("wall-start-ns-1e308", "run.jsonl", _with(lambda r: r.get("span_id") == "3", lambda r: r.update(wall_start_ns=1e308)),
     "ingest", "tokprof/fleet/rows.py:38 (OverflowError converting the wall time)"),
]
