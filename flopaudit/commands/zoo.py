"""flopaudit zoo: list model cases with tags and expected counts.

Read from the zoo's catalog: nothing is imported or built.
"""

from __future__ import annotations

import argparse

from flopaudit.commands._common import add_parser, split_list
from flopaudit.table import format_table, terminal_width, wrap_last_column
from flopaudit.units import human


def register(sub: argparse._SubParsersAction) -> None:
    p = add_parser(sub, "zoo", __doc__, "list model cases")
    p.add_argument("--models", "-m", nargs="+", metavar="MODEL", help="ids or globs")
    p.add_argument("--tags", "-t", nargs="+", metavar="TAG", help="keep only cases with all these tags")
    p.add_argument("--full", action="store_true", help="list the whole zoo (default: whole zoo too)")
    p.add_argument("--default", action="store_true", help="only the default zoo")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.zoo.catalog import load_catalog, select

    models, tags = split_list(args.models), split_list(args.tags)
    if args.default and not models and not tags:
        cases = list(select().entries)
    elif models or tags:
        cases = [e for e in select(models, tags, full=True).entries if not isinstance(e, str)]
    else:
        cases = list(load_catalog())
    rows = [
        [c.id, "yes" if c.default else "", human(c.expected_macs), human(c.expected_params), ",".join(sorted(c.tags))]
        for c in cases
    ]
    header = ["id", "default", "expected MACs", "expected params", "tags"]
    # On a terminal narrower than the table its tags run on over more lines.
    print(format_table(header, wrap_last_column(header, rows, terminal_width()), align="lllll"))
    print(f"\n{len(cases)} case(s)")
    return 0
