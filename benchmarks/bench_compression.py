"""Each compression pass on top of caching, priced after prompt-cache planning, over the corpus.

``bench_savings.py --pipeline default`` shows the passes cumulatively, each column billed before the
final ``prompt-cache`` step. This script answers the other question: what does each compression pass add
*after* caching, on its own and all together? For every pass P it bills ``response-cache, tool-cache,
P, prompt-cache`` (so P is priced after cache planning: a pass that breaks the cached prefix shows it),
and reports agent cost, input tokens and reference retention per file and overall.

    python benchmarks/bench_compression.py [--corpus DIR] [--files GLOB] [--passes minify,dedupe,...]
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_savings import CORPUS, _stage, corpus_files, load_runs  # noqa: E402
from tokprof.optimizers.base import PassContext, make_pass  # noqa: E402

CACHING = ["response-cache", "tool-cache"]
EACH = ["minify", "observation-mask", "dedupe", "history-budget", "relevance-prune", "task-decompose"]
ALL = ["minify", "observation-mask", "dedupe", "history-budget"]


def pipelines(each: list[str]) -> dict[str, list[str]]:
    out = {"caching": [*CACHING, "prompt-cache"]}
    for p in each:
        out[f"+{p}"] = [*CACHING, p, "prompt-cache"]
    out["+default compression"] = [*CACHING, *ALL, "prompt-cache"]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(CORPUS))
    ap.add_argument("--files", default="tau*/*")
    ap.add_argument("--passes", default=",".join(EACH))
    args = ap.parse_args(argv)
    pipes = pipelines([p for p in args.passes.split(",") if p])
    tot: dict[str, list] = {name: [Decimal(0), 0, 0, 0] for name in ["recorded", *pipes]}
    head = f"{'file':40} " + " ".join(f"{n[:16]:>16}" for n in ["recorded", *pipes])
    print("agent cost (USD) and reference retention after caching + each pass (priced after prompt-cache)")
    print(head)
    print("-" * len(head))
    t0 = time.perf_counter()
    for path in corpus_files(Path(args.corpus), args.files):
        runs = load_runs(path)
        base = _stage("recorded", runs, "USD", runs)
        cells = {"recorded": base}
        for name, passes in pipes.items():
            ctx = PassContext()
            cur = runs
            for p in passes:
                ps = make_pass(p)
                cur = [ps.apply(r, ctx)[0] for r in cur]
            cells[name] = _stage(name, cur, "USD", runs)
        for name, st in cells.items():
            tot[name][0] += st.agent_cost or 0
            tot[name][1] += st.input_tokens
            tot[name][2] += st.agent_retained
            tot[name][3] += st.agent_referenced
        short = path.name if len(path.name) <= 40 else path.name[:18] + "…" + path.name[-21:]
        print(f"{short:40} " + " ".join(
            f"{(st.agent_cost or 0):8.4f} {(st.agent_retention or 1):6.2%}" for st in cells.values()))
    print("-" * len(head))
    print(f"{'ALL':40} " + " ".join(f"{v[0]:8.4f} {(v[2] / v[3] if v[3] else 1):6.2%}" for v in tot.values()))
    print(f"{'ALL input tokens':40} " + " ".join(f"{v[1]:>16,}" for v in tot.values()))
    rec, cached = tot["recorded"][0], tot["caching"][0]
    for name in pipes:
        if name == "caching" or not cached:
            continue
        c = tot[name][0]
        print(f"{name:24} agent cost {c:8.4f}: {1 - c / rec:6.1%} below recorded, {1 - c / cached:6.1%} below caching "
              f"alone, retention {tot[name][2] / max(1, tot[name][3]):.2%}")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
