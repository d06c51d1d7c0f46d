"""Number and money formatting shared by the renderers (they do not import each other: HTML, console and JSON
each import this module)."""

from __future__ import annotations

from decimal import Decimal

CURRENCY_SYMBOLS = {"USD": "$", "CNY": "¥"}


def money(amount: Decimal | float | str | None, currency: str = "USD") -> str:
    """``$0.0123``: more decimals for small amounts, so cents of savings stay visible; unknown is ``—``."""
    if amount is None:
        return "—"
    d = Decimal(str(amount))
    sym = CURRENCY_SYMBOLS.get(currency, currency + " ")
    sign = "-" if d < 0 else ""
    a = abs(d)
    if a >= 100:
        text = f"{a:,.0f}"
    elif a >= 1:
        text = f"{a:,.2f}"
    elif a >= Decimal("0.01") or a == 0:
        text = f"{a:.4f}"
    else:  # below a cent: four significant digits, no trailing zeros
        text = f"{a:.6f}".rstrip("0")
        text = text + "0" * max(0, 4 - len(text.split(".")[1])) if "." in text else text
    return f"{sign}{sym}{text}"


def num(n: int | float | None) -> str:
    if n is None:
        return "—"
    if isinstance(n, int):
        return f"{n:,}"  # exact, and no float conversion (an int beyond any float would overflow it)
    return f"{n:,.0f}" if isinstance(n, Decimal) or float(n).is_integer() else f"{n:,.1f}"


def compact(n: int | float) -> str:
    """``12.3k``, ``4.5M``: for chart axes."""
    try:
        n = float(n)
    except OverflowError:  # an int beyond any float (a broken or hostile run): still a number on the page
        return f"{Decimal(n):.2E}"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            digits = 2 if abs(n) / div < 10 else 1
            return f"{n / div:.{digits}f}".rstrip("0").rstrip(".") + suffix
    return f"{n:.0f}"


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}%"
