"""flopaudit backends: list backends with version, unit, granularity, the passes they count, whether they count on the meta device (--meta) and availability.

Read from the backends' descriptors: no backend (and not torch) is imported.
"""

from __future__ import annotations

import argparse

from flopaudit.commands._common import add_parser
from flopaudit.table import format_table, format_table_blocks, terminal_width


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "backends", __doc__, "list counting backends")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    import textwrap

    from flopaudit.adapters import backends

    header = ["backend", "distribution", "version", "unit", "granularity", "counts", "meta", "available"]
    rows, missing = [], []
    for b in backends().values():
        unit = b.unit.value if b.counts_macs else "none (params)"
        row = [b.name, b.distribution or "flopaudit", b.version() or "-", unit, b.granularity.value,
               ", ".join(b.passes), "yes" if b.meta.allowed else "no", "yes"]
        if not b.available():
            reason = b.missing_reason()  # (a shared import package's reason reads its files' hashes)
            row[-1] = f"no ({reason})"
            missing.append((b.name, reason))
        rows.append(row)
    table = format_table(header, rows)
    width = terminal_width()
    if width is not None and max(map(len, table.splitlines())) > width:
        # the reasons under the table, wrapped: the table keeps to the width
        table = format_table_blocks(header, [row[:-1] + [row[-1] if row[-1] == "yes" else "no (below)"]
                                             for row in rows], width=width)
        table += "\n" + "\n".join(line for name, reason in missing
                                   for line in textwrap.wrap(f"{name}: {reason}", width, subsequent_indent="    "))
    print(table)
    return 0
