"""The simulator's prefix index: block hashes computed incrementally equal the full computation, and a
refreshed match re-stamps exactly the matched blocks (one shared entry per insert must not change which
blocks stay alive)."""

from __future__ import annotations

import random

from tokprof.profiler.providers.cache_sim import ProviderCache, _Seq
from tokprof.profiler.providers.prompt_units import BLOCK_UNITS, block_hashes, shared_units


def test_incremental_block_hashes_equal_the_full_computation() -> None:
    rng = random.Random(3)
    base = [rng.randrange(1000) for _ in range(10 * BLOCK_UNITS + 5)]
    prev = block_hashes(base)
    for common in (0, 7, BLOCK_UNITS, 3 * BLOCK_UNITS + 2, len(base)):
        other = base[:common] + [rng.randrange(1000) for _ in range(4 * BLOCK_UNITS + 3)]
        assert block_hashes(other, prev, common) == block_hashes(other)
    shorter = base[:2 * BLOCK_UNITS + 1]  # shares all of itself with base
    assert block_hashes(shorter, prev, len(shorter)) == block_hashes(shorter)


def test_shared_units_counts_the_common_leading_parts() -> None:
    assert shared_units(["a", "b", "c"], [3, 5, 9], ["a", "b", "x"]) == 5
    assert shared_units(["a"], [3], ["b"]) == 0
    assert shared_units(["a", "b"], [3, 5], ["a", "b", "c"]) == 5


def test_refresh_restamps_only_the_matched_blocks() -> None:
    units = list(range(4 * BLOCK_UNITS))
    blocks = block_hashes(units)
    cache = ProviderCache()
    ttl = 100
    cache.insert_automatic("m", _Seq(units, [(len(units), len(units))]), 0, ttl)
    # a prompt sharing the first two blocks, matched at t=90 with refresh
    other = units[:2 * BLOCK_UNITS] + [-1] * (2 * BLOCK_UNITS)
    ob = block_hashes(other)
    matched, entry = cache.match_automatic("m", other, ob, 90, True)
    assert matched == 2 * BLOCK_UNITS and entry is not None
    # the refreshed blocks (1, 2) were last used at 90, blocks 3 and 4 still at 0 (as with an entry per block)
    stamps = [cache.blocks["m"][h].last_used_ns for h in blocks[1:]]
    assert stamps == [90, 90, 0, 0]
    assert all(cache.blocks["m"][h].seq.units is units for h in blocks[1:])  # the owner is unchanged
    # at t=150 only the refreshed prefix is found (refined against its owner, as before)
    assert cache.match_automatic("m", other, ob, 150, False)[0] == 2 * BLOCK_UNITS
    fresh = ProviderCache()
    fresh.insert_automatic("m", _Seq(units, [(len(units), len(units))]), 0, ttl)
    assert fresh.match_automatic("m", units, blocks, 150, False) == (0, None)  # without it: nothing left
    assert fresh.match_automatic("m", units, blocks, 50, False)[0] == len(units)
