"""`tokprof import` (not implemented yet)."""

from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("import", help="(coming soon)")
    p.set_defaults(func=lambda args: print("tokprof import: not implemented yet") or 2)
