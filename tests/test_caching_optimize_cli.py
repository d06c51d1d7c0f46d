"""`tokprof optimize`: foreign trace files, saved run ids and folders in; ledger (table or JSON) out; the
optimized runs saved."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from tokprof.optimizers.response_cache import ResponseCache
from tokprof.profiler.store import load_run
from tokprof.cli import main

SMALL_TAU2 = "ironshell-ironforge_ironshell-ui_2026-03-09__ironshell_ironforge_v2_sonnet46.json.gz"


def test_optimize_foreign_file_json(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "optimized"
    code = main(["optimize", str(corpus / "tau2" / SMALL_TAU2), "--passes", "response-cache,prompt-cache",
                 "--json", "--out", str(out)])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["passes"] == ["response-cache", "prompt-cache"] and len(data["runs"]) == 7
    steps = data["totals"]["steps"]
    assert [s["pass"] for s in steps] == ["recorded", "response-cache", "prompt-cache"]
    assert Decimal(steps[-1]["billed_cost"]) < Decimal(steps[0]["billed_cost"]) * Decimal("0.5")
    first = data["runs"][0]
    assert first["baseline"]["pass"] == "recorded" and first["steps"][1]["rows"]
    saved = sorted(out.glob("*.jsonl"))
    assert len(saved) == 7
    run = load_run(saved[0])
    assert run.metadata["optimized_by"] == ["response-cache", "prompt-cache"]
    assert run.metadata["billing"]["mode"] == "simulate"


def test_optimize_run_id_and_folder_table(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          _runs_dir: Path) -> None:
    # import a file into the runs folder, then optimize one run by id and the whole folder
    from tokprof.profiler.interchange import import_file

    runs = import_file(corpus / "tau2" / SMALL_TAU2).runs[:2]
    for r in runs:
        r.save(_runs_dir)
    assert main(["optimize", runs[0].run_id, "--passes", "prompt-cache", "--out", str(tmp_path / "o1")]) == 0
    text = capsys.readouterr().out
    assert "prompt-cache" in text and "saved against what the runs paid:" in text
    folder = tmp_path / "folder"
    shutil.copytree(_runs_dir, folder)
    assert main(["optimize", str(folder), "--json", "--out", str(tmp_path / "o2")]) == 0
    assert len(json.loads(capsys.readouterr().out)["runs"]) == 2


def test_optimize_unknown_pass_is_a_clear_error(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", str(corpus / "tau2" / SMALL_TAU2), "--passes", "nope"]) == 1
    assert "unknown pass 'nope'" in capsys.readouterr().err


def test_optimize_lists_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", "x", "--passes", "list"]) == 0
    text = capsys.readouterr().out
    for name in ("prompt-cache", "response-cache", "tool-cache"):
        assert name in text


def _writer(args: tuple[str, int]) -> int:
    directory, worker = args
    cache = ResponseCache(directory, namespace="mp")
    for i in range(40):
        cache.set(f"k{i}", {"worker": worker, "i": i})
        assert cache.get(f"k{i}") is not None
    return worker


def test_response_cache_concurrent_processes(tmp_path: Path) -> None:
    d = str(tmp_path / "mp")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        assert sorted(pool.map(_writer, [(d, w) for w in range(4)])) == [0, 1, 2, 3]
    cache = ResponseCache(d, namespace="mp")
    assert len(cache) == 40
    assert all(cache.get(f"k{i}")["i"] == i for i in range(40))
