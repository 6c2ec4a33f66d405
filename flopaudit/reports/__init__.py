"""Turning a run's results into explained reports.

:func:`build_report` explains every (model, backend) difference and gives
each model its verdict (:mod:`flopaudit.reports.verdict`); the renderers
write it as Markdown, HTML, JSON and CSV from the same data.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from flopaudit.report_formats import FORMATS
from flopaudit.reports.explain import build_report, explain_cell
from flopaudit.reports.model import (
    CLASSIFICATIONS,
    BackendScore,
    Cause,
    CellExplanation,
    FamilyRecommendation,
    ModelVerdict,
    Report,
)
from flopaudit.reports.render_csv import render_csv
from flopaudit.reports.render_json import render_json
from flopaudit.reports.render_markdown import render_markdown


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
