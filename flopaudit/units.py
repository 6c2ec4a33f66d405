"""Rendering integers with K/M/G prefixes; the only place counts are scaled."""

from __future__ import annotations

_PREFIXES = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K"))


def human(n: int | float | None, digits: int = 3) -> str:
    """``4089184256 -> '4.089G'``; ``None -> '-'``."""
    if n is None:
        return "-"
    for scale, prefix in _PREFIXES:
        if abs(n) >= scale:
            return f"{n / scale:.{digits}f}{prefix}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def giga(n: int | None, digits: int = 3) -> str:
    """Always in G units: ``4089184256 -> '4.089'``."""
    return "-" if n is None else f"{n / 1e9:.{digits}f}"
