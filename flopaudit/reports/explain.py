"""Explain every (model, backend) difference from the reference counter.

For each cell the backend's normalised MACs are compared with the reference's
canonical MACs. The reference result carries, for every backend, a
:class:`~flopaudit.records.RulesetPrediction`: the same aten events counted
under that backend's rules, decomposed rule by rule. The causes of a cell are
those rule contributions; whatever the prediction does not account for is the
``residual``. A backend's own output can add causes: declared ones
(``extra`` keys starting with ``"cause: "``), always booked, and conditional
ones (work the reference's pass may or may not have run), booked only where
they are exactly the residual. A cell is ``unexplained`` only when what is
left is larger than the tolerance. A backend that counts no MACs (torchsummary,
pytorch-model-summary) gives a ``no MACs`` cell. Every ok cell also compares
the backend's parameters with the reference's (:mod:`flopaudit.reports.params`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Iterable

from flopaudit.module_paths import layer_differences
from flopaudit.records import (
    CONDITIONAL_CAUSE,
    DECLARED_CAUSE,
    NOT_PREDICTED,
    PREDICTED_IN_ANOTHER_MODE,
    TRACED_BRANCH,
    TRACED_BRANCH_FAILED,
    AuditRun,
    Breakdown,
    CauseKind,
    CountResult,
    Status,
)
from flopaudit.reports.model import BackendScore, Cause, CellExplanation, Report
from flopaudit.reports.params import explain_params

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


def conditional_causes(result: CountResult, residual: int) -> tuple[Cause, ...]:
    """The backend's conditional causes (``extra`` keys starting with ``"cause if it is
    the residual: "``) that account for ``residual`` exactly: each one alone, or all of
    them together, whichever is exactly the residual first; none otherwise."""
    found = tuple(Cause(CauseKind.RULE, key[len(CONDITIONAL_CAUSE):], value)
                  for key, value in result.extra if key.startswith(CONDITIONAL_CAUSE) and value)
    if not residual or not found:
        return ()
    for cause in found:
        if cause.macs == residual:
            return (cause,)
    return found if sum(c.macs for c in found) == residual else ()


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
        more = len(result.unsupported) - 8
        notes.append(f"backend lists as unsupported: {listed}" + (f" and {more} more" if more > 0 else ""))
    if reference is None or not reference.ok or reference.macs is None:
        return CellExplanation(classification="no reference", reference_macs=None, notes=tuple(notes), **base)
    ref_macs = reference.macs
    diff = result.macs - ref_macs
    layers = top_layers(result, reference.module_macs())
    prediction = reference.prediction(result.backend)
    allowed = max(0.0, tolerance * abs(ref_macs))
    placed = placement_note(result)
    said = prediction_notes(reference, result.backend)
    if prediction is None:
        classification = "agrees" if abs(diff) <= allowed else "unexplained"
        if classification == "agrees" and diff == 0 and notes and note:
            classification = "unit"
        return CellExplanation(classification=classification, reference_macs=ref_macs, residual=diff,
                               notes=tuple(notes) + (said or ("no ruleset for this backend",)), top_layers=layers,
                               **base)
    notes += said
    declared = declared_causes(result)
    causes = tuple(Cause(c.kind, c.rule, c.macs, c.layers, c.more_layers)
                   for c in prediction.contributions if c.macs) + declared
    residual = result.macs - prediction.macs - sum(c.macs for c in declared)
    conditional = conditional_causes(result, residual)
    causes += conditional
    residual -= sum(c.macs for c in conditional)
    if abs(residual) > allowed:
        classification = "unexplained"
        notes += [placed] if placed else []
    elif diff == 0 or abs(diff) <= allowed and not causes:
        classification = "unit" if note and result.raw_total != result.macs else "agrees"
    else:
        classification = max(causes, key=lambda c: (abs(c.macs), c.kind)).kind if causes else "agrees"
    return CellExplanation(
        classification=classification, reference_macs=ref_macs, predicted_macs=prediction.macs, causes=causes,
        residual=residual, notes=tuple(notes), top_layers=layers, **base,
    )


def prediction_notes(reference: CountResult, backend: str) -> tuple[str, ...]:
    """What predicting ``backend`` from the reference's recordings met (a pass the model
    cannot run the way the backend runs it), from the reference count's warnings
    (:func:`flopaudit.adapters.reference.predict_backends`), without the backend's name."""
    prefix = f"{backend}: "
    return tuple(w[len(prefix):] for w in reference.warnings
                 if w.startswith(prefix)
                 and w[len(prefix):].startswith((NOT_PREDICTED, PREDICTED_IN_ANOTHER_MODE, TRACED_BRANCH,
                                                 TRACED_BRANCH_FAILED)))


