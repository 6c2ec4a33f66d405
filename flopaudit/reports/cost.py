"""The cost section of the reports: the decision matrix, the ceilings, per model where the time goes,
and a roofline chart (self-contained SVG) with each layer as a point.

Renders :class:`~flopaudit.measure.records.ModelCost` records for the
terminal (:func:`terminal_text`), Markdown (:func:`markdown_section`) and
the HTML template (:func:`html_context`, :func:`roofline_svg`). No torch.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flopaudit.measure.matrix import (
    COLUMNS,
    DEFAULT_WEIGHTS,
    MatrixRow,
    decision_matrix,
    kind_shares,
    misleading_text,
    weights_text,
)
from flopaudit.measure.records import Ceilings, LayerCost, ModelCost
from flopaudit.units import human

TOP_LAYERS = 25
"""Layers listed per model in the reports (most time first); results.json holds them all."""


# -- numbers as text -------------------------------------------------------------
def ms(ns: int | float | None) -> str:
    """Nanoseconds as milliseconds: ``47612345 -> '47.6 ms'`` (3 significant digits)."""
    if ns is None:
        return "-"
    x = ns / 1e6
    return f"{x:.3g} ms" if abs(x) >= 0.01 else f"{x:.2f} ms"


def rate(x: float | None, unit: str) -> str:
    """``7.65e10, 'FLOP/s' -> '76.5 GFLOP/s'``."""
    if x is None:
        return "-"
    text = human(x, 1) if x >= 1000 else f"{x:.3g}"
    return f"{text[:-1]} {text[-1]}{unit}" if text[-1:].isalpha() else f"{text} {unit}"


def nbytes(n: int | None) -> str:
    """Bytes with decimal prefixes: ``118556224 -> '118.6 MB'``."""
    return "-" if n is None else rate(float(n), "B") if n >= 1000 else f"{n} B"


def intensity(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def pct(x: float | None) -> str:
    if x is None:
        return "-"
    return "<1%" if 0 < abs(x) < 0.005 else f"{100 * x:.0f}%"


def latency_text(c: ModelCost) -> str:
    """``'47.6 ms +/-3%'``: the median and half the interquartile range."""
    spread = c.spread
    return ms(c.latency_ns) + (f" \u00b1{100 * spread:.0f}%" if spread is not None else "")


def ceilings_text(c: Ceilings) -> str:
    name = f" ({c.device_name})" if c.device_name else ""
    ridge = c.ridge
    return (f"{c.device}{name}, {c.dtype}, {c.threads} thread{'s' if c.threads != 1 else ''}: peak "
            f"{rate(c.peak_flops, 'FLOP/s')} ({c.matmul_n}x{c.matmul_n} matmul), bandwidth "
            f"{rate(c.bandwidth, 'B/s')} (copy of {c.copy_bytes >> 20} MiB)"
            + (f"; ridge point {ridge:.3g} FLOP/byte" if ridge else ""))


def distinct_ceilings(costs: Sequence[ModelCost]) -> list[tuple[Ceilings, list[str]]]:
    """Each set of ceilings the costs were measured under, with the models measured under it."""
    out: dict[Ceilings, list[str]] = {}
    for c in costs:
        if c.ceilings is not None:
            out.setdefault(c.ceilings, []).append(c.model)
    return list(out.items())


def overhead_text(c: ModelCost) -> str:
    """How much of the latency the layers account for, and what the rest is."""
    latency, overhead = c.latency_ns, c.overhead_ns
    if latency is None or overhead is None:
        return ""
    layers = c.layer_time_ns
    text = f"the layers account for {ms(layers)} of the {ms(latency)} median latency ({pct(layers / latency)})"
    if overhead >= 0:
        text += f"; overhead {ms(overhead)}"
        if c.unattributed_ns:
            text += (f", of which {ms(min(overhead, c.unattributed_ns))} measured in module calls without "
                     "operators of their own (containers, Identity)")
        return text
    return (text + f": the profiled passes (a timer at each module call) took {ms(-overhead)} longer than the "
            "timed ones")


# -- the matrix -----------------------------------------------------------------------
MATRIX_HEADER = ["#", "model", "FLOPs", "MACs", "params", "bytes moved", "FLOP/byte", "latency", "achieved",
                 "% of peak", "peak memory", "score"]


def matrix_cells(row: MatrixRow) -> list[str]:
    c = row.cost
    if not c.ok:
        return ["-", c.model] + ["-"] * (len(MATRIX_HEADER) - 3) + [c.status.value]
    return [str(row.rank), c.model, human(c.flops), human(c.macs), human(c.params), nbytes(c.bytes),
            intensity(c.intensity), latency_text(c), rate(c.achieved_flops, "FLOP/s"), pct(c.peak_fraction),
            nbytes(c.peak_memory), f"{row.score:.3f}" if row.score is not None else "-"]


def weights_of(weights: Sequence[tuple[str, float]]) -> tuple[tuple[str, float], ...]:
    return tuple(weights) or DEFAULT_WEIGHTS


def score_note(weights: Sequence[tuple[str, float]]) -> str:
    return (f"score: weights {weights_text(weights_of(weights))} (1 = the best model on every weighted column; "
            "each column scores best/value, or value/best where higher is better)")


def terminal_text(costs: Sequence[ModelCost], weights: Sequence[tuple[str, float]] = ()) -> str:
    """The matrix with the ceilings above it and, under it, where FLOPs mislead and what failed."""
    from flopaudit.table import format_table

    measured = distinct_ceilings(costs)  # (one set per worker process: each measures its own)
    lines = [f"measured on {ceilings_text(c)}" + (f" (for {', '.join(models)})" if len(measured) > 1 else "")
             for c, models in measured]
    rows = decision_matrix(costs, weights)
    lines.append(format_table(MATRIX_HEADER, [matrix_cells(r) for r in rows], align="rl" + "r" * 10))
    lines.append(score_note(weights))
    ok = [c for c in costs if c.ok]
    threads = sorted({c.threads for c in ok})
    if ok:
        lines.append(f"latency: median of {len(ok[0].samples_ns)} timed passes after {ok[0].warmup} warm-up, "
                     f"\u00b1 half the interquartile range; {'/'.join(map(str, threads))} torch thread(s)")
    mislead = [(c.model, misleading_text(c)) for c in ok]
    mislead = [(m, t) for m, t in mislead if t]
    if mislead:
        lines.append("where FLOPs mislead (share of FLOPs vs share of layer time):")
        lines += [f"  {m}: {t}" for m, t in mislead]
    for c in costs:
        if not c.ok:
            first = (c.error or "").strip().splitlines()[0] if c.error else ""
            lines.append(f"{c.model}: {c.status.value}: {first}")
    return "\n".join(lines)


# -- Markdown -------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return out


def layer_cells(layer: LayerCost, c: ModelCost) -> list[str]:
    total_time = c.layer_time_ns or 1
    return [layer.path or "<root>", layer.module_type, layer.kind,
            f"{ms(layer.time_ns)} ({pct(layer.time_ns / total_time)})",
            f"{human(layer.flops)} ({pct(layer.flops / c.flops if c.flops else None)})", nbytes(layer.bytes),
            intensity(layer.intensity), rate(layer.achieved_flops, "FLOP/s"), layer.bound(c.ceilings)]


LAYER_HEADER = ["layer", "type", "kind", "time (share)", "FLOPs (share)", "bytes", "FLOP/byte", "achieved", "bound"]


def markdown_section(costs: Sequence[ModelCost], weights: Sequence[tuple[str, float]] = ()) -> list[str]:
    """``## Cost``: ceilings, the decision matrix, and per model its kinds and top layers."""
    if not costs:
        return []
    lines = ["## Cost: FLOPs, traffic and measured time", ""]
    lines += [f"Measured on {ceilings_text(c)} ({', '.join(models)})." for c, models in distinct_ceilings(costs)]
    lines += ["", *_md_table(MATRIX_HEADER, [matrix_cells(r) for r in decision_matrix(costs, weights)]), "",
              score_note(weights) + ".", ""]
    for c in costs:
        if not c.ok:
            lines += [f"### {c.model}", "", f"{c.status.value}: {c.error or ''}", ""]
            continue
        lines += [f"### {c.model}", "", f"{c.device}, {c.dtype}, inputs {c.inputs}: {overhead_text(c)}.", ""]
        lines += _md_table(["kind", "layers", "FLOPs %", "bytes %", "time %"],
                           [[k.kind, str(k.layers), pct(k.flops_share), pct(k.bytes_share), pct(k.time_share)]
                            for k in kind_shares(c)])
        top = sorted(c.layers, key=lambda lc: -lc.time_ns)
        lines += ["", *_md_table(LAYER_HEADER, [layer_cells(lc, c) for lc in top[:TOP_LAYERS]])]
        if len(top) > TOP_LAYERS:
            lines.append(f"\nand {len(top) - TOP_LAYERS} more layers (results.json holds them all)")
        lines.append("")
    return lines


