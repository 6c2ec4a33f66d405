"""Explain every (model, backend) difference from the reference counter.

For each cell the backend's normalised MACs are compared with the reference's
canonical MACs. The reference result carries, for every backend, a
:class:`~flopaudit.records.RulesetPrediction`: the same aten events counted
under that backend's rules, decomposed rule by rule. The causes of a cell are
those rule contributions; whatever the prediction does not account for is the
``residual``. A cell is ``unexplained`` only when that residual is larger than
the tolerance. A backend that counts no MACs (torchsummary,
pytorch-model-summary) gives a ``no MACs`` cell. Every ok cell also compares
the backend's parameters with the reference's (:mod:`flopaudit.reports.params`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable

from flopaudit.module_paths import layer_differences
from flopaudit.records import DECLARED_CAUSE, Breakdown, CauseKind, CountResult, Status
from flopaudit.reports.model import BackendScore, Cause, CellExplanation, Report
from flopaudit.reports.params import explain_params
from flopaudit.run import AuditRun

REFERENCE = "reference"


def unit_note(backend: str) -> str:
    """How ``backend``'s raw number relates to normalised MACs ("" if it needs no note or is unknown)."""
    from flopaudit.adapters import backends

    described = backends().get(backend)
    return described.unit_note if described is not None else ""


def top_layers(backend: CountResult, reference_modules: dict[str, int], limit: int = 5) -> Breakdown:
    """Leaf modules whose backend count differs most from the reference's."""
    mine = backend.module_macs()
    if not mine:
        return ()
    return layer_differences(mine, reference_modules, limit)


NO_MACS = "does not count MACs: compared on parameters (and its memory estimate) only"


def declared_causes(result: CountResult) -> tuple[Cause, ...]:
    """Parts of a backend's count its own output attributes to causes the
    reference cannot observe (``extra`` keys starting with ``"cause: "``)."""
    return tuple(Cause(CauseKind.RULE, key[len(DECLARED_CAUSE):], value)
                 for key, value in result.extra if key.startswith(DECLARED_CAUSE) and value)


def explain_cell(result: CountResult, reference: CountResult | None, tolerance: float = 0.0) -> CellExplanation:
    """Classify one cell and list its causes (see module docstring)."""
    explained = _explain_macs(result, reference, tolerance)
    if result.status is not Status.OK:
        return explained
    prediction = reference.prediction(result.backend) if reference is not None and reference.ok else None
    return dataclasses.replace(explained, params=explain_params(result, reference, prediction))


def _explain_macs(result: CountResult, reference: CountResult | None, tolerance: float) -> CellExplanation:
    base = dict(model=result.model, backend=result.backend, status=result.status.value,
                backend_macs=result.macs)
    if result.status is Status.OK and result.macs is None:
        return CellExplanation(classification="no MACs", reference_macs=_ok_macs(reference), notes=(NO_MACS,),
                               **base)
    if result.status is not Status.OK or result.macs is None:
        first = (result.error or "").strip().splitlines()[0] if result.error else None
        return CellExplanation(classification=result.status.value, reference_macs=_ok_macs(reference),
                               error=first, **base)
    notes = []
    note = unit_note(result.backend)
    if result.raw_total is not None and result.raw_total != result.macs and note:
        notes.append(note)
    if result.unsupported:
        listed = ", ".join(f"{op} x{n}" for op, n in result.unsupported[:8])
        notes.append(f"backend lists as unsupported: {listed}")
    if reference is None or not reference.ok or reference.macs is None:
        return CellExplanation(classification="no reference", reference_macs=None, notes=tuple(notes), **base)
    ref_macs = reference.macs
    diff = result.macs - ref_macs
    layers = top_layers(result, reference.module_macs())
    prediction = reference.prediction(result.backend)
    allowed = max(0.0, tolerance * abs(ref_macs))
    if prediction is None:
        classification = "agrees" if abs(diff) <= allowed else "unexplained"
        if classification == "agrees" and diff == 0 and notes and note:
            classification = "unit"
        return CellExplanation(classification=classification, reference_macs=ref_macs, residual=diff,
                               notes=tuple(notes) + ("no ruleset for this backend",), top_layers=layers, **base)
    declared = declared_causes(result)
    causes = tuple(Cause(c.kind, c.rule, c.macs, c.layers) for c in prediction.contributions if c.macs) + declared
    residual = result.macs - prediction.macs - sum(c.macs for c in declared)
    if abs(residual) > allowed:
        classification = "unexplained"
    elif diff == 0 or abs(diff) <= allowed and not causes:
        classification = "unit" if note and result.raw_total != result.macs else "agrees"
    else:
        classification = max(causes, key=lambda c: (abs(c.macs), c.kind)).kind if causes else "agrees"
    return CellExplanation(
        classification=classification, reference_macs=ref_macs, predicted_macs=prediction.macs, causes=causes,
        residual=residual, notes=tuple(notes), top_layers=layers, **base,
    )


def _ok_macs(r: CountResult | None) -> int | None:
    return r.macs if r is not None and r.ok else None


def _median(values: Iterable[float]) -> float | None:
    v = list(values)
    return statistics.median(v) if v else None


def score_backend(backend: str, run: AuditRun, cells: list[CellExplanation]) -> BackendScore:
    results = [r for r in run.results if r.backend == backend]
    mine = [c for c in cells if c.backend == backend]
    ok = [c for c in mine if c.status == "ok"]
    forward = {c.id: c.forward_s for c in run.cases if c.forward_s}
    misses = sorted({c.rule for cell in ok for c in cell.causes if c.kind in ("unsupported", "missed-functional")})
    effects = sorted({e.split(":")[0] for r in results for e in r.side_effects})
    ratios = [abs(c.ratio - 1) for c in ok if c.ratio is not None]
    first = results[0] if results else None
    return BackendScore(
        backend=backend,
        version=first.backend_version if first else "",
        unit=first.unit.value if first else "",
        models=len(mine),
        ok=len(ok),
        failed=len(mine) - len(ok),
        exact_canonical=sum(1 for c in ok if c.difference == 0),
        exact_own_rules=sum(1 for c in ok if c.predicted_macs is not None and c.residual == 0),
        unexplained=sum(1 for c in ok if c.classification == "unexplained"),
        median_abs_deviation=_median(ratios),
        misses=tuple(misses),
        side_effects=tuple(effects),
        median_seconds=_median(r.elapsed_s for r in results if r.ok),
        median_forward_ratio=_median(r.elapsed_s / forward[r.model] for r in results if r.ok and r.model in forward),
    )


def build_report(run: AuditRun, tolerance: float = 0.0) -> Report:
    """Explain every cell of ``run`` and score every backend."""
    backends = tuple(dict.fromkeys(r.backend for r in run.results))
    models = tuple(dict.fromkeys(r.model for r in run.results))
    refs = {r.model: r for r in run.results if r.backend == REFERENCE}
    cells = [explain_cell(r, refs.get(r.model), tolerance) for r in run.results if r.backend != REFERENCE]
    scores = tuple(score_backend(b, run, cells) for b in backends if b != REFERENCE)
    return Report(run=run, cells=tuple(cells), scores=scores, backends=backends, models=models, tolerance=tolerance)
