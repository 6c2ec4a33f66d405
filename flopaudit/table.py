"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """Left-align text columns, right-align numeric ones (``align`` overrides: 'l'/'r' per column)."""
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    if align is None:
        align = "".join("r" if all(_numeric(r[i]) for r in cells[1:]) and rows else "l" for i in range(len(header)))
    def line(row: list[str]) -> str:
        return "  ".join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)).rstrip()
    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _numeric(text: str) -> bool:
    t = text.rstrip("xKMGT%").replace(".", "", 1).replace(",", "").lstrip("+-")
    return t.isdigit() or text in ("-", "")
