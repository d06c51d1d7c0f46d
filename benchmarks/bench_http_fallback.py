"""Overhead of the HTTP-level fallback (``profiler/integrations/http_fallback.py``) on real requests.

A real client over real loopback HTTP (``tests/llm_server.py``), side by side in one process, interleaved over
rounds (the best round of each kept, the least disturbed by the rest of the machine):

- ``openai`` chat.completions.create outside a profile, inside a profile (SDK patch + fallback hook, which
  skips the request the SDK patch records), and inside with ``TOKPROF_HTTP_FALLBACK=0``;
- a raw ``httpx`` POST of a chat completion outside vs inside a profile (the fallback records it);
- a raw ``httpx`` GET of a non-LLM path outside vs inside (the hook only looks at it).

Prints µs per request and the ratio to the untraced request. Loopback requests take a few hundred µs, so
the ratios are an upper bound on what a real network call (tens of ms) would show.

    python benchmarks/bench_http_fallback.py [--requests 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from llm_server import LLMServer  # noqa: E402 - the tests' loopback server

from tokprof import profile  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _timed(fn: Callable[[], object], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import httpx
    from openai import OpenAI

    with LLMServer() as server:
        client = OpenAI(base_url=server.openai_url, api_key="t", max_retries=0)
        raw = httpx.Client()

        def sdk() -> object:
            return client.chat.completions.create(**BODY)  # type: ignore[call-overload]

        def post() -> object:
            return raw.post(f"{server.openai_url}/chat/completions", json=BODY)

        def get() -> object:
            return raw.get(f"{server.url}/health")

        def inside(fn: Callable[[], object], env: str | None = None) -> Callable[[], float]:
            def go() -> float:
                if env is not None:
                    os.environ["TOKPROF_HTTP_FALLBACK"] = env
                try:
                    with profile("bench", save=False):
                        return _timed(fn, args.requests)
                finally:
                    os.environ.pop("TOKPROF_HTTP_FALLBACK", None)
            return go

        cases: dict[str, Callable[[], float]] = {
            "openai SDK, no profile": lambda: _timed(sdk, args.requests),
            "openai SDK, in profile": inside(sdk),
            "openai SDK, in profile, fallback off": inside(sdk, "0"),
            "raw httpx LLM POST, no profile": lambda: _timed(post, args.requests),
            "raw httpx LLM POST, in profile (recorded by the fallback)": inside(post),
            "raw httpx GET other path, no profile": lambda: _timed(get, args.requests),
            "raw httpx GET other path, in profile": inside(get),
        }
        for fn in cases.values():  # warm up: imports, connections, tokenizers
            fn()
        best = {k: float("inf") for k in cases}
        for _ in range(args.rounds):
            for k, fn in cases.items():
                best[k] = min(best[k], fn())
    base = {"openai": best["openai SDK, no profile"], "raw httpx LLM": best["raw httpx LLM POST, no profile"],
            "raw httpx GET": best["raw httpx GET other path, no profile"]}
    print(f"{args.requests} requests x {args.rounds} rounds, best round, loopback; load {os.getloadavg()[0]:.1f}")
    for k, us in best.items():
        ref = next(v for p, v in base.items() if k.startswith(p))
        print(f"  {k:<60} {us:8.0f} µs/request  {us / ref:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
