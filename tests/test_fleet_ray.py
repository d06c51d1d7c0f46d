"""`tokprof ingest --engine ray` (issue 18.5): the per-run work (import of the corpus trace files, token
counting, prefix-break billing replay, row building) on a real local Ray cluster, the ledger loaded from
the workers' Parquet dataset, gives the same ledger as the single-process path, table by table."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet_engines import assert_same_ledger

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray") if not os.environ.get("CI") else __import__("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_ingest_equals_local_ingest_on_the_corpus(ray_cluster, tmp_path):
    if not CORPUS.is_dir():
        pytest.fail(f"corpus not found at {CORPUS}") if os.environ.get("CI") else pytest.skip("no corpus")
    import warnings

    from tokprof.commands.import_cmd import expand
    from tokprof.fleet.ledger import connect, ingest
    from tokprof.fleet.ray_engine import ray_ingest

    bad = tmp_path / "truncated.json"
    bad.write_text('{"tasks": [')  # a hostile file: named in the report by both engines, the others land
    files = [*expand([str(CORPUS)]), bad]
    local = connect(tmp_path / "local.duckdb")
    on_ray = connect(tmp_path / "ray.duckdb")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep_local = ingest(local, files)
        rep_ray = ray_ingest(on_ray, files)
    assert rep_local.to_dict() == rep_ray.to_dict()
    assert rep_ray.runs == 383 and rep_ray.calls == 5745
    assert len(rep_ray.errors) == 1 and rep_ray.errors[0].startswith(f"{bad}: ")
    assert_same_ledger(local, on_ray)
    assert not (tmp_path / "ray.duckdb.parts").exists()  # the workers' Parquet parts are loaded and removed
    # incremental on Ray as well: nothing changed, nothing is sent to the cluster
    again = ray_ingest(on_ray, files)
    assert again.files_ingested == 0 and again.files_skipped == len(files) - 1  # the bad file is tried again
    local.close()
    on_ray.close()
