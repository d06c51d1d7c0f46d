"""Printing untrusted text to a terminal: span, tool and model names, file paths and error messages come
from agents and foreign files.

Two dangers (issue #21 point 8): rich markup in the text (``[/]`` makes rich raise ``MarkupError`` and
the command crash; ``[link=…]`` or styles would spoof output), and control characters (ESC sequences
that set the window title, clear the screen or move the cursor reach the terminal as they are).

* :func:`clean` strips control characters (C0 except tab and newline, DEL, C1, bidi overrides) from a string;
  :func:`escape` also escapes rich markup, for a value put into a markup string of ours.
* :class:`SafeConsole` is a ``rich`` console that cleans every string it renders — table cells, tree
  labels, ``print`` — and, when a string's markup does not parse, shows it literally instead of raising.
  Every command prints through it.
"""

from __future__ import annotations

import re
from typing import Any

from rich.console import Console
from rich.errors import MarkupError
from rich.markup import escape as _rich_escape

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""C0 (but tab, newline), DEL, C1, and the bidirectional embedding/override/isolate controls, which reorder
what a terminal shows ("Trojan Source", CVE-2021-42574): a span named ``evil\u202egnp.exe`` would display
as another name."""


def clean(text: Any) -> str:
    """``text`` as a string without terminal control characters (tab and newline are kept)."""
    return _CONTROL.sub("", text if isinstance(text, str) else str(text))


def escape(text: Any) -> str:
    """``text`` cleaned, with rich markup escaped: safe inside a markup string."""
    return _rich_escape(clean(text))


class SafeConsole(Console):
    """A rich console that never emits control characters from data and never crashes on markup."""

    def render_str(self, text: str, **kwargs: Any) -> Any:  # noqa: D102 - see class docstring
        text = clean(text)
        try:
            return super().render_str(text, **kwargs)
        except MarkupError:
            kwargs["markup"] = False
            return super().render_str(text, **kwargs)

    def _render_buffer(self, buffer: Any) -> str:
        # A Text object built elsewhere (Text("...") is never parsed as markup) can still hold control
        # characters: the last stop before the terminal removes them, keeping rich's own ESC codes.
        return super()._render_buffer([_clean_segment(s) for s in buffer])


def _clean_segment(segment: Any) -> Any:
    if segment.control is not None or not segment.text:
        return segment
    cleaned = clean(segment.text)
    return segment if cleaned == segment.text else type(segment)(cleaned, segment.style, segment.control)
