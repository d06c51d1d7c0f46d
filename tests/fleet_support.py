"""Shared set-up of the fleet tests: the real corpus imported once per session through the existing
importers, saved as run files, with each run's summary (the oracle the ledger must agree with)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from tokprof.profiler.model import Run


@dataclass
class ImportedCorpus:
    runs_dir: Path
    runs: list[Run]
    summaries: list[dict]


def import_corpus(corpus: Path, out: Path) -> ImportedCorpus:
    from tokprof.commands.import_cmd import expand
    from tokprof.profiler.interchange import import_file
    from tokprof.profiler.store import save_run

    runs: list[Run] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown-model warnings: the summary counts those calls as unpriced
        for f in expand([str(corpus)]):
            result = import_file(f)
            runs.extend(result.runs)
        for r in runs:
            save_run(r, out)
        summaries = [r.summary(top=0).to_dict() for r in runs]
    return ImportedCorpus(out, runs, summaries)
