"""flopaudit report RESULTS.json: re-render reports without re-running."""

from __future__ import annotations

import argparse
from pathlib import Path

from flopaudit.commands._common import plain
from flopaudit.report_formats import FORMATS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="re-render reports from a results.json", description=plain(__doc__))
    p.add_argument("results", metavar="RESULTS.json", help="results file (or the directory holding it)")
    p.add_argument("--format", "-f", nargs="+", choices=list(FORMATS) + ["all"], default=["all"],
                   help="formats to write (default: all)")
    p.add_argument("--out", "-o", metavar="DIR", help="output directory (default: next to the results file)")
    p.add_argument("--tolerance", type=float, default=0.0, metavar="REL",
                   help="relative difference still classified as agreeing (default 0: exact)")
    p.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    from flopaudit.reports import write_reports
    from flopaudit.results_io import load_results

    run = load_results(args.results)
    src = Path(args.results)
    out = Path(args.out) if args.out else (src if src.is_dir() else src.parent)
    formats = tuple(FORMATS) if "all" in args.format else tuple(dict.fromkeys(args.format))
    for path in write_reports(run, out, formats, tolerance=args.tolerance):
        print(path)
    return 0
