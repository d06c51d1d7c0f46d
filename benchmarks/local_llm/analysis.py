"""Tables of the live-real benchmark, from its JSON lines (placeholder until written)."""
from __future__ import annotations
from pathlib import Path
from typing import Any


def analyze(path: Path, price_model: str) -> tuple[str, dict[str, Any]]:
    return f"{path}: analysis not written yet", {}
