"""The cold ingest's fast paths give exactly what the reference functions give: ``span_costs`` (USD and CNY
priced in one pass) = ``span_cost`` twice, ``cost_source`` = ``span_cost(...).source``, the C-encoder
canonical JSON = ``json.dumps`` byte for byte (so ``payload_id`` keeps every hash it ever gave), on every
corpus call and message and on hostile values; and the ledger prices each call by its own hour."""

from __future__ import annotations

import json
import warnings
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tokprof.profiler.accounting import cost_source, span_cost, span_costs
from tokprof.profiler.model import Cost, LLMCall, Run, Span, Usage
from tokprof.profiler.providers.prompt_units import _message_key
from tokprof.profiler.run_lines import canonical_json, json_default, payload_id

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@pytest.fixture(scope="module")
def corpus_runs() -> list[Run]:
    from tokprof.commands.import_cmd import expand
    from tokprof.profiler.interchange import import_file

    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    runs: list[Run] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in expand([str(CORPUS)]):
            runs.extend(import_file(f).runs)
    return runs


def _ns(when: str) -> int:
    return int(datetime.fromisoformat(when).replace(tzinfo=timezone.utc).timestamp()) * 1_000_000_000


def _span(model: str | None, *, provider: str | None = None, wall: int = 0, cost: Cost | None = None,
          **usage: int) -> Span:
    call = LLMCall(provider=provider, model=model, messages=[{"role": "user", "content": "hi"}],
                   usage=Usage.from_provider(**usage) if usage else Usage(), cost=cost)
    return Span("s1", None, "r", "llm", "call", start_ns=0, wall_start_ns=wall, end_ns=1, llm=call)


def _same(a: Cost | None, b: Cost | None) -> bool:
    """Equal to the last digit: amount (exponent included), currency and source."""
    if a is None or b is None:
        return a is b
    return (str(a.amount), a.currency, a.source) == (str(b.amount), b.currency, b.source)


def _edge_spans() -> list[Span]:
    return [
        _span("deepseek-v4-pro", provider="deepseek", wall=_ns("2026-09-01T02:30"), input_tokens=100_000,
              output_tokens=2_000, cache_read_tokens=60_000),  # peak hour
        _span("deepseek-v4-pro", provider="deepseek", wall=_ns("2026-09-01T12:00"), input_tokens=100_000,
              output_tokens=2_000),  # off-peak
        _span("deepseek-v4-pro", provider="deepseek", input_tokens=10, output_tokens=2),  # no start: estimated
        _span("gpt-4o", provider="openai", input_tokens=1_000, output_tokens=10, reasoning_tokens=5),
        _span("claude-sonnet-4-5", provider="anthropic", input_tokens=5_000, output_tokens=100,
              cache_read_tokens=3_000, cache_write_tokens=1_000),
        _span("no-such-model-xyz", input_tokens=10, output_tokens=1),  # unknown price
        _span("gpt-4o"),  # no token counts known
        _span(None, input_tokens=1, output_tokens=1),
        _span("gpt-4o", cost=Cost(Decimal("0.5"), "USD", "recorded"), input_tokens=1),
        _span("gpt-4o", cost=Cost(Decimal("3.5"), "CNY", "recorded"), input_tokens=1),
        _span("gpt-4o", cost=Cost(Decimal("1.25"), "EUR", "recorded"), input_tokens=1),  # unconvertible
        _span("gpt-4o", cost=Cost(None, "USD", "recorded"), input_tokens=7, output_tokens=3),
    ]


def test_span_costs_and_cost_source_equal_span_cost(corpus_runs: list[Run]) -> None:
    spans = [s for r in corpus_runs for s in r.llm_spans()] + _edge_spans()
    rates: dict[int, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for sp in spans:
            ref = [span_cost(sp, "USD"), span_cost(sp, "CNY")]
            assert all(_same(a, b) for a, b in zip(span_costs(sp, ("USD", "CNY"), rates), ref)), sp.llm
            assert all(_same(a, b) for a, b in zip(span_costs(sp, ("cny",)), ref[1:])), sp.llm
            for cur, c in zip(("USD", "CNY"), ref):
                assert cost_source(sp, cur) == (None if c is None or c.amount is None else c.source)
    assert rates  # the price rows' rates were memoised
    with pytest.raises(ValueError, match="unsupported currency"):
        span_costs(spans[0], ("EUR",))


def _dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=json_default)


