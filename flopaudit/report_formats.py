"""The report formats: file name and renderer of each (a table the command line reads without the renderers)."""

from __future__ import annotations

FORMATS: dict[str, tuple[str, str]] = {
    "markdown": ("report.md", "flopaudit.reports.render_markdown:render_markdown"),
    "html": ("report.html", "flopaudit.reports.render_html:render_html"),
    "json": ("report.json", "flopaudit.reports.render_json:render_json"),
    "csv": ("report.csv", "flopaudit.reports.render_csv:render_csv"),
}
"""format -> (file name under ``--out``, ``module:function`` rendering a :class:`~flopaudit.reports.model.Report`)."""
