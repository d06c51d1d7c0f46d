"""Hostile input for the run loader (issue #9, point 5): ``tokprof.profiler.store.load_run`` under hypothesis.

Whatever bytes are in a run file, ``load_run`` either returns a :class:`Run` or raises
:class:`RunFileError` naming the file (and the line, when the problem is on one); it never raises
anything else, never hangs, and writes nothing. Cases (all derandomized, so CI is reproducible):

* raw bytes (also behind a gzip name), 3,500 + 1,000
* random records: JSON lines with the right ``type`` tags and random fields, 1,000
* mutations of a real run file: truncation, byte flips, line drops/duplicates/swaps, splices, 2,000
* malicious shapes: deep nesting, huge numbers, wrong types in every field, 500

8,000 cases here; the importers' fuzz (test_fuzz_importers.py) adds the rest of the 10,000+.
"""

from __future__ import annotations

import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokprof.profiler import load_run, profile, record_llm_call, trace
from tokprof.profiler.model import Run
from tokprof.profiler.store import RunFileError, TruncatedRunWarning

SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])

CASES = {"bytes": 3500, "gzip": 1000, "records": 1000, "mutations": 2000, "shapes": 500}


def a_real_run_file(folder: Path) -> bytes:
    @trace
    def tool(q: str) -> str:
        return q.upper()

    history = [{"role": "system", "content": "be brief"}]
    with profile("seed", save=folder, tags={"team": "x"}) as run:
        for i in range(4):
            history.append({"role": "user", "content": f"q{i}"})
            tool(f"q{i}")
            record_llm_call(model="gpt-4o", messages=history, output=f"a{i}",
                            usage={"input_tokens": 10 + i, "output_tokens": 2})
            history.append({"role": "assistant", "content": f"a{i}"})
    return run.path.read_bytes()


@pytest.fixture(scope="module")
def seed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return a_real_run_file(tmp_path_factory.mktemp("seed"))


def check_load(path: Path, data: bytes) -> Run | None:
    """Write ``data`` to ``path`` and load it: a Run, or RunFileError naming the file; nothing else."""
    path.write_bytes(data)
    before = sorted(p.name for p in path.parent.iterdir())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncatedRunWarning)
            run = load_run(path)
    except RunFileError as exc:
        assert exc.path == str(path)
        assert str(path) in str(exc)
        assert exc.line is None or (isinstance(exc.line, int) and exc.line >= 1)
        run = None
    assert sorted(p.name for p in path.parent.iterdir()) == before, "the loader wrote something"
    if run is not None:
        assert isinstance(run, Run)
        # A loaded run is usable: its totals and tree can be computed.
        run.total_usage()
        list(run.walk())
    return run


@settings(max_examples=CASES["bytes"], **SETTINGS)
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path, data):
    check_load(tmp_path / "run.jsonl", data)


@settings(max_examples=CASES["gzip"], **SETTINGS)
@given(data=st.binary(max_size=200), compress=st.booleans())
def test_random_bytes_behind_a_gzip_name(tmp_path, data, compress):
    check_load(tmp_path / "run.jsonl.gz", gzip.compress(data) if compress else data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=4,
)
FIELDS = ["span_id", "parent_id", "run_id", "kind", "name", "start_ns", "end_ns", "wall_start_ns", "status",
          "error", "attributes", "tags", "llm", "id", "data", "schema", "started_wall_ns", "metadata",
          "ended_wall_ns", "messages", "$base", "$keep", "$refs", "usage", "cost", "output", "params", "tools"]


