"""Hostile input for the importers (issue #9, point 5): ``tokprof.profiler.interchange.import_file`` under hypothesis.

Seeds are small valid files of every format (τ²-bench, τ-bench and SWE-agent files cut down from the
corpus, a chat log written here, an OTLP export of a live run). Each case mutates one (JSON-tree edits:
replace any value with random JSON, delete a key, empty a list; or raw edits: truncate, flip bytes), or
is random bytes / random JSON. ``import_file`` must return runs or raise :class:`InterchangeError` naming
the file; record-level problems must be listed in ``result.errors`` naming the file; nothing is written.
3,000 cases (derandomized); with the run-loader fuzz, 11,000 in all.
"""

from __future__ import annotations

import copy
import gzip
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

interchange = pytest.importorskip("tokprof.profiler.interchange")
from tokprof.profiler import profile, record_llm_call, trace  # noqa: E402
from tokprof.profiler.interchange import InterchangeError, import_file  # noqa: E402

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
SETTINGS = dict(derandomize=True, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
PER_FORMAT = 400
CASES = {"mutations": PER_FORMAT * 5, "bytes": 500, "json": 500}


def _cut(value: Any, limit: int = 160) -> Any:
    """Shorten long strings so seeds stay small (fuzzing speed), keeping the structure."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, list):
        return [_cut(v, limit) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v, limit) for k, v in value.items()}
    return value


def _load(path: Path) -> Any:
    return json.loads(gzip.open(path).read())


def seed_tau2() -> str:
    path = next(iter(sorted((CORPUS / "tau2").glob("*gpt54*.json.gz"))))
    d = _load(path)
    sim = dict(d["simulations"][0])
    sim["messages"] = sim["messages"][:6]
    task_ids = {sim["task_id"]}
    out = {"timestamp": d["timestamp"], "info": d["info"],
           "tasks": [t for t in d["tasks"] if t["id"] in task_ids], "simulations": [sim]}
    return json.dumps(_cut(out))


def seed_tau1() -> str:
    d = _load(CORPUS / "tau1" / "gpt-4o-airline.json.gz")
    first = dict(d[0])
    first["traj"] = first["traj"][:6]
    return json.dumps(_cut([first]))


def seed_swe_agent() -> str:
    path = CORPUS / "swe-agent" / "ctf_i_got_id_demo.traj.gz"
    d = _load(path)
    out = {"environment": d.get("environment"), "trajectory": d["trajectory"][:2], "history": d["history"][:5],
           "info": d.get("info", {})}
    return json.dumps(_cut(out))


def seed_chatlog() -> str:
    lines = []
    for i in range(3):
        lines.append({"run_id": "r1", "request": {"model": "gpt-4o", "temperature": 0, "messages": [
            {"role": "system", "content": "be brief"}, {"role": "user", "content": f"question {i}"}]},
            "response": {"id": f"c{i}", "model": "gpt-4o", "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": f"answer {i}"}}],
                         "usage": {"prompt_tokens": 20 + i, "completion_tokens": 3, "total_tokens": 23 + i}}})
    return "\n".join(json.dumps(x) for x in lines) + "\n"


def seed_otlp() -> str:
    from tokprof.profiler.interchange import otlp

    @trace
    def step(i: int) -> int:
        record_llm_call(model="gpt-4o", provider="openai", messages=[{"role": "user", "content": f"q{i}"}],
                        output=f"a{i}", usage={"input_tokens": 10, "output_tokens": 2})
        return i

    with profile("otlp-seed") as run:
        for i in range(2):
            step(i)
    return json.dumps(otlp.export_runs([run]))


SEEDS = {"tau2": (seed_tau2, "sim.json"), "tau1": (seed_tau1, "traj.json"),
         "swe_agent": (seed_swe_agent, "demo.traj"), "chatlog": (seed_chatlog, "log.jsonl"),
         "otlp": (seed_otlp, "trace.otlp.json")}


@pytest.fixture(scope="module")
def seeds() -> dict[str, str]:
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found at {CORPUS}")
    return {fmt: make() for fmt, (make, _) in SEEDS.items()}


def check_import(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    before = sorted(p.name for p in path.parent.iterdir())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = import_file(path)
    except InterchangeError as exc:
        assert exc.path == str(path), exc
        assert str(path) in str(exc)
    else:
        assert result.runs, "a successful import has runs"
        for err in result.errors:
            assert isinstance(err, InterchangeError) and err.path == str(path) and err.record is not None
        for run in result.runs:
            run.total_usage()
            list(run.walk())
    assert sorted(p.name for p in path.parent.iterdir()) == before, "the importer wrote something"


def test_every_seed_imports(tmp_path, seeds):
    for fmt, text in seeds.items():
        name = SEEDS[fmt][1]
        result = import_file(_write(tmp_path / name, text.encode()))
        assert result.format == fmt and result.runs and not result.errors, (fmt, result.error_summary())


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**64, 2**64) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=5,
)


def _slots(obj: Any, out: list[tuple[Any, Any]], limit: int = 400) -> list[tuple[Any, Any]]:
    """(container, key) for every value in a JSON tree (breadth-first, bounded)."""
    queue = [obj]
    while queue and len(out) < limit:
        cur = queue.pop(0)
        items = cur.items() if isinstance(cur, dict) else enumerate(cur) if isinstance(cur, list) else ()
        for k, v in items:
            out.append((cur, k))
            if isinstance(v, (dict, list)):
                queue.append(v)
    return out


@st.composite
def mutated(draw: Any, text: str) -> bytes:
    op = draw(st.sampled_from(["replace", "replace", "delete", "empty", "truncate", "flip", "gzip-truncate"]))
    if op == "truncate":
        return text.encode()[: draw(st.integers(0, len(text.encode())))]
    if op == "flip":
        b = bytearray(text.encode())
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        return bytes(b)
    if op == "gzip-truncate":
        z = gzip.compress(text.encode())
        return z[: draw(st.integers(2, len(z)))]
    lines = text.splitlines() if "\n" in text.strip() else [text]
    i = draw(st.integers(0, len(lines) - 1))
    doc = json.loads(lines[i])
    slots = _slots(doc, [])
    if slots:
        container, key = slots[draw(st.integers(0, len(slots) - 1))]
        if op == "replace":
            container[key] = draw(json_values)
        elif op == "delete":
            del container[key]
        else:
            old = container[key]
            container[key] = [] if isinstance(old, list) else {} if isinstance(old, dict) else None
    else:
        doc = draw(json_values)
    lines[i] = json.dumps(doc)
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_mutated_seeds(tmp_path, seeds, fmt):
    text = seeds[fmt]
    name = SEEDS[fmt][1]

    cases = [0]

    @settings(max_examples=PER_FORMAT, **SETTINGS)
    @given(data=st.data())
    def run(data: Any) -> None:
        check_import(tmp_path / name, data.draw(mutated(copy.copy(text))))
        cases[0] += 1

    run()
    assert cases[0] >= PER_FORMAT


@settings(max_examples=CASES["bytes"], **SETTINGS)
@given(data=st.binary(max_size=300), name=st.sampled_from(["x.json", "x.jsonl", "x.traj", "x.json.gz"]))
def test_random_bytes(tmp_path, data, name):
    check_import(tmp_path / name, data)


@settings(max_examples=CASES["json"], **SETTINGS)
@given(doc=json_values, marker=st.sampled_from(["", "simulations", "traj", "history", "resourceSpans", "request"]),
       name=st.sampled_from(["x.json", "x.jsonl", "x.traj"]))
def test_random_json_with_format_markers(tmp_path, doc, marker, name):
    if marker:
        doc = {marker: doc} if marker != "traj" else [{"traj": doc}]
    check_import(tmp_path / name, json.dumps(doc).encode())


def test_case_budget():
    assert sum(CASES.values()) >= 3000


def test_cli_import_of_a_hostile_folder_writes_only_whole_runs(tmp_path, seeds, capsys):
    """``tokprof import`` on a folder of hostile files: it reports the bad ones, imports the good records,
    and every file it writes is a whole, loadable run (no partial or temp file)."""
    from tokprof.profiler import load_run
    from tokprof.cli import main

    src = tmp_path / "in"
    src.mkdir()
    (src / "garbage.json").write_bytes(b"\x00\xffnot json")
    (src / "truncated.json.gz").write_bytes(gzip.compress(seeds["tau2"].encode())[:200])
    (src / "empty.jsonl").write_text("")
    (src / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    lines = seeds["chatlog"].splitlines()
    (src / "half.jsonl").write_text("\n".join([lines[0], "{broken", lines[1], '{"request": 5}', lines[2]]) + "\n")
    (src / "good.traj").write_text(seeds["swe_agent"])
    out = tmp_path / "out"
    code = main(["import", str(src), "--out", str(out), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1 and summary["failed_files"] >= 3
    written = sorted(out.iterdir())
    assert written and all(p.suffix == ".jsonl" for p in written)  # no .tmp left
    runs = [load_run(p) for p in written]
    assert all(r.complete for r in runs) and len(runs) == summary["runs"]
