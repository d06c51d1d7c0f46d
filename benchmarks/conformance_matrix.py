"""Which client paths record which provider dialects correctly: the conformance matrix (dialects x paths).

Run: ``python benchmarks/conformance_matrix.py``. Every (client call path x sync/async x stream) combination
of tests/conformance_cases.py is driven against the loopback server answering in each dialect, and checked
field by field (usage == what the server sent, source ``provider``, model name, one LLM span). A cell is ✅
when every combination of that row and column passed, ❌ otherwise (the failures are listed), and blank
when the combination does not exist (a dialect of another API). Nothing touches the network.
"""

from __future__ import annotations

import logging
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from conformance_cases import DIALECTS, combos  # noqa: E402
from conformance_driver import check  # noqa: E402
from llm_server import LLMServer  # noqa: E402


def main() -> int:
    logging.getLogger("tokprof").setLevel(logging.ERROR)
    cells: dict[tuple[str, str], list[str | None]] = defaultdict(list)
    failures: list[str] = []
    with LLMServer() as server:
        for path, dialect in combos():
            server.reset()
            problem = check(path, dialect, server)
            col = f"{path.client} {'responses.' if path.route == 'responses' else ''}{path.call}"
            cells[(col, dialect.name)].append(problem)
            if problem:
                failures.append(f"{path.id} x {dialect.name}: {problem}")
    cols = list(dict.fromkeys(c for c, _ in cells))
    rows = [d.name for d in DIALECTS if any((c, d.name) in cells for c in cols)]
    print("| dialect \\ client path | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for r in rows:
        marks = []
        for c in cols:
            results = cells.get((c, r))
            marks.append("" if results is None else "✅" if not any(results) else "❌")
        print(f"| {r} | " + " | ".join(marks) + " |")
    n = sum(len(v) for v in cells.values())
    print(f"\n{n - len(failures)}/{n} combinations recorded exactly (sync/async x stream/non-stream per cell)")
    for f in failures:
        print("  ❌", f)
    # The paths that do not fit dialects x paths (embeddings, legacy completions, token counting, cloud
    # clients, multimodal): one row each, recorded vs what the server sent (benchmarks/probe_paths.py).
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from probe_paths import main as probe_main

    print("\n## Client paths outside the dialect matrix\n")
    probe_failed = probe_main()
    return 1 if failures or probe_failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
