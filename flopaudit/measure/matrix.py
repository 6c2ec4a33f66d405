"""The decision matrix across models, its user-weighted score, and where FLOPs mislead (no torch).

Each column of the matrix (:data:`COLUMNS`) is a figure of a
:class:`~flopaudit.measure.records.ModelCost` and which way is better.
The score of a model is the weighted mean, over the weighted columns, of
how close it comes to the best model of the matrix on that column: the
best value over its value where lower is better (FLOPs, parameters,
latency, memory...), its value over the best where higher is better
(achieved FLOP/s, fraction of peak). A score of 1 is the best model on
every weighted column; 0.5 on a column alone is twice the best's latency
(or half its FLOP/s). Weights are relative (``flops=3,params=2`` is
``flops=0.6,params=0.4``); :data:`DEFAULT_WEIGHTS` weigh FLOPs,
parameters, latency and peak memory alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flopaudit.errors import UserError
from flopaudit.measure.records import ModelCost


@dataclass(frozen=True)
class Column:
    """One figure of the matrix: its name in ``--weights``, its title, which way is better, its value."""

    name: str
    title: str
    lower_is_better: bool
    value: Callable[[ModelCost], float | int | None]
    doc: str


COLUMNS: dict[str, Column] = {c.name: c for c in (
    Column("flops", "FLOPs", True, lambda c: c.flops, "canonical FLOPs of one forward pass (2 x MACs + extra FLOPs)"),
    Column("macs", "MACs", True, lambda c: c.macs, "canonical multiply-accumulates"),
    Column("params", "params", True, lambda c: c.params, "parameters (each tensor once)"),
    Column("latency", "latency", True, lambda c: c.latency_ns, "median measured forward latency"),
    Column("memory", "peak memory", True, lambda c: c.peak_memory, "most bytes held at once during the pass"),
    Column("bytes", "bytes moved", True, lambda c: c.bytes, "bytes read and written by every operator"),
    Column("achieved", "achieved FLOP/s", False, lambda c: c.achieved_flops, "FLOPs over the median latency"),
    Column("efficiency", "% of peak", False, lambda c: c.peak_fraction,
           "achieved FLOP/s over the measured matmul peak"),
)}

DEFAULT_WEIGHTS: tuple[tuple[str, float], ...] = (("flops", 1.0), ("params", 1.0), ("latency", 1.0), ("memory", 1.0))


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    """``"flops=0.6,params=0.4"`` -> ``(("flops", 0.6), ("params", 0.4))``; any mistake is a
    :class:`~flopaudit.errors.UserError` of one line."""
    pairs: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, number = part.partition("=")
        name, number = name.strip().lower(), number.strip()
        if not sep or not name:
            raise UserError(f"invalid --weights {text!r}: expected COLUMN=WEIGHT pairs, e.g. flops=0.6,params=0.4")
        if name not in COLUMNS:
            raise UserError(f"unknown column {name!r} in --weights; columns: {', '.join(COLUMNS)}")
        try:
            weight = float(number)
        except ValueError:
            weight = math.nan
        if not (math.isfinite(weight) and weight >= 0):
            raise UserError(f"invalid weight {number!r} for {name} in --weights: expected a number >= 0, e.g. 0.5")
        if any(n == name for n, _ in pairs):
            raise UserError(f"column {name!r} is weighted twice in --weights")
        pairs.append((name, weight))
    if not pairs:
        raise UserError(f"invalid --weights {text!r}: expected COLUMN=WEIGHT pairs, e.g. flops=0.6,params=0.4")
    if not any(w > 0 for _, w in pairs):
        raise UserError("--weights: at least one weight must be above 0")
    return tuple(pairs)


def weights_text(weights: Sequence[tuple[str, float]]) -> str:
    """``(("flops", 0.6), ("params", 0.4))`` -> ``"flops=0.6, params=0.4"``."""
    return ", ".join(f"{n}={w:g}" for n, w in weights)


def _closeness(value: float | int | None, best: float | int | None, lower: bool) -> float | None:
    """How close ``value`` is to the column's best, in (0, 1]."""
    if value is None or best is None:
        return None
    if lower:
        return 1.0 if value <= best else (best / value if value else 1.0)
    return 1.0 if value >= best else (value / best if best else 1.0)


