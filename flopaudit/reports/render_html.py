"""Self-contained HTML report: sortable tables, a ratio heat map, bar charts.

Needs the ``report`` extra (jinja2). The page embeds its CSS, JavaScript and
SVG charts, so it opens without network access.
"""

from __future__ import annotations

import math
from typing import Any

from flopaudit.reports.model import Report
from flopaudit.units import human

BAR_WIDTH = 420


def _heat_color(ratio: float | None) -> str:
    """White at 1.0, red above, blue below; saturates at 4x either way."""
    if ratio is None or ratio <= 0:
        return "#eeeeee"
    x = max(-1.0, min(1.0, math.log2(ratio) / 2))
    level = int(255 - 170 * abs(x))
    return f"rgb(255,{level},{level})" if x > 0 else f"rgb({level},{level},255)"


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
    backends = [b for b in report.backends if b != "reference"]
    charts = {m: _bars(report, m) for m in report.models}
    return env.get_template("report.html.j2").render(
        report=report, run=report.run, env=dict(report.run.environment), backends=backends,
        charts=charts, bar_width=BAR_WIDTH,
    )
