"""Incremental (memoized) vs from-scratch prompt counting on the τ-bench (tau1) gpt-4o airline corpus.

Every assistant turn of every run is one call whose prompt is the trajectory before it, so each call
re-sends the whole history. Counting each call from scratch tokenizes the history again and again
(quadratic in run length); incremental counting tokenizes each distinct message once. Two ways, timed
side by side with the from-scratch count in one process:

* **run at once** — ``count_prompts(prompts)``: the prompts of a recorded run in one batch (how importers
  and ``fill_run_usage`` count a run, and what this benchmark does: count every call of a corpus);
* **call by call** — ``count_messages(prompt)`` once per call with a shared memo (how a live run counts,
  one LLM call at a time, each checked against the memo by value).

Run: ``python benchmarks/bench_counting.py`` (needs ../shared/corpus). Prints the times, the speed-ups and
the floor (tokenizing each distinct text once), and checks that every way gives identical counts. Exits 1
when counting the corpus at once is less than 20x faster than from scratch.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

from tokprof.profiler.providers.message_cache import MessageTokenCache
from tokprof.profiler.providers.chat_format import count_messages, count_prompts
from tokprof.profiler.providers.tokenizers import get_encoder

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "tau1" / "gpt-4o-airline.json.gz"
MODEL = "gpt-4o"
REPEATS = 5
TARGET = 20.0


def calls(runs: list[dict]) -> list[list[dict]]:
    """The prompt of every agent call: the trajectory prefix before each assistant message."""
    out = []
    for run in runs:
        traj = run["traj"]
        for i, m in enumerate(traj):
            if m.get("role") == "assistant":
                out.append(traj[:i])
    return out


def texts_of(message: dict) -> list[str]:
    """The texts of a message that are tokenized: its content and its tool calls' arguments."""
    calls = message.get("tool_calls") or []
    return [message.get("content") or "", *(c["function"]["arguments"] for c in calls)]


def main() -> int:
    if not CORPUS.is_file():
        print(f"corpus not found: {CORPUS}", file=sys.stderr)
        return 2
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        runs = json.load(f)
    prompts = calls(runs)
    get_encoder("o200k_base")  # build the encoder outside every timing

    # Best of REPEATS for each way (timeit-style: the minimum is the least disturbed by other processes),
    # timed in this process's CPU time: the machine is shared, and wall time mostly measures the others.
    # The ways take turns within each repetition, and every incremental repetition starts from an empty
    # memo, so it pays for the unique content each time.
    best = {"scratch": float("inf"), "batch": float("inf"), "calls": float("inf")}
    results: dict[str, list[int]] = {}
    caches: dict[str, MessageTokenCache] = {}

    def timed(name: str, count) -> None:  # noqa: ANN001
        cache = caches[name] = MessageTokenCache()
        t0 = time.process_time()
        results[name] = count(cache)
        best[name] = min(best[name], time.process_time() - t0)

    for _ in range(REPEATS):
        timed("scratch", lambda cache: [count_messages(p, MODEL, cache=None) for p in prompts])
        timed("batch", lambda cache: count_prompts(prompts, MODEL, cache=cache))
        timed("calls", lambda cache: [count_messages(p, MODEL, cache=cache) for p in prompts])

    # The floor of any memo: tokenizing each distinct text a count needs (contents and tool-call arguments)
    # once, with nothing else around it.
    enc = get_encoder("o200k_base")
    distinct = list({text: None for p in prompts for m in p for text in texts_of(m)})
    t_floor = float("inf")
    for _ in range(REPEATS):
        t0 = time.process_time()
        for text in distinct:
            enc.encode(text)
        t_floor = min(t_floor, time.process_time() - t0)

    identical = results["batch"] == results["scratch"] == results["calls"]
    assert identical, "incremental and from-scratch counts differ"
    n_msgs = sum(len(p) for p in prompts)
    batch_x = best["scratch"] / best["batch"]
    calls_x = best["scratch"] / best["calls"]
    memo = caches["batch"]
    print(f"tau1 gpt-4o airline: {len(runs)} runs, {len(prompts)} agent calls, {n_msgs:,} prompt messages, "
          f"{sum(results['scratch']):,} prompt tokens in total")
    print(f"from scratch           : {best['scratch']:8.3f} s  (best of {REPEATS})")
    print(f"incremental, at once   : {best['batch']:8.3f} s  {batch_x:5.1f}x  (count_prompts; cold memo: "
          f"{memo.misses:,} texts tokenized, {memo.hits:,} memo hits, {memo.prefix_hits:,} re-sent)")
    print(f"incremental, by call   : {best['calls']:8.3f} s  {calls_x:5.1f}x  (count_messages per call, shared memo)")
    print(f"floor                  : {t_floor:8.3f} s  (just tokenizing the {len(distinct):,} distinct texts "
          f"(contents, tool-call arguments) once: no memo can beat {best['scratch'] / t_floor:.1f}x here)")
    print(f"speed-up (at once)     : {batch_x:8.1f}x  (target >= {TARGET:.0f}x); counts identical: {identical}")
    return 0 if batch_x >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
