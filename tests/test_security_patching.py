"""Issue #21 point 11: tokprof wraps whatever is current and removes only its own layer, so another
tracer's wrapper installed during a profile keeps working after it."""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import pytest

from tokprof.profiler import profile
from tokprof.profiler.integrations import instrument, uninstrument


def test_thread_pool_wrapper_installed_during_profile_survives_it() -> None:
    seen = []
    stdlib = ThreadPoolExecutor.submit
    with profile("p"):
        below = ThreadPoolExecutor.submit

        @functools.wraps(below)
        def other_tracer(self, fn, /, *a, **k):  # noqa: ANN001, ANN202
            seen.append(fn)
            return below(self, fn, *a, **k)

        ThreadPoolExecutor.submit = other_tracer
    try:
        assert ThreadPoolExecutor.submit is other_tracer  # not removed by the profile's exit
        with ThreadPoolExecutor(1) as pool:
            assert pool.submit(lambda: 41 + 1).result() == 42
        assert len(seen) == 1  # and still called
    finally:
        ThreadPoolExecutor.submit = stdlib


def test_profile_wraps_a_wrapper_installed_before_it() -> None:
    stdlib = ThreadPoolExecutor.submit
    calls = []

    def other(self, fn, /, *a, **k):  # noqa: ANN001, ANN202
        calls.append(1)
        return stdlib(self, fn, *a, **k)

    ThreadPoolExecutor.submit = other
    try:
        with profile("p"):
            with ThreadPoolExecutor(1) as pool:
                pool.submit(lambda: None).result()
        assert ThreadPoolExecutor.submit is other and calls == [1]
    finally:
        ThreadPoolExecutor.submit = stdlib


def test_sdk_wrapper_installed_while_instrumented_is_kept() -> None:
    pytest.importorskip("openai")
    from openai.resources.chat.completions.completions import Completions

    pristine = Completions.__dict__["create"]
    instrument("openai")
    ours = Completions.__dict__["create"]
    hits = []

    @functools.wraps(ours)
    def other(self, *a, **k):  # noqa: ANN001, ANN202
        hits.append(1)
        return ours(self, *a, **k)

    Completions.create = other
    try:
        uninstrument("openai")
        assert Completions.__dict__["create"] is other  # their layer stays ...
        assert ours.__tokprof_layer__.active is False  # ... ours is a pass-through inside it
        assert ours.__wrapped__ is pristine  # and it calls straight down to what it wrapped
    finally:
        Completions.create = pristine
