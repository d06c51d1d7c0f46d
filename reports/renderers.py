"""One small interface for every report renderer, and a registry the CLI picks them from by name.

A renderer turns a :class:`tokprof.reports.types.ReportModel` into ``str`` or ``bytes`` and says which file
extension suits it (as pyinstrument's renderers do). Built-in renderers are found lazily by module, so
importing the registry imports no renderer and renderers never import each other::

    from tokprof.reports.renderers import get_renderer
    text = get_renderer("json").render(model)

A third-party renderer subclasses :class:`Renderer` and decorates itself with :func:`register`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from tokprof.reports.types import ReportModel

BUILTIN: dict[str, str] = {
    "html": "tokprof.reports.html",
    "json": "tokprof.reports.json",
    "console": "tokprof.reports.console",
}
"""Renderer name -> the module that registers it (imported on first use)."""

_REGISTRY: dict[str, type["Renderer"]] = {}


class Renderer:
    """Renders a report model; subclasses set ``name`` and ``file_extension`` and implement :meth:`render`."""

    name: ClassVar[str] = ""
    file_extension: ClassVar[str] = ""

    def render(self, model: "ReportModel") -> str | bytes:  # pragma: no cover - interface
        raise NotImplementedError


def register(cls: type[Renderer]) -> type[Renderer]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__qualname__}: a renderer needs a name")
    _REGISTRY[cls.name] = cls
    return cls


def renderer_names() -> list[str]:
    return sorted(set(BUILTIN) | set(_REGISTRY))


def get_renderer(name: str, **options: object) -> Renderer:
    """The renderer called ``name`` (``html``, ``json``, ``console`` or a registered one)."""
    if name not in _REGISTRY and name in BUILTIN:
        importlib.import_module(BUILTIN[name])
    cls = _REGISTRY.get(name)
    if cls is None:
        raise KeyError(f"unknown report format {name!r}; choose one of: {', '.join(renderer_names())}")
    return cls(**options)