def _key_dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True, ensure_ascii=False, default=str)


class _Model:
    def model_dump(self) -> dict[str, Any]:
        return {"b": 1, "a": (2, 3)}


HOSTILE: list[Any] = [
    {3: "int key", 2.5: "float key", False: "bool key"}, {None: "none key"}, {"n": {7: [1], -1: {}}},
    {"z": 1e16, "y": 1e-7, "x": -0.0, "w": 12345678901234567890, "v": 0.1 + 0.2, "u": float("nan"),
     "t": float("inf"), "s": float("-inf")},
    {"text": "中文 — ünïcödé \u2028\u2029 \x00\x1f \"quoted\" \\ emoji 🎉", "é": "key"},
    {"lone": "\ud800 surrogate", "pair": "\ud83c\udf89"},
    {"nested": ((1, (2, [3, (4,)])), {"k": ({"a": 1},)})},
    {"money": Decimal("1.10"), "big": Decimal("1E+30"), "set": {3}, "frozen": frozenset(), "obj": _Model(),
     "path": Path("/tmp/x"), "bytes": b"\xff\x00"},
    "a bare string", 42, 3.0, None, True, [], {}, [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_canonical_json_is_dumps_byte_for_byte(value: Any) -> None:
    assert canonical_json(value) == _dumps(value)
    assert _message_key(value) == _key_dumps(value)
    text = _dumps(value)
    import hashlib

    assert payload_id(value) == hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def test_canonical_json_errors_are_dumps_errors() -> None:
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    mixed = {1: "a", "b": 2}  # sort_keys over int and str keys
    for bad in (cyclic, mixed, {None: 1, 2.5: 2}, [{"deep": mixed}]):
        for fast, slow in ((canonical_json, _dumps), (_message_key, _key_dumps)):
            with pytest.raises(Exception) as want:
                slow(bad)
            with pytest.raises(type(want.value)):
                fast(bad)
    # the shared encoder is clean after an error: a value holding the same objects encodes as dumps does
    ok = {"x": [cyclic["a"], {"b": 2}]}
    assert canonical_json(ok) == _dumps(ok) and _message_key(ok) == _key_dumps(ok)


def test_canonical_json_on_every_corpus_message(corpus_runs: list[Run]) -> None:
    n = 0
    for run in corpus_runs:
        for sp in run.llm_spans():
            call = sp.llm
            for m in [*call.messages, *call.tools, *([call.output] if call.output is not None else [])]:
                assert canonical_json(m) == _dumps(m)
                assert _message_key(m) == _key_dumps(m)
                n += 1
    assert n > 50_000


def test_ledger_prices_equal_calls_by_their_own_hour(tmp_path: Path) -> None:
    """Two calls with the same usage, one at peak and one off-peak (DeepSeek's time-of-day prices): the
    ledger's cost memo must not hand the second the first one's cost."""
    from tokprof.fleet.ledger import connect, ingest_runs

    runs = []
    for i, when in enumerate(("2026-09-01T02:30", "2026-09-01T12:00", "2026-09-05T02:30")):
        sp = _span("deepseek-v4-pro", provider="deepseek", wall=_ns(when), input_tokens=100_000,
                   output_tokens=2_000, cache_read_tokens=60_000)
        runs.append(Run(run_id=f"r{i}", name="deepseek", spans=[sp]))
    con = connect(tmp_path / "l.duckdb")
    ingest_runs(con, runs, diagnose=False)
    got = dict((r, (u, c)) for r, u, c in con.execute("SELECT run_id, cost_usd, cost_cny FROM calls").fetchall())
    con.close()
    for run in runs:
        want = tuple(span_cost(run.spans[0], cur).amount for cur in ("USD", "CNY"))  # type: ignore[union-attr]
        assert got[run.run_id] == want
    # by hand (tests/test_time_of_day_prices.py): peak $0.06336, off-peak $0.03168 (Saturday is off-peak)
    assert [got[r][0] for r in ("r0", "r1", "r2")] == [Decimal("0.06336"), Decimal("0.03168"), Decimal("0.03168")]
