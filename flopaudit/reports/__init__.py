"""Turning a run's results into explained reports.

:func:`build_report` explains every (model, backend) difference and gives
each model its verdict (:mod:`flopaudit.reports.verdict`); the renderers
write it as Markdown, HTML, JSON and CSV from the same data.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flopaudit.reports.model import Report

_LAZY = {
    "build_report": "flopaudit.reports.explain",
    "explain_cell": "flopaudit.reports.explain",
    "CLASSIFICATIONS": "flopaudit.reports.model",
    "BackendScore": "flopaudit.reports.model",
    "Cause": "flopaudit.reports.model",
    "CellExplanation": "flopaudit.reports.model",
    "FamilyRecommendation": "flopaudit.reports.model",
    "ModelVerdict": "flopaudit.reports.model",
    "Report": "flopaudit.reports.model",
    "render_csv": "flopaudit.reports.render_csv",
    "render_json": "flopaudit.reports.render_json",
    "render_markdown": "flopaudit.reports.render_markdown",
}


def __getattr__(name: str) -> Any:
    """The reports' parts, imported when first used (the command line's help stays fast)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Importing ``flopaudit.reports.render_markdown`` binds the submodule to that name here; the
        # function must win, or ``from flopaudit.reports import render_markdown`` gets the module.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'flopaudit.reports' has no attribute {name!r}")

FORMATS: dict[str, tuple[str, str]] = {
    "markdown": ("report.md", "flopaudit.reports.render_markdown:render_markdown"),
    "html": ("report.html", "flopaudit.reports.render_html:render_html"),
    "json": ("report.json", "flopaudit.reports.render_json:render_json"),
    "csv": ("report.csv", "flopaudit.reports.render_csv:render_csv"),
}


def renderer(fmt: str) -> Callable[[Report], str]:
    from flopaudit.errors import UserError

    try:
        _, path = FORMATS[fmt]
    except KeyError:
        raise UserError(f"unknown report format {fmt!r}; valid formats: {', '.join(FORMATS)}") from None
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def write_reports(run: object, out_dir: Path, formats: tuple[str, ...] = tuple(FORMATS),
                  tolerance: float = 0.0) -> list[Path]:
    """Render ``run`` in each format into ``out_dir``; return the paths written."""
    from flopaudit.reports.explain import build_report
    from flopaudit.results_io import write_atomic

    report = build_report(run, tolerance)  # type: ignore[arg-type]
    paths = []
    for fmt in formats:
        filename, _ = FORMATS[fmt]
        path = out_dir / filename
        write_atomic(path, renderer(fmt)(report))
        paths.append(path)
    return paths


__all__ = [
    "CLASSIFICATIONS", "BackendScore", "CellExplanation", "Cause", "FamilyRecommendation", "ModelVerdict", "Report",
    "FORMATS",
    "build_report", "explain_cell", "render_csv", "render_json", "render_markdown", "renderer", "write_reports",
]