@st.composite
def record(draw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {"type": draw(st.sampled_from(["run", "span", "payload", "end", "other"]))}
    for f in draw(st.lists(st.sampled_from(FIELDS), max_size=6, unique=True)):
        rec[f] = draw(json_values)
    if rec["type"] == "run" and draw(st.booleans()):
        rec["schema"] = 1
    if rec["type"] == "span" and draw(st.booleans()):
        rec["llm"] = {"model": draw(st.text(max_size=4)),
                      "messages": draw(st.one_of(json_values, st.fixed_dictionaries(
                          {"$refs": st.lists(st.text(max_size=4), max_size=3)},
                          optional={"$base": json_values, "$keep": json_values}))),
                      "usage": draw(st.one_of(json_values, st.fixed_dictionaries(
                          {}, optional={"input_tokens": json_values, "sources": json_values})))}
    return rec


@pytest.mark.slow
@settings(max_examples=CASES["records"], **SETTINGS)
@given(recs=st.lists(record(), max_size=6), header=st.booleans(), end=st.booleans())
def test_random_records(tmp_path, recs, header, end):
    lines = []
    if header:
        lines.append({"type": "run", "schema": 1, "run_id": "r", "name": "n"})
    lines += recs
    if end:
        lines.append({"type": "end", "ended_wall_ns": 1})
    text = "\n".join(json.dumps(r) for r in lines) + "\n"
    check_load(tmp_path / "run.jsonl", text.encode())


@st.composite
def mutation(draw: Any, seed: bytes) -> bytes:
    lines = seed.split(b"\n")
    op = draw(st.sampled_from(["truncate", "flip", "drop", "dup", "swap", "insert", "splice"]))
    if op == "truncate":
        return seed[: draw(st.integers(0, len(seed)))]
    if op == "flip":
        b = bytearray(seed)
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        return bytes(b)
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(j, lines[i])
    elif op == "swap":
        lines[i], lines[j] = lines[j], lines[i]
    elif op == "insert":
        lines.insert(i, draw(st.binary(max_size=40)))
    else:  # splice a random JSON value into a line's field
        try:
            rec = json.loads(lines[i])
        except ValueError:
            return seed
        if isinstance(rec, dict) and rec:
            key = draw(st.sampled_from(sorted(rec)))
            rec[key] = draw(json_values)
            lines[i] = json.dumps(rec).encode()
    return b"\n".join(lines)


@pytest.mark.slow
@settings(max_examples=CASES["mutations"], **SETTINGS)
@given(data=st.data())
def test_mutated_real_files(tmp_path, seed, data):
    mutated = data.draw(mutation(seed))
    check_load(tmp_path / "run.jsonl", mutated)


SHAPES = [
    lambda: b'{"type":"run","schema":1}\n' + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    lambda: b'{"type":"run","schema":1,"started_wall_ns":' + b"9" * 5000 + b"}\n",
    lambda: b'{"type":"run","schema":1,"started_wall_ns":1e400}\n',
    lambda: b'{"type":"run","schema":1,"started_wall_ns":NaN}\n',
    lambda: b'{"type":"run","schema":1,"tags":[1,2],"metadata":"x"}\n{"type":"end"}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":"span","span_id":"a","llm":[]}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":"span","span_id":"a","llm":{"messages":{"$base":"x","$keep":"y"}}}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":"span","span_id":"a","llm":{"messages":{"$refs":[[1]]}}}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":"span","span_id":"a","llm":{"usage":{"input_tokens":"x"}}}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":"span","span_id":"a","llm":{"cost":{"amount":"abc"}}}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":"payload","id":[1],"data":1}\n',
    lambda: b'{"type":"run","schema":1}\n{"type":[],"span_id":"a"}\n',
    lambda: b'{"type":"run","schema":true}\n',
    lambda: b'\xef\xbb\xbf{"type":"run","schema":1}\n',
    lambda: b'{"type":"run","schema":1}\r\n{"type":"end"}\r\n',
    lambda: b'{"type":"run","schema":1,"name":"\\ud800"}\n',
    lambda: b"\x1f\x8b\x08\x00garbage",
    lambda: b"\n" * 1000,
    lambda: b'{"type":"run","schema":1}\n' + b'{"type":"span","span_id":"s","start_ns":-1,"end_ns":"2"}\n' * 3,
    lambda: b'{"type":"run","schema":1}\n{"type":"span","span_id":"a","parent_id":"a"}\n',
]


@pytest.mark.parametrize("i", range(len(SHAPES)))
def test_malicious_shapes(tmp_path, i):
    name = "run.jsonl.gz" if SHAPES[i]().startswith(b"\x1f\x8b") else "run.jsonl"
    check_load(tmp_path / name, SHAPES[i]())


@settings(max_examples=CASES["shapes"] - len(SHAPES), **SETTINGS)
@given(depth=st.integers(1, 3000), kind=st.sampled_from(["[", "{\"a\":"]), where=st.sampled_from(
    ["attributes", "tags", "llm", "metadata"]))
def test_deep_nesting(tmp_path, depth, kind, where):
    close = "]" if kind == "[" else "}"
    nested = kind * depth + "1" + close * depth
    if where == "metadata":
        text = '{"type":"run","schema":1,"metadata":' + nested + "}\n"
    else:
        text = '{"type":"run","schema":1}\n{"type":"span","span_id":"a","' + where + '":' + nested + "}\n"
    check_load(tmp_path / "run.jsonl", text.encode())


def test_case_budget():
    assert sum(CASES.values()) >= 8000
