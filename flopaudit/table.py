"""Plain-text tables for the terminal."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

_GAP = 2
"""Spaces between two columns."""


def format_table(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None) -> str:
    """Left-align text columns, right-align numeric ones (``align`` overrides: 'l'/'r' per column)."""
    cells, widths, align = _layout(header, rows, align)
    gap = " " * _GAP

    def line(row: list[str]) -> str:
        return gap.join(c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)).rstrip()
    out = [line(cells[0]), gap.join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def _layout(header: Sequence[str], rows: Sequence[Sequence[object]],
            align: str | None) -> tuple[list[list[str]], list[int], str]:
    """The table's cells as text (the header first), each column's width and each column's alignment."""
    cells = [[str(c) for c in header]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    if align is None:
        align = "".join("r" if all(_numeric(r[i]) for r in cells[1:]) and rows else "l" for i in range(len(header)))
    return cells, widths, align


def format_table_blocks(header: Sequence[str], rows: Sequence[Sequence[object]], align: str | None = None,
                        width: int | None = None) -> str:
    """:func:`format_table`, its columns after the first split into blocks that fit ``width``
    characters, one block under the other (a blank line between), each block starting with
    the first column: a table wider than the terminal reads block by block rather than
    wrapped line by line. Without ``width``, or where the table fits, one block."""
    _, widths, align = _layout(header, rows, align)
    if width is None or sum(widths) + _GAP * (len(widths) - 1) <= width or len(header) < 3:
        return format_table(header, rows, align)
    blocks: list[list[int]] = [[]]
    used = widths[0]
    for i in range(1, len(header)):
        if blocks[-1] and used + _GAP + widths[i] > width:
            blocks.append([])
            used = widths[0]
        blocks[-1].append(i)
        used += _GAP + widths[i]
    parts = []
    for block in blocks:
        keep = [0, *block]
        parts.append(format_table([header[i] for i in keep], [[row[i] for i in keep] for row in rows],
                                  "".join(align[i] for i in keep)))
    return "\n\n".join(parts)


def wrap_last_column(header: Sequence[str], rows: Sequence[Sequence[object]], width: int | None,
                     sep: str = ",") -> list[list[object]]:
    """``rows`` with the last column's text broken after ``sep`` onto rows of their own
    (the other cells empty) so that the table fits ``width`` characters, where it can:
    the last column is never made narrower than its longest unbreakable part or than
    its header. Without ``width``, or where the table fits, the rows as they are."""
    out = [list(row) for row in rows]
    if width is None or not header or not rows:
        return out
    _, widths, _ = _layout(header, rows, "l" * len(header))
    room = width - sum(widths[:-1]) - _GAP * (len(header) - 1)
    if room >= widths[-1]:
        return out
    wrapped: list[list[object]] = []
    for row in out:
        text = "" if row[-1] is None else str(row[-1])
        parts = text.split(sep)
        limit = max(room, len(str(header[-1])), *(len(p) + len(sep) for p in parts))
        lines = [""]
        for i, part in enumerate(parts):
            piece = part + (sep if i < len(parts) - 1 else "")
            if lines[-1] and len(lines[-1]) + len(piece) > limit:
                lines.append("")
            lines[-1] += piece
        wrapped.append(row[:-1] + [lines[0]])
        wrapped.extend([""] * (len(row) - 1) + [line] for line in lines[1:])
    return wrapped


def terminal_width() -> int | None:
    """The width to fit tables to: ``COLUMNS`` if set, else the terminal's where standard
    output is one; None (no limit) where output goes to a file or a pipe."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return None


def _numeric(text: str) -> bool:
    t = text.rstrip("xKMGT%").replace(".", "", 1).replace(",", "").lstrip("+-")
    return t.isdigit() or text in ("-", "")
