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
    """The layers it applies to, largest first (cut off: see :attr:`more_layers`)."""
    more_layers: int = 0
    """How many more layers it applies to than ``layers`` lists."""

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "rule": self.rule, "macs": self.macs, "layers": [list(x) for x in self.layers],
                "more_layers": self.more_layers}


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
    """What the backend changed on the copy it counted: one text per kind of
    change, with examples and on how many models (see
    :func:`flopaudit.reports.explain.side_effect_summary`)."""

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["misses"], d["side_effects"] = list(self.misses), list(self.side_effects)
        return d


@dataclass(frozen=True)
class Finding:
    """One sentence of a model's verdict about counters that do not give the
    canonical count: the ``backends`` it names, the cause family (``kind``:
    a cause kind, or a status such as ``error``) and the largest cause's
    signed share of the canonical count (``None`` for failed counts)."""

    backends: tuple[str, ...]
    kind: str
    text: str
    share: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"backends": list(self.backends), "kind": self.kind, "text": self.text, "share": self.share}


@dataclass(frozen=True)
class ModelVerdict:
    """Which counter to use for one model, and why not the others.

    ``exact`` give the canonical count (the reference counter's MACs) to the
    MAC; ``close`` are within ``tolerance`` (relative) with their ratios;
    ``findings`` say, for every other counter, its largest cause and share or
    how it failed. ``error`` is set when there is no canonical count to judge by.
    """

    model: str
    family: str
    reference_macs: int | None
    tolerance: float
    exact: tuple[str, ...] = ()
    close: tuple[tuple[str, float], ...] = ()
    findings: tuple[Finding, ...] = ()
    conversions: tuple[tuple[str, str], ...] = ()
    """``(backend, how)`` for counters in ``exact``/``close`` whose raw number
    needs converting (``"reports FLOPs: halve it"``)."""
    error: str | None = None
    unpriced: tuple[tuple[str, int], ...] = ()
    """``(operator, calls)`` the reference counter has no formula for (it counts them 0): a
    counter agreeing with it misses that work too, which the headline says."""
    headline: str = ""
    """Which counters to use, in one sentence (without the findings)."""

    @property
    def use(self) -> tuple[str, ...]:
        """Counters giving the canonical count, exact ones first."""
        return self.exact + tuple(b for b, _ in self.close)

    @property
    def text(self) -> str:
        """Headline and every finding, as one paragraph."""
        return " ".join([self.headline + "."] + [f.text + "." for f in self.findings])

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "family": self.family, "reference_macs": self.reference_macs,
            "tolerance": self.tolerance, "use": list(self.use), "exact": list(self.exact),
            "close": [{"backend": b, "ratio": r} for b, r in self.close],
            "findings": [f.to_dict() for f in self.findings],
            "conversions": dict(self.conversions), "error": self.error, "unpriced": dict(self.unpriced),
            "headline": self.headline, "text": self.text,
        }


@dataclass(frozen=True)
class BackendEvidence:
    """How one counter did on the models of one family."""

    backend: str
    models: int
    exact: int
    close: int
    failed: int
    unexplained: int
    median_abs_deviation: float | None
    """Median of ``|count / canonical - 1|`` over the models it counted."""
    worst: tuple[str, float, str] | None = None
    """``(model, signed deviation, largest cause)`` where the counter is
    furthest from the canonical count (among the models it counted)."""
    failures: tuple[str, ...] = ()
    """Models where it failed (error, timeout, not applicable)."""
    not_applicable: tuple[str, ...] = ()
    """Those of :attr:`failures` where it does not apply (it cannot take the model's inputs, is
    not installed here): said apart from the failures in the evidence's text."""

    @property
    def usable(self) -> int:
        """Models where it gives the canonical count, exactly or within the tolerance."""
        return self.exact + self.close

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["worst"] = None if self.worst is None else {"model": self.worst[0], "deviation": self.worst[1],
                                                      "cause": self.worst[2]}
        d["failures"], d["not_applicable"], d["usable"] = list(self.failures), list(self.not_applicable), self.usable
        return d


@dataclass(frozen=True)
class FamilyRecommendation:
    """Counters ranked for one model family, best first, with the evidence."""

    family: str
    models: tuple[str, ...]
    ranking: tuple[BackendEvidence, ...]
    tolerance: float
    best: tuple[str, ...] = ()
    """The counters tied for first place (empty when none gives the canonical count on any model)."""

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "models": list(self.models), "tolerance": self.tolerance,
                "best": list(self.best), "ranking": [e.to_dict() for e in self.ranking]}


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
    verdicts: tuple[ModelVerdict, ...] = ()
    families: tuple[FamilyRecommendation, ...] = ()
    verdict_tolerance: float = 0.01
    """Relative distance from the canonical count still called "within" in verdicts."""

    def verdict(self, model: str) -> ModelVerdict | None:
        return next((v for v in self.verdicts if v.model == model), None)

    def cell(self, model: str, backend: str) -> CellExplanation | None:
        return next((c for c in self.cells if c.model == model and c.backend == backend), None)
