"""A repeated run's rows come from its template (tokprof.fleet.copies) and equal the full path's, cell for cell.

Oracle: a second builder that sees the same runs, except that the copy's call objects are deep copies (a
different template key), so every row of the copy goes through the full per-span path."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest

from tokprof.fleet import copies
from tokprof.fleet.rows import RowBuilder
from tokprof.profiler.model import Run, Span


@pytest.fixture()
def tagged_runs(corpus: Path) -> list[Run]:
    from tokprof.commands.import_cmd import expand
    from tokprof.profiler.interchange import import_file

    runs: list[Run] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f in expand([str(corpus)]):
            runs.extend(import_file(f).runs)
    # runs whose spans carry tags of their own (the tag chains a copy must re-derive under new run tags)
    return [r for r in runs if any(s.tags for s in r.spans) and r.llm_spans()][:5]


def _copy(run: Run, i: int, shift: int, deep: bool) -> Run:
    spans = [Span(s.span_id, s.parent_id, f"copy{i}", s.kind, s.name, s.start_ns, s.wall_start_ns + shift, s.end_ns,
                  s.status, s.error, s.attributes, s.tags, copy.deepcopy(s.llm) if deep else s.llm)
             for s in run.spans]
    return Run(run_id=f"copy{i}", name="copy", tags={"team": f"t{i % 2}", "env": "prod"}, spans=spans,
               started_wall_ns=run.started_wall_ns + shift, metadata={"source": "test"})


def _rows(runs: list[Run], deep: bool, batch_every: int) -> list[dict[str, list]]:
    b = RowBuilder(diagnose=False)
    out = []
    for run in runs:
        b.add_run(run)
    out.append({k: t.to_pylist() for k, t in b.tables().items()})
    for i, run in enumerate(runs * 2):  # copies, across a batch boundary: slots are re-derived per batch
        b.add_run(_copy(run, i, 86_400_000_000_000 * (i + 1), deep))
        if i % batch_every == batch_every - 1:
            out.append({k: t.to_pylist() for k, t in b.tables().items()})
    out.append({k: t.to_pylist() for k, t in b.tables().items()})
    return out


def test_copies_equal_the_full_path(tagged_runs: list[Run], monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(tagged_runs) >= 3
    used = []
    real = copies.add_copy
    monkeypatch.setattr("tokprof.fleet.rows.add_copy", lambda *a: (used.append(1), real(*a)))
    fast = _rows(tagged_runs, deep=False, batch_every=3)
    assert len(used) == 2 * len(tagged_runs)  # every copy went through its template
    used.clear()
    full = _rows(tagged_runs, deep=True, batch_every=3)
    assert not used
    assert fast == full
    calls = [r for batch in fast for r in batch["call_facts"]]
    assert len(calls) == 3 * sum(len(r.llm_spans()) for r in tagged_runs)
