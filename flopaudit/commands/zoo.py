"""``flopaudit zoo``: list model cases with tags and expected counts."""

from __future__ import annotations

import argparse

from flopaudit.commands._common import split_list
from flopaudit.table import format_table
from flopaudit.units import human


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("zoo", help="list model cases", description=__doc__)
    p.add_argument("--models", "-m", nargs="+", metavar="MODEL", help="ids or globs")
    p.add_argument("--tags", "-t", nargs="+", metavar="TAG", help="keep only cases with all these tags")
    p.add_argument("--full", action="store_true", help="list the whole zoo (default: whole zoo too)")
    p.add_argument("--default", action="store_true", help="only the default zoo")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.zoo import all_cases, select_cases

    models, tags = split_list(args.models), split_list(args.tags)
    if args.default and not models and not tags:
        cases = select_cases()
    elif models or tags:
        cases = select_cases(models, tags, full=True)
    else:
        cases = all_cases()
    rows = [
        [c.id, "yes" if c.default else "", human(c.expected_macs), human(c.expected_params), ",".join(sorted(c.tags))]
        for c in cases
    ]
    print(format_table(["id", "default", "expected MACs", "expected params", "tags"], rows, align="lllll"))
    print(f"\n{len(cases)} case(s)")
    return 0
