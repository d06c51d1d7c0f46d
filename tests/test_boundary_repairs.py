"""Issue #21 point 7: the run loader repairs wrong types and out-of-range values at the boundary, reports
each repair by record (``run.metadata["fields_repaired"]`` and one DamagedRunWarning naming the file), and
loads the rest. Oracles are the hostile values themselves: what each must become is stated by hand."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import pytest

from tokprof.profiler import load_run
from tokprof.profiler.integrity import MAX_TOKENS, REPAIRS_KEY, as_text, time_ns, token_count
from tokprof.profiler.model import Run
from tokprof.profiler.store import DamagedRunWarning
from tests.hostile_runs import TEXT, dump
from tests.hostile_runs import base as _shared_base


def base() -> list[dict[str, Any]]:
    """A fresh copy of the valid two-call run (hostile_runs' records are shared module objects)."""
    return copy.deepcopy(_shared_base())


def _load(tmp_path: Path, records: list[dict[str, Any]]) -> tuple[Run, list[str]]:
    p = tmp_path / "run.jsonl"
    p.write_text(dump(records))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = load_run(p)
    return run, [str(w.message) for w in caught if issubclass(w.category, DamagedRunWarning)]


def _span(run: Run, sid: str) -> Any:
    return run.by_id()[sid]


def test_clean_file_has_no_repairs(tmp_path: Path) -> None:
    p = tmp_path / "run.jsonl"
    p.write_text(TEXT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = load_run(p)
    assert REPAIRS_KEY not in run.metadata and run.complete and len(run.spans) == 5


def test_token_strings_read_or_missing(tmp_path: Path) -> None:
    recs = base()
    recs[3]["llm"]["usage"] = {"input_tokens": "30", "output_tokens": "1e3", "cache_read_tokens": 12.0,
                               "reasoning_tokens": -3, "sources": {"output_tokens": "provider"}}
    recs[7]["llm"]["usage"] = {"input_tokens": 40, "output_tokens": float("nan"), "cache_write_tokens": 10**18,
                               "cache_read_tokens": MAX_TOKENS + 1}
    run, warned = _load(tmp_path, recs)
    u3, u5 = _span(run, "3").llm.usage, _span(run, "5").llm.usage
    # "30" is a clean integer: the span is kept (it used to be dropped whole) with 30 tokens
    assert (u3.input_tokens, u3.cache_read_tokens) == (30, 12)
    # "1e3", -3, NaN, 10**18 and 2**53+1 are not token counts: missing, never the number; a missing output
    # count is then counted locally from the recorded output (labelled counted), as an importer does
    assert u3.output_tokens != 1000 and u3.sources.get("output_tokens") in (None, "counted")
    assert u3.sources.get("reasoning_tokens") is None
    assert u5.input_tokens == 40 and u5.sources.get("output_tokens") in (None, "counted")
    assert u5.sources.get("cache_write_tokens") is None and u5.sources.get("cache_read_tokens") is None
    repaired = run.metadata[REPAIRS_KEY]
    assert 'line 4 (span 3): input_tokens "30" read as 30' in repaired
    assert 'line 4 (span 3): output_tokens "1e3" is not a token count; treated as missing' in repaired
    assert "line 8 (span 5): cache_write_tokens 1000000000000000000 is not a token count; treated as missing" \
        in repaired
    assert len(repaired) == 7 and len(warned) == 1 and str(tmp_path / "run.jsonl") in warned[0]
    assert "7 field(s) repaired" in warned[0]


def test_names_tags_and_times(tmp_path: Path) -> None:
    recs = base()
    recs[0]["tags"] = {"team": ["a"], "n": -1, "ok": "x", "none": None}
    recs[0]["started_wall_ns"] = float("inf")
    recs[3].update(name=None, start_ns=10**30, end_ns="12", wall_start_ns=1e308, tags={"k": {"a": 1}})
    recs[4]["name"] = ["x"]
    recs[-1]["ended_wall_ns"] = -(2**63)
    run, _ = _load(tmp_path, recs)
    assert run.tags == {"team": '["a"]', "n": "-1", "ok": "x", "none": "null"}
    assert run.started_wall_ns == 0 and run.ended_wall_ns is None
    s3, s4 = _span(run, "3"), _span(run, "4")
    assert (s3.name, s4.name) == ("", '["x"]')
    assert (s3.start_ns, s3.end_ns, s3.wall_start_ns) == (0, 12, 0)
    assert s3.tags == {"k": '{"a": 1}'}
    repaired = run.metadata[REPAIRS_KEY]
    assert "line 4 (span 3): span name null is not a string; treated as ''" in repaired
    assert "line 4 (span 3): start_ns 1000000000000000000000000000000 is not a 64-bit nanosecond time; " \
           "treated as unknown" in repaired
    assert "line 11 (end): ended_wall_ns -9223372036854775808 is not a 64-bit nanosecond time; " \
           "treated as unknown" in repaired
    assert run.complete  # a repaired field loses no record


def test_roles_and_tool_calls(tmp_path: Path) -> None:
    recs = base()
    recs[1]["data"] = {"role": ["x"], "content": "be nice"}
    recs[5]["data"] = {"role": "assistant", "content": None,
                       "tool_calls": [5, {"id": "c", "function": {"name": "f", "arguments": "{}"}}, None]}
    recs[6]["data"] = {"role": "user", "content": "more", "tool_calls": "junk"}
    run, _ = _load(tmp_path, recs)
    msgs = _span(run, "5").llm.messages
    assert [m["role"] for m in msgs] == ['["x"]', "user", "assistant", "user"]
    assert msgs[2]["tool_calls"] == [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]
    assert "tool_calls" not in msgs[3]
    repaired = run.metadata[REPAIRS_KEY]
    assert repaired == ['line 2 (payload p-sys): message role ["x"] is not a string; kept as its JSON text',
                        "line 6 (payload p-assist): 2 tool call(s) not an object (5); dropped",
                        'line 7 (payload p-more): tool_calls "junk" is not a list; dropped']


def test_repairs_listed_are_bounded(tmp_path: Path) -> None:
    recs = base()
    head, tail = recs[:3], recs[3:]
    many = [dict(tail[1], span_id=str(100 + i), name=None) for i in range(500)]
    run, warned = _load(tmp_path, head + many + tail)
    assert len(run.metadata[REPAIRS_KEY]) == 200 and run.metadata[REPAIRS_KEY + "_not_listed"] == 300
    assert "500 field(s) repaired" in warned[0] and len(run.spans) == 505


@pytest.mark.parametrize("value,expected", [(30, 30), ("30", 30), (30.0, 30), ("030", 30), (0, 0),
                                            (MAX_TOKENS, MAX_TOKENS), (MAX_TOKENS + 1, None), ("1e3", None),
                                            ("-3", None), (-3, None), (float("nan"), None), (float("inf"), None),
                                            (True, None), ("", None), ("٣", None), (1.5, None), ([3], None)])
def test_token_count(value: Any, expected: int | None) -> None:
    assert token_count(value) == expected


@pytest.mark.parametrize("value,expected", [(5, 5), (-5, -5), ("12", 12), (1e18, 10**18), (2**63 - 1, 2**63 - 1),
                                            (2**63, None), (-(2**63), None), (1e308, None), (float("inf"), None),
                                            ("inf", None), (False, None), ("9" * 5000, None), (1.5, None)])
def test_time_ns(value: Any, expected: int | None) -> None:
    assert time_ns(value) == expected


def test_as_text() -> None:
    deep: Any = []
    for _ in range(5000):
        deep = [deep]
    assert (as_text("a"), as_text(5), as_text(None), as_text({"b": 1, "a": [2]})) == ("a", "5", "null",
                                                                                      '{"a": [2], "b": 1}')
    assert as_text(deep) == "<list>"
    assert json.loads(as_text(["ü"])) == ["ü"]


def test_importers_repair_roles_and_tool_calls(tmp_path: Path) -> None:
    """Every importer's runs pass :func:`repair_run` (interchange._checked): a chat log with a list role and
    a non-object tool call imports, repaired and reported as partial."""
    from tokprof.profiler.interchange import import_file

    line = {"request": {"model": "gpt-4o", "messages": [
        {"role": ["x"], "content": "hi"},
        {"role": "assistant", "content": None,
         "tool_calls": [5, {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
        "response": {"choices": [{"message": {"role": "assistant", "content": "yo"}}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": 1}}}
    p = tmp_path / "c.jsonl"
    p.write_text(json.dumps(line) + "\n")
    result = import_file(p)
    (run,) = result.runs
    (call,) = run.llm_spans()
    assert [m["role"] for m in call.llm.messages] == ['["x"]', "assistant"]
    assert [c["id"] for c in call.llm.messages[1]["tool_calls"]] == ["c"]
    assert call.llm.usage.input_tokens == 3 and not result.errors
    assert len(run.metadata[REPAIRS_KEY]) == 2 and "2 field(s) repaired" in result.partial[0]


def test_carried_survives_junk_parts_and_absurd_costs() -> None:
    """profiler/carried.py used to raise on junk content parts (TypeError) and on a cost beyond Decimal's
    precision at the share quantum (InvalidOperation), and the report dropped the carried view."""
    from decimal import Decimal

    from tokprof.profiler.carried import CallPrice, carried_costs
    from tokprof.profiler.model import LLMCall, Span, Usage

    def call(sid: str, messages: list[Any]) -> Span:
        u = Usage()
        u.set("input_tokens", 100, "provider")
        return Span(sid, "root", "r", "llm", "c", 10 * int(sid), 10 * int(sid),
                    llm=LLMCall(model="gpt-4o", messages=messages, usage=u))

    junk = {"role": "user", "content": [1, None, {"type": "image_url"}, {"type": "text", "text": 5}],
            "tool_calls": [{"function": "x"}]}
    root = Span("root", None, "r", "agent", "root", 0, 0)
    run = Run(run_id="r", spans=[root, call("1", [junk]), call("2", [junk, {"role": "user", "content": "more"}])])
    ok = CallPrice(Decimal("0.001"), Decimal("0.00001"), Decimal("0.000005"), Decimal("0.0000125"))
    absurd = CallPrice(Decimal("1e40"), Decimal("1e38"), Decimal("1e37"), Decimal("1e38"))
    carried = carried_costs(run, {"1": ok, "2": absurd})
    # call 1 priced exactly (its 100 tokens all introduced by root); call 2 unpriced, tokens still attributed
    assert carried.unpriced_calls == 1
    assert carried.cost == {"root": Decimal("0.001")}
    assert carried.tokens == {"root": 200}


# ---------------------------------------------------------------------------------------------------
# usage sources, a non-string model, a recorded cost that cannot be read (each failed the whole file)
# ---------------------------------------------------------------------------------------------------
def _strict_load(tmp_path: Path, records: list[dict[str, Any]]) -> tuple[Run, list[str]]:
    """Load without on_error: before these repairs each case raised RunFileError for the whole file."""
    return _load(tmp_path, records)


def test_junk_usage_sources_become_estimated_never_provider(tmp_path: Path) -> None:
    recs = base()
    recs[3]["llm"]["usage"] = {"input_tokens": 30, "output_tokens": 5,
                               "sources": {"input_tokens": "bogus", "output_tokens": 7, "nonsense": "provider"}}
    recs[7]["llm"]["usage"] = {"input_tokens": 40, "output_tokens": 2, "sources": ["provider"]}
    run, warned = _strict_load(tmp_path, recs)
    u3, u5 = _span(run, "3").llm.usage, _span(run, "5").llm.usage
    assert (u3.input_tokens, u3.output_tokens) == (30, 5)
    assert u3.sources == {"input_tokens": "estimated", "output_tokens": "estimated"}
    assert (u5.input_tokens, u5.output_tokens) == (40, 2)
    assert u5.sources == {"input_tokens": "estimated", "output_tokens": "estimated"}
    repairs = run.metadata[REPAIRS_KEY]
    assert any("input_tokens source \"bogus\"" in r and "estimated" in r for r in repairs)
    assert any("usage sources [\"provider\"] are not an object" in r for r in repairs)
    assert warned and "field(s) repaired" in warned[0]
    # the costs built on these counts say estimated
    from tokprof.profiler.accounting import span_cost

    assert span_cost(_span(run, "3")).source == "estimated"


def test_integer_model_and_provider_are_kept_as_text(tmp_path: Path) -> None:
    recs = base()
    recs[3]["llm"]["model"] = 123
    recs[7]["llm"]["provider"] = ["openai"]
    run, _ = _strict_load(tmp_path, recs)
    assert _span(run, "3").llm.model == "123"
    assert _span(run, "5").llm.provider == '["openai"]'
    assert any("model 123 is not a string" in r for r in run.metadata[REPAIRS_KEY])
    assert run.summary(currency="USD").models == {"123": 1, "gpt-4o": 1}


@pytest.mark.parametrize("cost", ["0.12", 7, ["x"], {"amount": "abc", "currency": "USD", "source": "recorded"},
                                  {"amount": "NaN", "currency": "USD", "source": "recorded"},
                                  {"amount": "-1", "currency": "USD", "source": "recorded"},
                                  {"amount": "1e999", "currency": "USD", "source": "recorded"},
                                  {"amount": True, "currency": "USD", "source": "recorded"},
                                  {"amount": "0.5", "currency": 5, "source": "recorded"},
                                  {"amount": "0.5", "currency": "USD", "source": "bogus"},
                                  {"amount": "0.5", "currency": "dollars", "source": "recorded"}])
def test_unreadable_recorded_cost_is_dropped_and_the_call_repriced(tmp_path: Path, cost: Any) -> None:
    from tokprof.profiler.accounting import span_cost

    recs = base()
    recs[3]["llm"]["cost"] = cost
    run, warned = _strict_load(tmp_path, recs)
    span = _span(run, "3")
    assert span.llm.cost is None
    c = span_cost(span)
    # gpt-4o $2.5 / $10 per 1M: 30 x 2.5/1e6 + 5 x 10/1e6 = 0.000125 (computed from tokens, estimated row)
    assert c is not None and c.amount == __import__("decimal").Decimal("0.000125") and c.source != "recorded"
    assert any("recorded cost" in r and "priced from its tokens" in r for r in run.metadata[REPAIRS_KEY])
    assert warned


def test_readable_recorded_cost_is_kept(tmp_path: Path) -> None:
    from decimal import Decimal

    recs = base()
    recs[3]["llm"]["cost"] = {"amount": "0.5", "currency": "USD", "source": "recorded"}
    run, _ = _strict_load(tmp_path, recs)
    assert _span(run, "3").llm.cost.amount == Decimal("0.5") and REPAIRS_KEY not in run.metadata


def test_junk_tool_requests_and_unknown_usage_keys(tmp_path: Path) -> None:
    recs = base()
    recs[3]["llm"]["usage"] = {"input_tokens": 30, "output_tokens": 5, "total_tokens": "x",
                               "tool_requests": {"web_search": 2, "web_fetch": -1, "x": "nan"}}
    recs[7]["llm"]["usage"] = {"input_tokens": 40, "output_tokens": 2, "tool_requests": [1, 2]}
    run, _ = _strict_load(tmp_path, recs)
    assert _span(run, "3").llm.usage.tool_requests == {"web_search": 2}
    assert _span(run, "5").llm.usage.tool_requests == {}
    repairs = run.metadata[REPAIRS_KEY]
    assert any("total_tokens" in r and "dropped" in r for r in repairs)
    assert any("tool_requests [1, 2] is not an object" in r for r in repairs)
