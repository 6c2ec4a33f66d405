"""CSV of the explained cells: one row per (model, backend)."""

from __future__ import annotations

import csv
import io

from flopaudit.reports.model import Report
from flopaudit.reports.verdict import cell_verdict

COLUMNS = ["model", "backend", "status", "classification", "backend_macs", "reference_macs", "predicted_macs",
           "difference", "ratio", "residual", "verdict", "causes", "notes"]


def render_csv(report: Report) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in report.cells:
        causes = "; ".join(f"{x.kind}: {x.rule} ({x.macs:+d})" for x in c.causes)
        verdict = cell_verdict(c, report.verdict_tolerance, report.run.result(c.model, c.backend))
        writer.writerow([c.model, c.backend, c.status, c.classification, c.backend_macs, c.reference_macs,
                         c.predicted_macs, c.difference, "" if c.ratio is None else f"{c.ratio:.6f}",
                         c.residual, verdict, causes, "; ".join(c.notes)])
    return buf.getvalue()