# -- HTML -------------------------------------------------------------------------------------
KIND_COLORS = {
    "conv": "#1f5fbf", "depthwise conv": "#c2410c", "grouped conv": "#a16207", "matmul": "#15803d",
    "attention": "#7e22ce", "rnn": "#0f766e", "norm": "#be123c", "activation": "#4d7c0f", "pool": "#0e7490",
    "elementwise": "#6b21a8", "reduction": "#9a3412", "interpolation": "#3f6212", "embedding": "#1e40af",
    "data_movement": "#525252", "unsupported": "#991b1b",
}
"""Marker colours by layer kind: each at least 4.5:1 against white (what the legend's text sits beside)."""
OTHER_COLOR = "#404040"

SVG_W, SVG_H = 640, 380
_L, _R, _T, _B = 78, 16, 16, 52


@dataclass(frozen=True)
class _Axis:
    lo: float  # log10
    hi: float
    start: float  # pixels
    end: float

    def __call__(self, value: float) -> float:
        t = (math.log10(value) - self.lo) / (self.hi - self.lo)
        return round(self.start + t * (self.end - self.start), 1)


def _decades(values: Sequence[float]) -> tuple[float, float]:
    lo = math.floor(math.log10(min(values)))
    hi = math.ceil(math.log10(max(values)))
    return lo, hi if hi > lo else lo + 1


