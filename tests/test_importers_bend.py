"""Importers bend instead of break (issue #17, point 1).

Corpus files are mutated along the axes real files vary on — wrapped or unwrapped (bare list of simulations,
one simulation alone, inside ``{"results": ...}``), optional blocks dropped (``tasks``, ``info``,
``raw_data``, costs), values stringified (JSON or Python ``repr`` inside strings), unknown fields added — and
every variant must import with nothing recorded lost: the same number of model calls and tool spans, and
the same provider-reported token totals and recorded costs as the untouched file. The oracle for the
untouched file is the file itself: its ``usage`` blocks summed here by hand.
"""

from __future__ import annotations

import copy
import gzip
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokprof.profiler.interchange import import_file, import_text
from tokprof.profiler.interchange.usage_dialects import choose, read_usage

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
SETTINGS = dict(derandomize=True, deadline=None, database=None, max_examples=60,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def _load(name_part: str, sub: str = "tau2") -> Any:
    path = next(p for p in sorted((CORPUS / sub).glob("*.gz")) if name_part in p.name)
    return json.loads(gzip.open(path).read())


class Seed(dict):
    """The seed file (a dict whose repr is short, so hypothesis reports stay readable)."""

    def __repr__(self) -> str:
        return f"<tau2 seed: {len(self['simulations'])} simulations>"


@pytest.fixture(scope="module")
def tau2_seed() -> dict[str, Any]:
    if not CORPUS.exists():
        pytest.skip("corpus not found")
    # The Claude file keeps raw_data (Anthropic dialect) beside LiteLLM's usage; grok3 has usage only.
    a, b = _load("claude-sonnet-4-5"), _load("grok3")
    sims = a["simulations"][:2] + b["simulations"][:1]
    keep = {s["task_id"] for s in sims}
    tasks = [t for t in a["tasks"] if t["id"] in keep]
    tasks += [t for t in b["tasks"] if t["id"] in keep and t["id"] not in {x["id"] for x in tasks}]
    # Both files use the same airline tasks and guidelines; the Claude file's info serves for all three.
    return Seed(copy.deepcopy({"timestamp": a["timestamp"], "info": a["info"], "tasks": tasks, "simulations": sims}))


def totals(result) -> dict[str, Any]:  # noqa: ANN001
    """What a test compares: calls, tool spans, provider-sourced tokens, recorded cost."""
    t = {"runs": len(result.runs), "calls": 0, "tools": 0, "provider_in": 0, "provider_out": 0, "cost": Decimal(0)}
    for run in result.runs:
        for s in run.spans:
            t["tools"] += s.kind == "tool"
            if s.llm is None:
                continue
            t["calls"] += 1
            u = s.llm.usage
            t["provider_in"] += u.input_tokens if u.source("input_tokens") == "provider" else 0
            t["provider_out"] += u.output_tokens if u.source("output_tokens") == "provider" else 0
            if s.llm.cost is not None and s.llm.cost.source == "recorded":
                t["cost"] += s.llm.cost.amount
    return t


def hand_sum(data: dict[str, Any]) -> dict[str, int]:
    """The oracle: usage blocks of the file summed directly (no tokprof code)."""
    sims = data["simulations"]
    msgs = [m for s in sims for m in s["messages"]]
    return {"provider_in": sum(m["usage"]["prompt_tokens"] for m in msgs if isinstance(m.get("usage"), dict)),
            "provider_out": sum(m["usage"]["completion_tokens"] for m in msgs if isinstance(m.get("usage"), dict)),
            "tools": sum(m["role"] == "tool" for m in msgs)}


def _write(tmp: Path, name: str, obj: Any, as_repr: bool = False) -> Path:
    p = tmp / name
    p.write_text(repr(obj) if as_repr else json.dumps(obj))
    return p


# --- mutations: each takes the whole tau2 object and returns a new one (any shape) ------------------------------
def _stringify(value: Any, style: str) -> str:
    return repr(value) if style == "repr" else json.dumps(value)


def stringify_messages_fields(d: dict[str, Any], style: str) -> Any:
    for s in d["simulations"]:
        for m in s["messages"]:
            for key in ("usage", "raw_data", "tool_calls"):
                if m.get(key) is not None:
                    m[key] = _stringify(m[key], style)
    return d


def stringify_simulation(d: dict[str, Any], style: str) -> Any:
    d["simulations"] = [_stringify(s, style) if i % 2 else s for i, s in enumerate(d["simulations"])]
    return d


def add_unknown(d: dict[str, Any], style: str) -> Any:
    d["format_version"] = "9.9"
    d["simulation_index"] = [{"id": s["id"]} for s in d["simulations"]]
    for s in d["simulations"]:
        s["ticks"] = None
        s["review"] = {"x": 1}
        for m in s["messages"]:
            m["generation_time_seconds"] = 1.5
            m["context_truncation"] = None
            m["is_audio"] = False
    return d


def to_ticks(d: dict[str, Any], style: str) -> Any:
    """A full-duplex run: ``messages`` null, the messages inside ``ticks`` (SimulationRun.get_messages)."""
    for s in d["simulations"]:
        s["ticks"] = [{"tick_id": i, "agent_chunk" if m["role"] == "assistant" else "other": m}
                      for i, m in enumerate(s["messages"])]
        s["messages"] = None
    return d


def drop_raw(d: dict[str, Any], style: str) -> Any:
    for s in d["simulations"]:
        for m in s["messages"]:
            m.pop("raw_data", None)
    return d


def drop_tasks(d: dict[str, Any], style: str) -> Any:
    d.pop("tasks", None)
    return d


def drop_info(d: dict[str, Any], style: str) -> Any:
    d.pop("info", None)
    return d


def bare_list(d: dict[str, Any], style: str) -> Any:
    return d["simulations"]


def wrap(d: dict[str, Any], style: str) -> Any:
    return {"results": d, "meta": {"tool": "x"}}


MUTATIONS: dict[str, Callable[[dict[str, Any], str], Any]] = {
    "stringify_fields": stringify_messages_fields, "stringify_sims": stringify_simulation,
    "unknown_fields": add_unknown, "drop_raw": drop_raw, "to_ticks": to_ticks, "drop_tasks": drop_tasks, "drop_info": drop_info,
}
SHAPES = {"as_is": lambda d, s: d, "bare_list": bare_list, "wrap": wrap}


def test_untouched_seed_matches_hand_sum(tau2_seed, tmp_path):
    result = import_file(_write(tmp_path, "seed.json", dict(tau2_seed)))
    got, want = totals(result), hand_sum(tau2_seed)
    assert (got["provider_in"], got["provider_out"], got["tools"]) == \
        (want["provider_in"], want["provider_out"], want["tools"])
    assert not result.errors and not result.partial


@settings(**SETTINGS)
@given(muts=st.lists(st.sampled_from(sorted(MUTATIONS)), unique=True, max_size=4),
       shape=st.sampled_from(sorted(SHAPES)), style=st.sampled_from(["json", "repr"]),
       file_repr=st.booleans())
def test_tau2_variants_lose_nothing(tau2_seed, tmp_path, muts, shape, style, file_repr):
    base = totals(import_file(_write(tmp_path, "base.json", dict(tau2_seed))))
    d = copy.deepcopy(dict(tau2_seed))
    # Field edits first, then ticks, then whole-simulation strings (each later step changes the shape).
    order = {"to_ticks": 1, "stringify_sims": 2}
    for name in sorted(muts, key=lambda n: order.get(n, 0)):
        d = MUTATIONS[name](d, style)
    d = SHAPES[shape](d, style)
    result = import_file(_write(tmp_path, "variant.json", d, as_repr=file_repr))
    assert result.format == "tau2" and not result.errors
    got = totals(result)
    assert got == base, (muts, shape, style)
    dropped_context = {"drop_tasks", "drop_info"} & set(muts) or shape == "bare_list"
    # Partial records say what was not rebuilt; complete ones say nothing.
    assert bool(result.partial) == bool(dropped_context)
    if "drop_tasks" in muts or shape == "bare_list":
        assert all("user_scenario" in p for p in result.partial)


def test_cache_hidden_by_excluding_input_is_recovered_once(tau2_seed, tmp_path):
    """The provider's raw usage reports cache reads larger than the harness's prompt count: the prompt count
    excluded the cache. Input = prompt + read + write, counted once; consistent duplicates never add again."""
    d = copy.deepcopy(dict(tau2_seed))
    msgs = [m for s in d["simulations"] for m in s["messages"] if isinstance(m.get("raw_data"), dict)
            and isinstance(m["raw_data"].get("usage"), dict)]
    assert msgs
    expect_in = expect_read = expect_write = expect_1h = 0
    for k, m in enumerate(msgs):
        raw = m["raw_data"]["usage"]
        raw["cache_read_input_tokens"] = 20 * raw["input_tokens"]
        raw["cache_creation_input_tokens"] = 100 + k
        raw["cache_creation"] = {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": k}
        expect_in += m["usage"]["prompt_tokens"] + 21 * raw["input_tokens"] - raw["input_tokens"] + 100 + k
        expect_read += 20 * raw["input_tokens"]
        expect_write += 100 + k
        expect_1h += k
    result = import_file(_write(tmp_path, "cache.json", d))
    calls = [s.llm for r in result.runs for s in r.spans if s.llm is not None and s.llm.usage.cache_read_tokens]
    assert len(calls) == len(msgs)
    assert sum(c.usage.input_tokens for c in calls) == expect_in
    assert sum(c.usage.cache_read_tokens for c in calls) == expect_read
    assert sum(c.usage.cache_write_tokens for c in calls) == expect_write
    assert sum(c.usage.cache_write_1h_tokens for c in calls) == expect_1h
    assert all(c.usage.source("cache_read_tokens") == "provider" for c in calls)


@pytest.mark.parametrize("usage,raw,expect", [
    # OpenAI: prompt includes cached -> input stays 1000.
    ({"prompt_tokens": 1000, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 800}}, None,
     (1000, 5, 800, None)),
    # LiteLLM copy of an Anthropic count: cached > prompt -> prompt excluded the cache.
    ({"prompt_tokens": 50, "completion_tokens": 5, "cache_read_input_tokens": 900}, None, (950, 5, 900, None)),
    # Harness usage includes cache; raw Anthropic excludes; both agree on 1000 -> read once.
    ({"prompt_tokens": 1000, "completion_tokens": 5},
     {"input_tokens": 100, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 0, "output_tokens": 5},
     (1000, 5, 900, 0)),
    # Harness usage copies Anthropic's excluding count; raw reveals the cache -> 100 + 900.
    ({"prompt_tokens": 100, "completion_tokens": 5},
     {"input_tokens": 100, "cache_read_input_tokens": 900, "cache_creation_input_tokens": 0, "output_tokens": 5},
     (1000, 5, 900, 0)),
    # Raw disagrees (another call's usage): the recorded usage is kept.
    ({"prompt_tokens": 100, "completion_tokens": 5}, {"input_tokens": 7, "output_tokens": 9,
                                                      "cache_read_input_tokens": 3}, (100, 5, None, None)),
    # Gemini usageMetadata: thoughts billed as output.
    ({"promptTokenCount": 40, "candidatesTokenCount": 6, "thoughtsTokenCount": 4, "cachedContentTokenCount": 30},
     None, (40, 10, 30, None)),
])
def test_usage_dialects(usage, raw, expect):
    best, _ = choose([read_usage(usage), read_usage(raw)])
    assert (best.input, best.output, best.cache_read, best.cache_write) == expect


# --- tau1 and SWE-agent: the same spirit ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tau1_seed() -> list[Any]:
    if not CORPUS.exists():
        pytest.skip("corpus not found")
    return _load("gpt-4o", "tau1")[:4]


@settings(**SETTINGS)
@given(shape=st.sampled_from(["as_is", "wrap", "stringify_traj", "unknown", "repr_file"]))
def test_tau1_variants_lose_nothing(tau1_seed, tmp_path, shape):
    base = totals(import_file(_write(tmp_path, "base.json", tau1_seed)))
    d = copy.deepcopy(tau1_seed)
    if shape == "wrap":
        d = {"trajectories": d}
    elif shape == "stringify_traj":
        for r in d:
            r["traj"] = json.dumps(r["traj"])
    elif shape == "unknown":
        for r in d:
            r["extra"] = {"a": [1, 2]}
            for m in r["traj"]:
                m["weight"] = 1
    result = import_file(_write(tmp_path, "v.json", d, as_repr=shape == "repr_file"))
    assert result.format == "tau1" and not result.errors
    assert totals(result)["calls"] == base["calls"] and totals(result)["tools"] == base["tools"]
    assert sum(r.total_usage().input_tokens for r in result.runs) > 0


@pytest.mark.parametrize("shape", ["as_is", "wrap", "stringify_history", "unknown", "no_info"])
def test_swe_agent_variants_lose_nothing(tmp_path, shape):
    if not CORPUS.exists():
        pytest.skip("corpus not found")
    data = _load("marshmallow", "swe-agent")
    base = totals(import_text(json.dumps(data), "swe_agent"))
    d = copy.deepcopy(data)
    if shape == "wrap":
        d = {"data": d}
    elif shape == "stringify_history":
        d["history"] = json.dumps(d["history"])
        d["trajectory"] = repr(d["trajectory"])
    elif shape == "unknown":
        d["new_top"] = 1
        for m in d["history"]:
            m["cache_control"] = {"type": "ephemeral"}
    elif shape == "no_info":
        d.pop("info", None)
    p = tmp_path / "x.traj"
    p.write_text(json.dumps(d))
    result = import_file(p)
    assert not result.errors and totals(result) == base


def test_shapes_whose_first_64k_do_not_tell(tmp_path):
    """A bare list of simulations whose first keys are long blocks (reward_info, messages before task_id),
    and a wrapper around a Results object with a long info first: detected by parsing, every record imported."""
    if not CORPUS.exists():
        pytest.skip("corpus not found")
    d = _load("toolorchestra")
    n = len(d["simulations"])
    assert len(import_file(_write(tmp_path, "bare.json", d["simulations"])).runs) == n
    wrapped = {"meta": {"padding": "x" * 70000}, "results": {k: d[k] for k in ("info", "tasks", "simulations")}}
    result = import_file(_write(tmp_path, "wrapped.json", wrapped))
    assert result.format == "tau2" and len(result.runs) == n and not result.errors
