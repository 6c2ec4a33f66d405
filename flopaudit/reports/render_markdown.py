"""Markdown report (README-friendly)."""

from __future__ import annotations

from collections.abc import Sequence

from flopaudit.reports.model import CellExplanation, Report
from flopaudit.reports.phases import phase_table
from flopaudit.reports.verdict import evidence_text, percent, recommendation_text
from flopaudit.units import human


def _signed(n: int) -> str:
    return ("+" if n > 0 else "-" if n < 0 else "") + human(abs(n))


def _cell_text(c: CellExplanation | None, backend_result_macs: int | None = None) -> str:
    if c is None:
        return ""
    if c.status != "ok":
        return c.status.upper() if c.status != "not applicable" else "n/a"
    if c.backend_macs is None:
        return "does not count MACs"
    ratio = f" ({c.ratio:.3f}x)" if c.ratio is not None else ""
    return f"{human(c.backend_macs)}{ratio} {c.classification}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r.replace("|", "\\|") for r in row) + " |" for row in rows]
    return out


def listed(items: Sequence[str], limit: int, sep: str = "; ", unlisted: int = 0) -> str:
    """The first ``limit`` items and how many more (``unlisted``: more that
    ``items`` itself leaves out): ``a; b; c; and 4 more``."""
    items = list(items)
    more = len(items) - limit + unlisted if len(items) > limit else unlisted
    return sep.join(items[:limit]) + (f"{sep}and {more} more" if more > 0 else "")


def verdict_section(report: Report) -> list[str]:
    """``## Verdict``: per model, which counter to use and why not the others."""
    if not report.verdicts:
        return []
    lines = ["## Verdict", "",
             "The canonical count is flopaudit's reference counter: multiply-accumulates of convolutions, matmuls, "
             "attention and RNN products for the whole batch, bias excluded. A counter is recommended for a model "
             f"when it gives that count exactly or within {percent(report.verdict_tolerance)}; every other counter "
             "is named with its largest cause and that cause's share of the canonical count.", ""]
    for v in report.verdicts:
        lines.append(f"- **{v.model}** ({v.family}): {v.headline.split(': ', 1)[1]}")
        lines += [f"  - {f.text}" for f in v.findings]
    if report.families:
        lines += ["", "By family (ranking with its evidence under the scorecard):", ""]
        lines += [f"- {recommendation_text(f)}" for f in report.families]
    return lines


def family_section(report: Report) -> list[str]:
    """``## Recommendation by model family``: every counter ranked, with the evidence."""
    if not report.families:
        return []
    lines = ["## Recommendation by model family", "",
             f"Counters ranked by the models on which they give the canonical count (exactly or within "
             f"{percent(report.verdict_tolerance)}), then exactly, then fewest failures and unexplained cells, "
             "then the smallest median and worst deviation.", ""]
    for f in report.families:
        lines += [f"### {f.family}", "", recommendation_text(f) + ".", "",
                  f"Models: {listed(list(f.models), 12, ', ')}.", ""]
        lines += [f"{k}. **{e.backend}**: {evidence_text(e, f.tolerance)}" for k, e in enumerate(f.ranking, 1)]
        lines.append("")
    return lines


def _params_section(report: Report, backends: list[str]) -> list[str]:
    """Parameters per model and backend, then every difference with its causes."""
    lines = ["", "## Parameters", "",
             "Each backend's parameter count against the reference's (every parameter tensor once, tied weights "
             "once, frozen ones included, buffers not), with its classification.", ""]
    rows, details = [], []
    for m in report.models:
        ref = report.run.result(m, "reference")
        row = [m, f"{ref.params:,}" if ref and ref.ok and ref.params is not None else "-"]
        for b in backends:
            c = report.cell(m, b)
            p = c.params if c is not None else None
            row.append(f"{p.backend_params:,} {p.classification}" if p is not None else "")
            if p is not None and p.difference:
                details.append(f"- **{m} / {b}**: {p.backend_params:,} ({p.difference:+,})")
                for cause in p.causes:
                    where = ", ".join(f"{q or '<root>'} {v:+,}" for q, v in cause.layers[:3])
                    details.append(f"  - {cause.kind}: {cause.rule}: {cause.macs:+,}" + (f" ({where})" if where else ""))
                if p.residual:
                    details.append(f"  - residual not explained: {p.residual:+,}")
            if p is not None and p.memory:
                details.append(f"- **{m} / {b}** memory estimate: "
                               + ", ".join(f"{k} {v:,}" for k, v in p.memory))
        rows.append(row)
    return lines + _table(["model", "reference"] + backends, rows) + ([""] + details if details else [])