@dataclass(frozen=True)
class MatrixRow:
    """One model's row: its cost, its score (``None`` without a measurement) and rank (1 = best)."""

    cost: ModelCost
    score: float | None
    rank: int | None
    parts: tuple[tuple[str, float | None], ...]
    """Each weighted column's closeness to the best, in (0, 1]."""

    def value(self, column: str) -> Any:
        return COLUMNS[column].value(self.cost) if self.cost.ok else None


def decision_matrix(costs: Sequence[ModelCost], weights: Sequence[tuple[str, float]] = ()) -> list[MatrixRow]:
    """The rows of the matrix, best score first (models without a measurement last, in their order)."""
    weights = tuple(weights) or DEFAULT_WEIGHTS
    ok = [c for c in costs if c.ok]
    best: dict[str, float | int | None] = {}
    for name, _ in weights:
        col = COLUMNS[name]
        values = [v for v in (col.value(c) for c in ok) if v is not None]
        best[name] = (min(values) if col.lower_is_better else max(values)) if values else None
    rows = []
    for cost in costs:
        if not cost.ok:
            rows.append(MatrixRow(cost, None, None, ()))
            continue
        parts = tuple((n, _closeness(COLUMNS[n].value(cost), best[n], COLUMNS[n].lower_is_better)) for n, _ in weights)
        used = [(w, p) for (_, w), (_, p) in zip(weights, parts) if p is not None and w > 0]
        total = sum(w for w, _ in used)
        score = sum(w * p for w, p in used) / total if total else None
        rows.append(MatrixRow(cost, score, None, parts))
    scored = sorted((r for r in rows if r.score is not None), key=lambda r: -r.score)  # type: ignore[operator]
    ranks = {id(r): k + 1 for k, r in enumerate(scored)}
    ranked = [MatrixRow(r.cost, r.score, ranks[id(r)], r.parts) for r in scored]
    return ranked + [r for r in rows if r.score is None]


@dataclass(frozen=True)
class KindShare:
    """One kind of layer (``conv``, ``depthwise conv``, ``norm``...) in one model: its share of the
    FLOPs, of the bytes moved and of the time the layers account for."""

    kind: str
    layers: int
    flops: int
    bytes: int
    time_ns: int
    flops_share: float
    bytes_share: float
    time_share: float

    @property
    def misleading(self) -> float | None:
        """Time share over FLOPs share: above 1 the FLOPs understate what the kind costs."""
        return self.time_share / self.flops_share if self.flops_share else None


def kind_shares(cost: ModelCost) -> list[KindShare]:
    """The model's layers grouped by kind, most time first."""
    groups: dict[str, list[Any]] = {}
    for layer in cost.layers:
        groups.setdefault(layer.kind, []).append(layer)
    flops = sum(lc.flops for lc in cost.layers) or 1
    moved = sum(lc.bytes for lc in cost.layers) or 1
    time_ns = sum(lc.time_ns for lc in cost.layers) or 1
    out = []
    for kind, layers in groups.items():
        f, b, t = sum(lc.flops for lc in layers), sum(lc.bytes for lc in layers), sum(lc.time_ns for lc in layers)
        out.append(KindShare(kind, len(layers), f, b, t, f / flops, b / moved, t / time_ns))
    out.sort(key=lambda k: (-k.time_ns, k.kind))
    return out


def misleading_text(cost: ModelCost, limit: int = 3) -> str:
    """One line naming the kinds whose time share most exceeds their FLOPs share:
    ``"depthwise conv 3% of FLOPs, 24% of time; norm 1% of FLOPs, 11% of time"``."""
    shares = [k for k in kind_shares(cost) if k.time_share >= 0.02 and k.time_share > 1.5 * k.flops_share]
    shares.sort(key=lambda k: -(k.time_share - k.flops_share))
    return "; ".join(f"{k.kind} {_pct(k.flops_share)} of FLOPs, {_pct(k.time_share)} of time" for k in shares[:limit])


def _pct(x: float) -> str:
    return "<1%" if 0 < x < 0.005 else f"{100 * x:.0f}%"


__all__ = ["COLUMNS", "DEFAULT_WEIGHTS", "Column", "KindShare", "MatrixRow", "decision_matrix", "kind_shares",
           "misleading_text", "parse_weights", "weights_text"]
