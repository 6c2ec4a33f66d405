"""Self-contained HTML report: sortable tables, a ratio heat map, bar charts.

Needs the ``report`` extra (jinja2). The page embeds its CSS, JavaScript and
SVG charts, so it opens without network access.
"""

from __future__ import annotations

import math
from typing import Any

from flopaudit.records import Status
from flopaudit.reports.model import Report
from flopaudit.reports.phases import phase_table
from flopaudit.reports.verdict import evidence_text, percent, recommendation_text
from flopaudit.units import human

BAR_WIDTH = 420


HEAT_FLOOR = 150
"""Darkest channel level of the heat map: pastel enough that dark text keeps a
WCAG contrast of at least 4.5:1 on every cell (6:1 on the deepest blue)."""
FAILED_COLOR = "#e4e4e4"
"""Background of a cell without a ratio (failed count)."""


def _heat_color(ratio: float | None) -> str:
    """White at 1.0, red above, blue below; saturates at 4x either way."""
    if ratio is None or ratio < 0:
        return FAILED_COLOR
    x = max(-1.0, min(1.0, math.log2(ratio) / 2)) if ratio else -1.0
    level = int(round(255 - (255 - HEAT_FLOOR) * abs(x)))
    return f"rgb(255,{level},{level})" if x > 0 else f"rgb({level},{level},255)"


def distance(ratio: float | None) -> float:
    """How far a ratio is from 1x, either way: ``|log2(ratio)|`` (4x and 0.25x
    are both 2). A count of 0 sorts farther than any ratio, a failed count
    (no ratio) farther still."""
    if ratio is None or ratio < 0:
        return 1e9
    return abs(math.log2(ratio)) if ratio else 1e6


def _bars(report: Report, model: str) -> list[dict[str, Any]]:
    rows = []
    values = []
    for b in report.backends:
        r = report.run.result(model, b)
        if r is not None and r.ok and r.macs is not None:
            values.append(r.macs)
    top = max(values) if values else 0
    for b in report.backends:
        r = report.run.result(model, b)
        if r is None:
            continue
        macs = r.macs if r.ok else None
        width = int(BAR_WIDTH * macs / top) if macs and top else 0
        cell = report.cell(model, b)
        rows.append({
            "backend": b, "macs": macs, "label": human(macs) if macs is not None else r.status.value,
            "width": width, "reference": b == "reference",
            "classification": cell.classification if cell else "reference",
        })
    return rows


def _farthest(report: Report, model: str) -> tuple[float, str]:
    """The distance from 1x of the model's farthest count and how it reads (``0.072x``); where no
    backend counted the model, a failure's status (``error``). A backend that does not apply
    to the model (``not applicable``) is no distance, and a failure beside counts hides none of
    them: its own column says it failed."""
    cells = [c for c in report.cells if c.model == model]
    counted = [c for c in cells if c.ratio is not None]
    if counted:
        far = max(counted, key=lambda c: distance(c.ratio))
        return distance(far.ratio), f"{far.ratio:.3f}x"
    failed = [c for c in cells if c.status not in (Status.OK.value, Status.NOT_APPLICABLE.value)]
    if failed:
        return distance(None), failed[0].status
    return 0.0, "-"


def render_html(report: Report) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("flopaudit.reports", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["human"] = human
    env.filters["heat"] = _heat_color
    env.filters["distance"] = distance
    env.filters["percent"] = percent
    env.filters["signed_percent"] = lambda x: percent(x, True)
    backends = [b for b in report.backends if b != "reference"]
    charts = {m: _bars(report, m) for m in report.models}
    worst = {m: _farthest(report, m) for m in report.models}
    return env.get_template("report.html.j2").render(
        report=report, run=report.run, env=dict(report.run.environment), backends=backends,
        charts=charts, bar_width=BAR_WIDTH, worst=worst, evidence=evidence_text, recommendation=recommendation_text,
        heat_legend=[(r, _heat_color(r)) for r in (0.25, 0.5, 1.0, 2.0, 4.0)], failed_color=FAILED_COLOR,
        counted=bool(report.run.results), phases=phase_table(report), **_cost_context(report),
    )


def _cost_context(report: Report) -> dict[str, Any]:
    """The cost section's data and formatters (:mod:`flopaudit.reports.cost`), when the run measured costs."""
    from flopaudit.reports import cost

    if not report.run.costs:
        return {"cost": None}
    helpers = ("ceilings_text", "nbytes", "intensity", "latency_text", "rate", "pct", "ms", "layer_cells")
    return {"cost": cost.html_context(report.run.costs, report.run.cost_weights),
            **{name: getattr(cost, name) for name in helpers}}
