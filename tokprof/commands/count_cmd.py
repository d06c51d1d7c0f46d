"""`tokprof count` (not implemented yet)."""

from __future__ import annotations

import argparse


def register(sub: "argparse._SubParsersAction") -> None:
    p = sub.add_parser("count", help="(coming soon)")
    p.set_defaults(func=lambda args: print("tokprof count: not implemented yet") or 2)
