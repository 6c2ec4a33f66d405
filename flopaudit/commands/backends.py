"""flopaudit backends: list backends with version, unit, granularity, the passes they count and availability.

Read from the backends' descriptors: no backend (and not torch) is imported.
"""

from __future__ import annotations

import argparse

from flopaudit.commands._common import add_parser
from flopaudit.table import format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "backends", __doc__, "list counting backends")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.adapters import backends

    rows = []
    for b in backends().values():
        available = "yes" if b.available() else f"no ({b.missing_reason()})"
        unit = b.unit.value if b.counts_macs else "none (params)"
        rows.append([b.name, b.distribution or "flopaudit", b.version() or "-", unit, b.granularity.value,
                     ", ".join(b.passes), available])
    print(format_table(["backend", "distribution", "version", "unit", "granularity", "counts", "available"], rows))
    return 0
