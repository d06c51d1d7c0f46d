"""Traced recursion (issue #21, minor): a function under ``@trace`` reaches about the depth it reaches
untraced before ``RecursionError``; that error reaches the user's code unchanged (no tokprof exception
chained onto it) and every level is recorded as a span; the user's recursion limit is theirs again after."""

from __future__ import annotations

import sys

from tokprof import profile, trace


def _plain(n: int) -> int:
    return 0 if n == 0 else 1 + _plain(n - 1)


@trace(capture=False)
def _traced(n: int) -> int:
    return 0 if n == 0 else 1 + _traced(n - 1)


@trace
def _traced_capturing(n: int) -> int:
    return 0 if n == 0 else 1 + _traced_capturing(n - 1)


def _max_depth(fn) -> int:
    """The deepest ``fn(n)`` that returns, by bisection (the oracle: the interpreter itself)."""
    lo, hi = 1, 50_000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            fn(mid)
            lo = mid
        except RecursionError:
            hi = mid - 1
    return lo


def test_traced_recursion_reaches_the_untraced_depth() -> None:
    limit = sys.getrecursionlimit()
    plain = _max_depth(_plain)
    with profile("recursion", save=False):
        traced = _max_depth(_traced)
        capturing = _max_depth(_traced_capturing)
        plain_inside = _max_depth(_plain)
    assert traced >= 0.9 * plain - 20, (traced, plain)
    assert capturing >= 0.9 * plain - 20, (capturing, plain)
    # the headroom is for traced levels only: untraced code, and the limit after the profile, are the user's
    assert plain_inside == plain
    assert sys.getrecursionlimit() == limit


def test_recursion_error_passes_unchanged_and_every_level_is_recorded() -> None:
    limit = sys.getrecursionlimit()
    caught: RecursionError | None = None
    with profile("runaway", save=False) as run:
        try:
            _traced(10 ** 6)  # never reaches 0
        except RecursionError as exc:
            caught = exc
        after = sys.getrecursionlimit()
    assert type(caught) is RecursionError
    assert caught.__context__ is None and caught.__cause__ is None  # nothing of tokprof chained onto it
    levels = [s for s in run.spans if s.name == "_traced"]
    assert len(levels) >= 0.9 * limit - 20
    assert all(s.status == "error" and s.end_ns is not None for s in levels)
    assert all(s.error is not None and s.error.startswith("RecursionError") for s in levels)
    # every level's parent is the level above it (nothing lost in the middle)
    ids = {s.span_id for s in levels}
    assert sum(1 for s in levels if s.parent_id not in ids) == 1
    assert after == limit and sys.getrecursionlimit() == limit


def test_user_limit_change_inside_a_traced_recursion_stands() -> None:
    limit = sys.getrecursionlimit()
    seen: list[int] = []

    @trace
    def dive(n: int) -> int:
        if n == 0:
            sys.setrecursionlimit(limit + 500)  # the user's own choice, made deep inside
            seen.append(sys.getrecursionlimit())
            return 0
        return dive(n - 1)

    try:
        with profile("limit", save=False):
            dive(100)
        assert seen == [limit + 500]
        assert sys.getrecursionlimit() == limit + 500
    finally:
        sys.setrecursionlimit(limit)


def test_traced_recursion_outside_any_profile_reaches_the_untraced_depth() -> None:
    """Outside a profile nothing is recorded, but the wrapper frame used to halve the depth (497 of 997)."""
    limit = sys.getrecursionlimit()
    plain = _max_depth(_plain)
    traced = _max_depth(_traced)
    capturing = _max_depth(_traced_capturing)
    assert traced >= plain and capturing >= plain, (traced, capturing, plain)
    # the headroom is given back: untraced code after it gets the user's depth, the limit is theirs
    assert sys.getrecursionlimit() == limit
    assert _max_depth(_plain) == plain


def test_runaway_recursion_outside_a_profile_passes_unchanged() -> None:
    import threading

    limit = sys.getrecursionlimit()
    caught: list[BaseException] = []
    try:
        _traced(10 ** 6)
    except RecursionError as exc:
        caught.append(exc)
    assert len(caught) == 1 and type(caught[0]) is RecursionError
    assert caught[0].__context__ is None and caught[0].__cause__ is None
    assert sys.getrecursionlimit() == limit
    # another thread recursing afterwards is unaffected (the count went back to 0)
    depths: list[int] = []
    t = threading.Thread(target=lambda: depths.append(_traced(300)))
    t.start()
    t.join()
    assert depths == [300] and sys.getrecursionlimit() == limit
