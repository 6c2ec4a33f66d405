"""The report's data: one explanation per (model, backend) cell and a scorecard.

Everything here is computed from an :class:`~flopaudit.run.AuditRun`
(see :mod:`flopaudit.reports.explain`); renderers only format it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flopaudit.records import Breakdown

#: Cell classifications, in the order the report explains them.
CLASSIFICATIONS = (
    "agrees",
    "unit",
    "rule",
    "unsupported",
    "missed-functional",
    "reused-module",
    "no MACs",
    "error",
    "timeout",
    "not applicable",
    "no reference",
    "unexplained",
)


@dataclass(frozen=True)
class Cause:
    """One named reason for part of a difference, with the MACs it accounts for."""

    kind: str
    rule: str
    macs: int
    layers: Breakdown = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "macs": self.macs, "layers": [list(x) for x in self.layers]}


@dataclass(frozen=True)
class CellExplanation:
    """Why ``backend`` reads what it reads for ``model``.

    ``difference = backend_macs - reference_macs`` and, when the backend's
    ruleset is known, ``difference == sum(c.macs for c in causes) + residual``
    holds exactly.
    """

    model: str
    backend: str
    status: str
    classification: str
    backend_macs: int | None
    reference_macs: int | None
    predicted_macs: int | None = None
    causes: tuple[Cause, ...] = ()
    residual: int = 0
    notes: tuple[str, ...] = ()
    top_layers: Breakdown = ()
    error: str | None = None
    params: Any = None
    """The parameter comparison (:class:`flopaudit.reports.params.ParamsExplanation`),
    None when the backend or the reference counted no parameters."""

    @property
    def difference(self) -> int | None:
        if self.backend_macs is None or self.reference_macs is None:
            return None
        return self.backend_macs - self.reference_macs

    @property
    def ratio(self) -> float | None:
        if self.backend_macs is None or not self.reference_macs:
            return None
        return self.backend_macs / self.reference_macs

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "backend": self.backend,
            "status": self.status,
            "classification": self.classification,
            "backend_macs": self.backend_macs,
            "reference_macs": self.reference_macs,
            "predicted_macs": self.predicted_macs,
            "difference": self.difference,
            "ratio": self.ratio,
            "causes": [c.to_dict() for c in self.causes],
            "residual": self.residual,
            "notes": list(self.notes),
            "top_layers": [list(x) for x in self.top_layers],
            "error": self.error,
            "params": self.params.to_dict() if self.params is not None else None,
        }


@dataclass(frozen=True)
class BackendScore:
    """How far one backend can be trusted over a run."""

    backend: str
    version: str
    unit: str
    models: int
    ok: int
    failed: int
    exact_canonical: int
    """Cells whose count equals the reference's canonical MACs."""
    exact_own_rules: int
    """Cells whose count equals the reference under this backend's ruleset."""
    unexplained: int
    median_abs_deviation: float | None
    """Median of |ratio - 1| over ok cells."""
    misses: tuple[str, ...] = ()
    side_effects: tuple[str, ...] = ()
    median_seconds: float | None = None
    median_forward_ratio: float | None = None
    """Median of count time / one plain forward pass."""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["misses"], d["side_effects"] = list(self.misses), list(self.side_effects)
        return d


@dataclass(frozen=True)
class Report:
    """Everything a renderer needs."""

    run: Any  # flopaudit.run.AuditRun
    cells: tuple[CellExplanation, ...]
    scores: tuple[BackendScore, ...]
    backends: tuple[str, ...]
    models: tuple[str, ...]
    tolerance: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def cell(self, model: str, backend: str) -> CellExplanation | None:
        return next((c for c in self.cells if c.model == model and c.backend == backend), None)
