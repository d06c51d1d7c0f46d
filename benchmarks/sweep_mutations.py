"""The red team's single-field mutation sweep (issue #21): every field of a valid two-call run file set to
each hostile value class (NaN, inf, -1, 1e308, 10**30, list, dict, str, bool, null; tests/mutation_sweep.py)
and run through ``show``, ``show --json`` (the summary), ``report``, ``optimize``, ``count``, ``compare``,
``ingest``, ``stats`` and ``export`` in-process. Counts tracebacks (an uncaught exception, or "Traceback"
on stderr) and hangs (no answer in 60 s).

    python benchmarks/sweep_mutations.py [--every N] [--commands show,report,...]

``--every N`` runs every N-th mutation (the full sweep is ~1,300 mutations x 9 commands).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import signal
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.hostile_runs import TEXT  # noqa: E402
from tests.mutation_sweep import mutations  # noqa: E402
from tokprof.cli import main  # noqa: E402


def commands(path: Path, good: Path, out: Path) -> dict[str, list[str]]:
    return {
        "show": ["show", str(path)],
        "summary": ["show", str(path), "--json"],
        "report": ["report", str(path), "--no-html", "--json"],
        "optimize": ["optimize", str(path), "--out", str(out / "opt"), "--json"],
        "count": ["count", str(path), "--model", "gpt-4o"],
        "compare": ["compare", str(path), str(good), "--no-html", "--json"],
        "ingest": ["ingest", str(path), "--ledger", str(out / "l.duckdb"), "--json"],
        "stats": ["stats", "--dir", str(path.parent), "--ledger", str(out / "s.duckdb"), "--json"],
        "export": ["export", str(path), "-o", str(out / "otlp.json")],
    }


def run_one(argv: list[str]) -> str | None:
    def hang(*_: Any) -> None:
        raise TimeoutError("no answer in 60 s")

    previous = signal.signal(signal.SIGALRM, hang)
    signal.alarm(60)
    err = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            warnings.simplefilter("ignore")
            main(argv)
    except SystemExit:
        pass
    except BaseException as exc:  # noqa: BLE001 - what the sweep counts
        return f"{type(exc).__name__}: {str(exc)[:160]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    text = err.getvalue()
    if "Traceback" in text:
        return "traceback printed: " + text.strip().splitlines()[-1][:160]
    return None


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--commands", default="")
    args = ap.parse_args(argv)
    cases = mutations()[args.offset:: args.every]
    failures: list[str] = []
    kinds: Counter[str] = Counter()
    runs = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["HOME"] = str(root / "home")
        os.environ["TOKPROF_MAX_INPUT_BYTES"] = str(4 << 20)
        os.chdir(root)
        good = root / "good" / "good.jsonl"
        good.parent.mkdir()
        good.write_text(TEXT)
        for i, (name, text) in enumerate(cases):
            d = root / "in" / str(i)
            d.mkdir(parents=True)
            p = d / "run.jsonl"
            p.write_text(text)
            cmds = commands(p, good, root / "out" / str(i))
            wanted = [c for c in (args.commands.split(",") if args.commands else cmds)]
            for c in wanted:
                runs += 1
                problem = run_one(cmds[c])
                if problem:
                    failures.append(f"{name} | {c} | {problem}")
                    kinds[problem.split(":")[0] + " in " + c] += 1
    dt = time.perf_counter() - t0
    print(f"mutations {len(cases)} x commands {len(wanted)} = {runs} runs in {dt:.0f} s: "
          f"tracebacks {len(failures)}")
    for k, n in kinds.most_common():
        print(f"  {n:5d}  {k}")
    for f in failures[:60]:
        print("  " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main_())