def roofline_svg(c: ModelCost) -> str:
    """A log-log roofline: the measured roof (bandwidth slope, then the matmul peak), each layer with
    FLOPs and a time as a point (area by its share of the time, colour by kind, a tooltip with its
    figures) and the whole model as a ring. Empty when the model has no ceilings or no layer to draw."""
    ceil = c.ceilings
    pts = [lc for lc in c.layers if lc.flops > 0 and lc.bytes > 0 and lc.time_ns > 0]
    if ceil is None or not pts or not ceil.ridge:
        return ""
    xs = [lc.intensity for lc in pts] + [ceil.ridge]
    ys = [lc.achieved_flops for lc in pts] + [float(ceil.peak_flops)]
    if c.intensity and c.achieved_flops:
        xs.append(c.intensity)
        ys.append(c.achieved_flops)
    x_lo, x_hi = _decades([x for x in xs if x])
    y_lo, y_hi = _decades([y for y in ys if y])
    x = _Axis(x_lo, x_hi, _L, SVG_W - _R)
    y = _Axis(y_lo, y_hi, SVG_H - _B, _T)
    total = c.layer_time_ns or 1
    out = [f'<svg class="roofline" width="{SVG_W}" height="{SVG_H + 20 * ((len(_kinds(pts)) + 3) // 4 + 1)}" '
           f'role="img" aria-label="roofline of {html.escape(c.model)}">']
    out.append(f'<rect x="{_L}" y="{_T}" width="{SVG_W - _L - _R}" height="{SVG_H - _T - _B}" fill="#ffffff" '
               'stroke="#8a8a8a"/>')
    for d in range(int(x_lo), int(x_hi) + 1):
        px = x(10.0**d)
        out.append(f'<line x1="{px}" y1="{_T}" x2="{px}" y2="{SVG_H - _B}" stroke="#e2e2e2"/>')
        out.append(f'<text x="{px}" y="{SVG_H - _B + 16}" text-anchor="middle">{_tick(10.0**d)}</text>')
    for d in range(int(y_lo), int(y_hi) + 1):
        py = y(10.0**d)
        out.append(f'<line x1="{_L}" y1="{py}" x2="{SVG_W - _R}" y2="{py}" stroke="#e2e2e2"/>')
        out.append(f'<text x="{_L - 6}" y="{py + 4}" text-anchor="end">{_tick(10.0**d)}</text>')
    out.append(f'<text x="{(_L + SVG_W - _R) / 2}" y="{SVG_H - 14}" text-anchor="middle">arithmetic intensity '
               '(FLOPs per byte moved)</text>')
    out.append(f'<text x="14" y="{(_T + SVG_H - _B) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(_T + SVG_H - _B) / 2})">achieved FLOP/s</text>')
    # The roof: bandwidth x intensity up to the ridge, then the peak; clipped to the plot.
    x_min = max(10.0**x_lo, 10.0**y_lo / ceil.bandwidth)
    roof = [(x_min, ceil.bandwidth * x_min), (ceil.ridge, float(ceil.peak_flops)), (10.0**x_hi, float(ceil.peak_flops))]
    path = " ".join(f"{x(a)},{y(b)}" for a, b in roof)
    out.append(f'<polyline points="{path}" fill="none" stroke="#1a1a1a" stroke-width="2"><title>roof: '
               f'{rate(ceil.bandwidth, "B/s")} x intensity, at most {rate(ceil.peak_flops, "FLOP/s")}; ridge '
               f'{ceil.ridge:.3g} FLOP/byte</title></polyline>')
    for lc in sorted(pts, key=lambda lc: -lc.time_ns):
        r = round(2.5 + 9 * math.sqrt(lc.time_ns / total), 1)
        tip = (f"{lc.path or '<root>'} ({lc.module_type}, {lc.kind}): {intensity(lc.intensity)} FLOP/byte, "
               f"{rate(lc.achieved_flops, 'FLOP/s')}, {ms(lc.time_ns)} ({pct(lc.time_ns / total)} of layer time), "
               f"{human(lc.flops)} FLOPs, {nbytes(lc.bytes)}, {lc.bound(ceil)}-bound")
        out.append(f'<circle class="layer" cx="{x(lc.intensity)}" cy="{y(lc.achieved_flops)}" r="{r}" '
                   f'fill="{KIND_COLORS.get(lc.kind, OTHER_COLOR)}" fill-opacity="0.75" stroke="#ffffff" '
                   f'stroke-width="0.8"><title>{html.escape(tip)}</title></circle>')
    if c.intensity and c.achieved_flops:
        out.append(f'<circle cx="{x(c.intensity)}" cy="{y(c.achieved_flops)}" r="8" fill="none" stroke="#1a1a1a" '
                   f'stroke-width="2.5"><title>{html.escape(c.model)} as a whole: {intensity(c.intensity)} '
                   f'FLOP/byte, {rate(c.achieved_flops, "FLOP/s")}</title></circle>')
    out.append(f'<text x="{_L}" y="{SVG_H}">roof: {rate(ceil.bandwidth, "B/s")} x FLOP/byte up to '
               f'{rate(ceil.peak_flops, "FLOP/s")}; ring: the whole model</text>')
    for k, kind in enumerate(_kinds(pts)):
        lx, ly = _L + (k % 4) * 140, SVG_H + 20 * (k // 4 + 1)
        out.append(f'<circle cx="{lx + 6}" cy="{ly - 4}" r="5" fill="{KIND_COLORS.get(kind, OTHER_COLOR)}"/>')
        out.append(f'<text x="{lx + 16}" y="{ly}">{html.escape(kind)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _kinds(layers: Sequence[LayerCost]) -> list[str]:
    return sorted({lc.kind for lc in layers})


def _tick(v: float) -> str:
    return human(v, 0) if v >= 1000 else f"{v:g}"


def html_context(costs: Sequence[ModelCost], weights: Sequence[tuple[str, float]] = ()) -> dict[str, Any]:
    """What the template's cost section reads."""
    rows = decision_matrix(costs, weights)
    models = []
    for c in costs:
        if not c.ok:
            models.append({"cost": c, "ok": False})
            continue
        undrawn = [lc for lc in c.layers if not (lc.flops > 0 and lc.bytes > 0 and lc.time_ns > 0)]
        top = sorted(c.layers, key=lambda lc: -lc.time_ns)
        models.append({
            "cost": c, "ok": True, "latency": latency_text(c), "overhead": overhead_text(c),
            "roofline": roofline_svg(c), "kinds": kind_shares(c), "top": top[:TOP_LAYERS],
            "more": max(0, len(top) - TOP_LAYERS), "mislead": misleading_text(c),
            "undrawn": len(undrawn), "undrawn_time": sum(lc.time_ns for lc in undrawn),
        })
    return {
        "matrix": rows, "matrix_header": MATRIX_HEADER, "ceilings": distinct_ceilings(costs),
        "score_note": score_note(weights), "models": models, "columns": COLUMNS,
    }


__all__ = ["html_context", "markdown_section", "roofline_svg", "terminal_text", "ceilings_text", "ms", "rate",
           "nbytes", "pct", "intensity", "layer_cells", "LAYER_HEADER", "matrix_cells"]
