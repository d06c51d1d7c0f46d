"""Red team, command line: options naming the wrong kind of path end in one clear line, never a traceback
(found by a CLI option fuzz: ``report -o <folder>`` raised IsADirectoryError; ``optimize --out /dev/null``
and ``--out <a file>`` raised NotADirectoryError)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hostile_runs import TEXT
from tokprof.cli import main


@pytest.fixture
def good(tmp_path: Path) -> Path:
    p = tmp_path / "good.jsonl"
    p.write_text(TEXT)
    return p


@pytest.mark.parametrize("argv", [
    ["report", "{run}", "-o", "{folder}"],
    ["optimize", "{run}", "--out", "/dev/null"],
    ["optimize", "{run}", "--out", "{run}"],
], ids=["report-o-folder", "optimize-out-devnull", "optimize-out-file"])
def test_wrong_kind_of_output_path_is_one_line(argv: list[str], good: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    before = good.read_text()
    rc = main([a.format(run=good, folder=folder) for a in argv])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith("tokprof: error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert good.read_text() == before and list(folder.iterdir()) == []  # nothing overwritten
    assert [p.name for p in tmp_path.glob(".*.tmp")] == []  # no temp file left behind


def test_main_called_in_process_many_times_does_not_stack_warning_wrappers():
    """Each ``main()`` used to wrap ``warnings.formatwarning`` again and never restore it: after ~1,000
    in-process calls (a test session, a host app) formatting one warning overflowed the stack."""
    import warnings

    from tokprof.cli import main

    before = warnings.formatwarning
    for _ in range(3):
        main(["ls", "--dir", "/nonexistent-tokprof-dir"])
    assert warnings.formatwarning is before
