"""flopaudit backends: list backends with version, unit and availability."""

from __future__ import annotations

import argparse

from flopaudit.commands._common import plain
from flopaudit.table import format_table


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backends", help="list counting backends", description=plain(__doc__))
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.adapters import all_adapters

    rows = []
    for a in all_adapters():
        ok = a.available()
        rows.append([a.name, a.distribution, a.version() or "-", a.unit.value, a.granularity.value,
                     "yes" if ok else "no (not installed)"])
    print(format_table(["backend", "distribution", "version", "unit", "granularity", "available"], rows))
    return 0
