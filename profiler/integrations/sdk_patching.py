"""Patching SDK methods in layers: tokprof wraps whatever is installed (another tracer's wrapper included)
and, on exit, removes only its own layer."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable


class Layer:
    """Whether one installed wrapper still does tokprof's work (a wrapper that cannot be removed, because
    another library wrapped on top of it, is switched to a pass-through instead)."""

    __slots__ = ("active",)

    def __init__(self) -> None:
        self.active = True


@dataclass
class Patch:
    owner: type
    attr: str
    original: Any
    """The object found in ``owner.__dict__`` when patching — whatever was current, possibly another
    library's wrapper (restored as is, so identity checks hold)."""
    wrapper: Any = None
    layer: Layer | None = None


def patch(owner: type, attr: str, make: Callable[[Any], Any]) -> Patch:
    """Wrap whatever ``owner.attr`` is now (the SDK's method or another tracer's wrapper of it)."""
    import inspect

    original = owner.__dict__[attr]
    inner = make(original)
    if isinstance(inner, property):  # a descriptor (patch_raw_accessors): installed as is, no call layer
        setattr(owner, attr, inner)
        return Patch(owner, attr, original, inner, None)
    layer = Layer()
    if inspect.iscoroutinefunction(inner):
        @functools.wraps(inner)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await (inner if layer.active else original)(*args, **kwargs)
    else:
        @functools.wraps(inner)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return (inner if layer.active else original)(*args, **kwargs)
    wrapper.__wrapped__ = original  # what this layer sits on
    wrapper.__tokprof_layer__ = layer  # type: ignore[attr-defined]
    setattr(owner, attr, wrapper)
    return Patch(owner, attr, original, wrapper, layer)


def unpatch(patches: list[Patch]) -> None:
    """Remove only tokprof's own layer: when it is still the outermost, put back what it wrapped; when
    another library wrapped it meanwhile, leave their wrapper in place and make ours a pass-through
    (removing it would drop theirs too)."""
    for p in reversed(patches):
        current = p.owner.__dict__.get(p.attr)
        if p.wrapper is None or current is p.wrapper:
            setattr(p.owner, p.attr, p.original)
        elif p.layer is not None:
            p.layer.active = False


def patch_raw_accessors(owner: type) -> list[Patch]:
    """Make ``owner.with_raw_response`` / ``with_streaming_response`` build their wrapper on every access.

    The SDK caches them (``cached_property``), and the wrapper binds ``create`` when it is built: one built
    before instrumenting would call the unpatched method for ever. A ``property`` is a data descriptor, so
    it also wins over a wrapper already cached in an instance's ``__dict__``. Unpatching restores the
    ``cached_property``."""
    patches: list[Patch] = []
    for attr in ("with_raw_response", "with_streaming_response"):
        original = owner.__dict__.get(attr)
        func = getattr(original, "func", None)  # functools.cached_property keeps the function here
        if func is None:
            continue
        patches.append(patch(owner, attr, _as_property(func)))
    return patches


def _as_property(func: Callable[..., Any]) -> Callable[[Any], property]:
    """A patch factory that installs ``func`` as a property (whatever the original was)."""
    def make(_orig: Any) -> property:
        return property(func)
    return make
