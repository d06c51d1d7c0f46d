"""Counting text with very long runs of one kind of character (issue #21): tiktoken's BPE is quadratic in
the length of a pre-tokenized piece, so tokprof cuts a piece longer than ``LONG_PIECE`` characters into
``CHUNK``-character parts (profiler/providers/encoders.py). This bench measures

1. the count error against exact tiktoken: on real agent messages (the corpus: must be 0, and no message
   has such a piece) and on adversarial texts (one letter, space, punctuation, CJK, random letters...);
2. the time of counting long runs, ours vs exact;
3. ``tokprof report`` on a run whose one call holds a 20 MB adversarial message and reports no usage (so
   every token is counted), under a generous bound (the issue measured 139 s before the cut).

    python benchmarks/bench_long_runs.py [--corpus ../shared/corpus] [--mb 20]
"""

from __future__ import annotations

import argparse
import json
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokprof.profiler.providers.encoders import CHUNK, LONG_PIECE, get_encoder, has_long_piece

BOUND_S = 120.0  # generous: the report of a 20 MB adversarial message, on a loaded 2-core machine


def adversarial(n: int) -> dict[str, str]:
    rnd = random.Random(7)
    return {
        "one letter": "a" * n,
        "upper letter": "A" * n,
        "spaces": " " * n,
        "newlines": "\n" * n,
        "punctuation": "!" * n,
        "underscores": "_" * n,
        "two letters": "ab" * (n // 2),
        "accented": "é" * n,
        "CJK": "中" * n,
        "random letters": "".join(rnd.choice(string.ascii_letters) for _ in range(n)),
        "text around a run": "Here is the log:\n" + "x" * n + "\nend of log, thanks.",
        "base64-like": "".join(rnd.choice(string.ascii_letters + string.digits + "+/") for _ in range(n)),
    }


def corpus_texts(root: Path, limit: int = 20_000) -> list[str]:
    """Every string longer than 20 characters in the corpus files (messages, tool outputs...), up to ``limit``."""
    import gzip

    out: list[str] = []
    for p in sorted(root.rglob("*")):
        if not p.is_file() or not any(p.name.endswith(s) for s in (".json", ".jsonl", ".json.gz", ".jsonl.gz", ".traj")):
            continue
        try:
            raw = gzip.decompress(p.read_bytes()) if p.name.endswith(".gz") else p.read_bytes()
            text = raw.decode("utf-8", errors="replace")
        except OSError:
            continue
        try:
            docs = [json.loads(text)]
        except ValueError:
            docs = []
            for line in text.splitlines():
                try:
                    docs.append(json.loads(line))
                except ValueError:
                    continue
        stack: list = docs
        while stack and len(out) < limit:
            v = stack.pop()
            if isinstance(v, dict):
                stack.extend(v.values())
            elif isinstance(v, list):
                stack.extend(v)
            elif isinstance(v, str) and len(v) > 20:
                out.append(v)
        if len(out) >= limit:
            break
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[1].parent / "shared" / "corpus"))
    ap.add_argument("--mb", type=int, default=20)
    ap.add_argument("--encodings", default="o200k_base,cl100k_base")
    args = ap.parse_args()
    print(f"LONG_PIECE {LONG_PIECE} chars, CHUNK {CHUNK} chars")

    for name in args.encodings.split(","):
        enc = get_encoder(name)
        exact = enc.encoding.encode_ordinary  # type: ignore[attr-defined]
        texts = corpus_texts(Path(args.corpus))
        diff = sum(abs(len(enc.encode(t)) - len(exact(t))) for t in texts)
        long_ones = sum(1 for t in texts if has_long_piece(t))
        total = sum(len(exact(t)) for t in texts)
        print(f"[{name}] corpus: {len(texts):,} texts, {total:,} tokens, texts with a piece > {LONG_PIECE}: "
              f"{long_ones}, count difference {diff}")
        for n in (100_000, 800_000):
            for label, text in adversarial(n).items():
                t0 = time.perf_counter()
                ours = len(enc.encode(text))
                t_ours = time.perf_counter() - t0
                t0 = time.perf_counter()
                ref = len(exact(text))
                t_ref = time.perf_counter() - t0
                print(f"[{name}] {label:18} {n:>8,} chars: exact {ref:>8,} ours {ours:>8,} "
                      f"diff {ours - ref:+5d} ({100 * (ours - ref) / max(ref, 1):+.4f}%)  "
                      f"time exact {t_ref:6.3f} s ours {t_ours:6.3f} s  estimated label {has_long_piece(text)}")

    # 3. report on a run with one 20 MB adversarial message, usage unreported (every token counted)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.jsonl"
        big = "a" * (args.mb << 20)
        recs = [
            {"type": "run", "schema": 1, "run_id": "big", "name": "big", "tags": {}, "started_wall_ns": 1,
             "metadata": {}},
            {"type": "span", "span_id": "1", "parent_id": None, "run_id": "big", "kind": "llm", "name": "gpt-4o",
             "start_ns": 1, "end_ns": 2, "wall_start_ns": 1, "status": "ok",
             "llm": {"provider": "openai", "model": "gpt-4o", "params": {}, "tools": [],
                     "messages": [{"role": "user", "content": big}],
                     "output": {"role": "assistant", "content": "ok"}, "usage": {}, "cost": None}},
            {"type": "end", "ended_wall_ns": 3},
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in recs))
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "tokprof.cli", "report", str(path), "--no-html", "--json"],
                              capture_output=True, text=True, timeout=BOUND_S * 5)
        dt = time.perf_counter() - t0
        ok = proc.returncode == 0
        print(f"report on a {args.mb} MB one-letter message: exit {proc.returncode}, {dt:.1f} s "
              f"(bound {BOUND_S:.0f} s){'' if ok else ': ' + proc.stderr[-300:]}")
        return 0 if ok and dt < BOUND_S else 1


if __name__ == "__main__":
    sys.exit(main())