def placement_note(result: CountResult) -> str:
    """For a count made off the CPU or in another dtype (``--device``/``--dtype``, recorded in its options):
    the kernels torch picks there are a cause of their own ("" for the CPU in float32)."""
    options = dict(result.options)
    device, dtype = (options.get(k, "").strip("'") for k in ("device", "dtype"))
    if not device or device == "meta" or (device, dtype) == ("cpu", "float32"):
        return ""
    return (f"counted on {device} in {dtype}: torch runs other kernels there (cuDNN RNNs, flash or memory-efficient "
            f"attention, reduced-precision paths), which {result.backend} may count differently from its rules as "
            "checked on the CPU in float32")


def _ok_macs(r: CountResult | None) -> int | None:
    return r.macs if r is not None and r.ok else None


def _median(values: Iterable[float]) -> float | None:
    v = list(values)
    return statistics.median(v) if v else None


def side_effect_summary(results: Iterable[CountResult], examples: int = 3) -> tuple[str, ...]:
    """One text per kind of change a backend made to the copy it counted:
    ``"added state_dict keys (total_ops, total_params and 4 more; on 19 of 19
    models)"``. A side effect reads ``"<what>: <item>, <item> (+N more)"``;
    items are named by their last dotted part (``layer1.0.total_ops`` ->
    ``total_ops``), paths of modules whose mode changed are counted instead."""
    results = list(results)
    kinds: dict[str, dict[str, None]] = {}
    on: dict[str, set[str]] = {}
    for r in results:
        for effect in r.side_effects:
            what, _, items = effect.partition(": ")
            kinds.setdefault(what, {})
            on.setdefault(what, set()).add(r.model)
            for item in items.split(", "):
                item = item.split(" (+")[0].strip()
                if item:
                    kinds[what][item if what.endswith(" of") else item.rsplit(".", 1)[-1]] = None
    out = []
    for what, items in sorted(kinds.items()):
        listed = list(items)
        label = what.removesuffix(" of")
        if label != what:  # module paths: how many, not which
            shown = f"{len(listed)} module{'s' if len(listed) != 1 else ''}"
        elif len(listed) > examples:
            shown = ", ".join(listed[:examples]) + f" and {len(listed) - examples} more"
        else:
            shown = ", ".join(listed)
        where = f"on {len(on[what])} of {len(results)} models"
        out.append(f"{label} ({shown}; {where})" if shown else f"{label} ({where})")
    return tuple(out)


def score_backend(backend: str, run: AuditRun, cells: list[CellExplanation]) -> BackendScore:
    results = [r for r in run.results if r.backend == backend]
    mine = [c for c in cells if c.backend == backend]
    ok = [c for c in mine if c.status == "ok"]
    misses = sorted({c.rule for cell in ok for c in cell.causes if c.kind in ("unsupported", "missed-functional")})
    effects = side_effect_summary(results)
    ratios = [abs(c.ratio - 1) for c in ok if c.ratio is not None]
    first = results[0] if results else None
    return BackendScore(
        backend=backend,
        # ("-": no version on record, a backend that is not installed or is shadowed by another's package)
        version=next((r.backend_version for r in results if r.backend_version), "-"),
        unit=first.unit.value if first else "",
        models=len(mine),
        ok=len(ok),
        failed=len(mine) - len(ok),
        exact_canonical=sum(1 for c in ok if c.difference == 0),
        exact_own_rules=sum(1 for c in ok if c.predicted_macs is not None and c.residual == 0),
        unexplained=sum(1 for c in ok if c.classification == "unexplained"),
        median_abs_deviation=_median(ratios),
        misses=tuple(misses),
        side_effects=effects,
    )


def build_report(run: AuditRun, tolerance: float = 0.0, verdict_tolerance: float | None = None) -> Report:
    """Explain every cell of ``run``, score every backend and give each model
    its verdict (:mod:`flopaudit.reports.verdict`; ``verdict_tolerance``:
    how far from the canonical count a counter may be and still be
    recommended, default 1%)."""
    import dataclasses

    from flopaudit.reports.verdict import DEFAULT_TOLERANCE, family_recommendations, model_verdicts

    vtol = DEFAULT_TOLERANCE if verdict_tolerance is None else verdict_tolerance
    backends = tuple(dict.fromkeys(r.backend for r in run.results))
    models = tuple(dict.fromkeys(r.model for r in run.results))
    refs = {r.model: r for r in run.results if r.backend == REFERENCE}
    cells = [explain_cell(r, refs.get(r.model), tolerance) for r in run.results if r.backend != REFERENCE]
    scores = tuple(score_backend(b, run, cells) for b in backends if b != REFERENCE)
    report = Report(run=run, cells=tuple(cells), scores=scores, backends=backends, models=models,
                    tolerance=tolerance, verdict_tolerance=vtol)
    verdicts = model_verdicts(report, vtol)
    return dataclasses.replace(report, verdicts=verdicts, families=family_recommendations(report, verdicts, vtol))
