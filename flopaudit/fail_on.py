"""``--fail-on``: exit status 1 when a listed class of outcome occurs (for CI).

Classes (:data:`FAIL_CLASSES`):

* ``error``: a count ended in error (the backend raised, crashed, or the
  model failed to build or run);
* ``timeout``: a count ran past ``--timeout``;
* ``unexplained``: a cell whose difference from the canonical count no rule
  of the backend's ruleset explains (see :mod:`flopaudit.reports.explain`);
* ``drift``: in ``flopaudit check``, a count, breakdown or status that
  differs from its golden; in ``flopaudit run``, a reference count (MACs or
  parameters) that differs from what the model case declares (the zoo's
  hand-derived ``expected MACs``/``expected params``).

``none`` lists nothing (never exit 1). The functions here return one line
per occurrence; the commands print them and exit 1 when there is any.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from flopaudit.errors import UserError

if TYPE_CHECKING:
    from flopaudit.goldens.diff import GoldenDiff
    from flopaudit.records import AuditRun
    from flopaudit.reports.model import Report

FAIL_CLASSES = ("error", "timeout", "unexplained", "drift")

EXIT_CODES = """\
exit status:
  0  done, and nothing listed in --fail-on occurred (without --fail-on: always, failed
     counts included: they are cells of the table)
  1  a class listed in --fail-on occurred: error, timeout, unexplained, or drift (a
     reference count differs from the count its zoo case declares)
  2  usage error (unknown model, backend, tag or --fail-on class, a shape the model
     rejects, an unreadable module:function, ...): one line on stderr
  130 interrupted (Ctrl-C)"""
"""``flopaudit run``'s exit codes (its ``--help`` epilog, and the README)."""


def parse_fail_on(values: Iterable[str] | str | None) -> frozenset[str]:
    """``["error,timeout", "drift"]`` -> the set of classes; ``none`` -> empty.
    An unknown class is a :class:`UserError` (one line, exit status 2)."""
    if values is None:
        return frozenset()
    if isinstance(values, str):
        values = [values]
    names = [p.strip() for v in values for p in v.split(",") if p.strip()]
    if not names:
        raise UserError(f"--fail-on needs a class: {', '.join(FAIL_CLASSES)} (or none)")
    unknown = [n for n in names if n not in (*FAIL_CLASSES, "none")]
    if unknown:
        raise UserError(f"invalid --fail-on class {unknown[0]!r}; valid: {', '.join(FAIL_CLASSES)}, none")
    return frozenset(n for n in names if n != "none")


def add_fail_on_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--fail-on CLASSES`` (comma-separated, repeatable)."""
    parser.add_argument(
        "--fail-on", action="append", metavar="CLASSES",
        help=f"exit 1 when any of these occurs: {', '.join(FAIL_CLASSES)} (comma-separated; none: never)"
        + (f"; default {default}" if default else ""),
    )
    parser.set_defaults(fail_on_default=default)


def classes_from_args(args: argparse.Namespace) -> frozenset[str]:
    return parse_fail_on(args.fail_on if args.fail_on is not None else args.fail_on_default)


def run_failures(run: AuditRun, classes: Iterable[str], report: Report | None = None) -> list[str]:
    """One line per occurrence of a listed class in ``run``."""
    classes = set(classes)
    lines: list[str] = []
    for r in run.results:
        if r.status.value in classes:
            first = (r.error or "").strip().splitlines()[0] if r.error else ""
            lines.append(f"{r.status.value}: {r.model} / {r.backend}" + (f": {first}" if first else ""))
    if "unexplained" in classes:
        lines += [line for _, line in unexplained(run, report)]
    if "drift" in classes:
        lines += declared_drift(run)
    return lines


def unexplained(run: AuditRun, report: Report | None = None) -> list[tuple[tuple[str, str], str]]:
    """``((model, backend), line)`` for each unexplained cell of ``run``."""
    if report is None:
        from flopaudit.reports import build_report

        report = build_report(run)
    return [((c.model, c.backend), f"unexplained: {c.model} / {c.backend}: residual {c.residual:+d} MACs")
            for c in report.cells if c.classification == "unexplained"]


def declared_drift(run: AuditRun) -> list[str]:
    """Reference counts that differ from what their model case declares."""
    lines = []
    for info in run.cases:
        ref = run.result(info.id, "reference")
        if ref is None or not ref.ok:
            continue
        for what, declared, counted in (("MACs", info.expected_macs, ref.macs), ("params", info.expected_params,
                                                                               ref.params)):
            if declared is not None and counted is not None and declared != counted:
                lines.append(f"drift: {info.id} / reference: counts {counted} {what}, the case declares {declared}")
    return lines


def check_failures(diffs: Sequence[GoldenDiff], classes: Iterable[str], runs: Sequence[AuditRun] = ()) -> list[str]:
    """One line per occurrence of a listed class among re-counted goldens;
    ``runs`` (the re-counts, with the reference's) classify cells for ``unexplained``."""
    classes = set(classes)
    lines = []
    for d in diffs:
        if d.current.status in classes:
            lines.append(f"{d.current.status}: {d.current.model} / {d.current.backend}"
                         + (f": {d.current.error}" if d.current.error else ""))
        if "drift" in classes and d.drifted:
            lines.append(f"drift: {d.headline()}")
    if "unexplained" in classes:
        checked = {(d.current.model, d.current.backend) for d in diffs}
        for run in runs:
            lines += [line for cell, line in unexplained(run) if cell in checked]
    return lines


def report_failures(lines: Sequence[str], classes: Iterable[str]) -> int:
    """Print the occurrences under a heading; the exit status (1 if any, else 0)."""
    if not lines:
        return 0
    from collections import Counter

    counts = Counter(line.split(":", 1)[0] for line in lines)
    listed = ", ".join(sorted(classes))
    print(f"\n--fail-on {listed}: " + ", ".join(f"{n} {name}" for name, n in sorted(counts.items())))
    for line in lines:
        print(f"  {line}")
    return 1
