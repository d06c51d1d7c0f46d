"""Fail if any two modules of the staged package import each other, directly or through others.

Imports inside functions count (grimp reads every import statement); imports under ``if TYPE_CHECKING:``
do not (they never run).

    python .ci/no_cycles.py STAGED_DIR
"""

from __future__ import annotations

import sys

import grimp


def cycles(package: str = "tokprof") -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    g = grimp.build_graph(package, include_external_packages=False, exclude_type_checking_imports=True)
    adj = {m: sorted(g.find_modules_directly_imported_by(m)) for m in sorted(g.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in adj:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            if i < len(adj[v]):
                work.append((v, i + 1))
                w = adj[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:
        sys.path.insert(0, sys.argv[1])
    found = cycles()
    for comp in found:
        print("import cycle: " + " <-> ".join(comp), file=sys.stderr)
    print(f"no_cycles: {len(found)} cycle(s)")
    sys.exit(1 if found else 0)
