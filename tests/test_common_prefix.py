"""``common_prefix`` (the prefix-break replay's unit comparison) against the plain loop it replaced."""

from hypothesis import given, settings
from hypothesis import strategies as st

from tokprof.profiler.providers.prompt_units import common_prefix


def _loop(a: list[int], b: list[int]) -> int:
    i, n = 0, min(len(a), len(b))
    while i < n and a[i] == b[i]:
        i += 1
    return i


@settings(max_examples=400, deadline=None)
@given(st.lists(st.integers(0, 3), max_size=3000), st.lists(st.integers(0, 3), max_size=3000), st.data())
def test_common_prefix_equals_the_loop(a: list[int], b: list[int], data: st.DataObject) -> None:
    # a long shared head makes the interesting case (the mismatch deep inside a slice)
    head = data.draw(st.lists(st.integers(0, 3), max_size=5000))
    a, b = head + a, head + b
    want = _loop(a, b)
    assert common_prefix(a, b) == want
    start = data.draw(st.integers(0, want))  # any start known to match gives the same answer
    assert common_prefix(a, b, start) == want


def test_edges() -> None:
    assert common_prefix([], []) == 0
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([1] * 1000 + [2], [1] * 1000 + [3]) == 1000
    assert common_prefix([5], [6]) == 0