def _phase_section(report: Report) -> list[str]:
    """A training step's MACs by phase per (model, backend) (nothing for an inference run)."""
    table = phase_table(report)
    if table is None:
        return []
    rows = [[m, b, *("-" if v is None else human(v) for v in values), human(total)]
            for m, b, values, total in table.rows]
    return ["", "## Training step by phase", "",
            "MACs of each phase as each backend counted it (\"-\": the backend counts the step as a whole).", "",
            *_table(["model", "backend", *table.phases, "total"], rows)]


def render_markdown(report: Report) -> str:
    run = report.run
    if not run.results:  # costs only (flopaudit cost)
        from flopaudit.reports.cost import markdown_section

        env = dict(run.environment)
        head = f"torch {env.get('torch', '?')}, flopaudit {env.get('flopaudit', '?')}, {env.get('created', '')}."
        return "\n".join(["# flopaudit report", "", head, "", *markdown_section(run.costs, run.cost_weights)]) + "\n"
    env = dict(run.environment)
    backends = [b for b in report.backends if b != "reference"]
    lines = ["# flopaudit report", ""]
    lines.append(
        f"torch {env.get('torch', '?')}, flopaudit {env.get('flopaudit', '?')}, {env.get('created', '')}. "
        "All counts are normalised to multiply-accumulates (MACs) for the whole batch; each cell shows the "
        "backend's count, its ratio to the reference counter's canonical count and the cell's classification."
    )
    if env.get("pass"):
        lines += ["", f"Counted: one {env['pass']}."]
    lines += ["", *verdict_section(report)]
    lines += ["", "## Models x backends", ""]
    rows = []
    for m in report.models:
        ref = run.result(m, "reference")
        ref_text = human(ref.macs) if ref and ref.ok else (ref.status.value if ref else "")
        rows.append([m, ref_text] + [_cell_text(report.cell(m, b)) for b in backends])
    lines += _table(["model", "reference"] + backends, rows)
    lines += _phase_section(report)
    lines += ["", "## Scorecard", ""]
    srows = []
    for s in report.scores:
        mad = f"{s.median_abs_deviation:.2%}" if s.median_abs_deviation is not None else "-"
        srows.append([
            s.backend, s.version, s.unit, f"{s.ok}/{s.models}", str(s.exact_canonical),
            str(s.exact_own_rules), str(s.unexplained), mad, listed(s.misses, 6) or "-",
            "; ".join(s.side_effects) or "-",
        ])
    lines += _table(["backend", "version", "raw unit", "ran", "= canonical", "= own rules", "unexplained",
                     "median deviation", "misses", "side effects"], srows)
    lines += ["", *family_section(report)]
    lines += _params_section(report, backends)
    if run.costs:
        from flopaudit.reports.cost import markdown_section

        lines += ["", *markdown_section(run.costs, run.cost_weights)]
    lines += ["", "## Explanations", ""]
    for m in report.models:
        cells = [report.cell(m, b) for b in backends]
        cells = [c for c in cells if c is not None and (c.classification not in ("agrees",) or c.notes)]
        if not cells:
            continue
        ref = run.result(m, "reference")
        lines += [f"### {m}", "", f"reference: {human(ref.macs) if ref and ref.ok else '-'} MACs", ""]
        for c in cells:
            lines.append(f"- **{c.backend}**: {_cell_text(c)}" + (f" — {c.error}" if c.error else ""))
            if c.difference:
                lines.append(f"  - difference {_signed(c.difference)} MACs")
            for cause in c.causes:
                where = listed([f"{p or '<root>'} {_signed(v)}" for p, v in cause.layers], 3, ", ", cause.more_layers)
                lines.append(f"  - {cause.kind}: {cause.rule}: {_signed(cause.macs)}" + (f" ({where})" if where else ""))
            if c.residual and c.classification != "agrees":
                lines.append(f"  - residual not explained: {_signed(c.residual)}")
            for note in c.notes:
                lines.append(f"  - note: {note}")
            if c.top_layers and c.classification == "unexplained":
                lines.append("  - top layers: " + ", ".join(f"{p} {_signed(v)}" for p, v in c.top_layers))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
