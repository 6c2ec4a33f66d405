"""Models nobody here wrote: every (model, backend) cell explained.

For timm models, Hugging Face transformers built from configs and every
torchvision model in the zoo, each backend's count must equal its ruleset's
prediction (residual 0, so the cell is classified by named causes, never
``unexplained``), and a backend that fails must fail in code that is not
flopaudit's (the error names the module that raised it). The default tier
audits the representative subset tagged ``quick`` (seconds per model); the
slow tier audits every real-model case, one test per model, each in
supervised workers.
"""

from __future__ import annotations

import pytest

from flopaudit.commands.explain import format_explanation
from flopaudit.reports import build_report
from flopaudit.run import run_audit
from flopaudit.zoo import all_cases, get_case

pytest.importorskip("timm")
pytest.importorskip("transformers")

REAL = [c.id for c in all_cases() if c.tags & {"timm", "transformers", "torchvision"} and "hard" not in c.tags]
QUICK = [c for c in REAL if "quick" in get_case(c).tags]


def _check(case_ids: list[str], *, isolate: bool = False) -> None:
    """Audit ``case_ids`` on every backend and fail on any cell not explained exactly.

    ``isolate`` counts in supervised workers (no time limit), as ``flopaudit
    run`` does: what a model leaves mapped goes with its worker, so a session
    of the slow tier holds one model at a time (in one process the largest
    torchvision models outgrow a 24 GB machine)."""
    cases = [get_case(c) for c in case_ids]
    report = build_report(run_audit(cases, isolate=True, timeout=None) if isolate else run_audit(cases, isolate=False))
    for model in case_ids:
        reference = report.run.result(model, "reference")
        assert reference is not None and reference.ok, reference
    failures = []
    for cell in report.cells:
        if cell.status == "not applicable":  # the backend's adapter declines this model's inputs, saying why
            continue
        if cell.status != "ok":
            if "(raised in flopaudit." in (cell.error or "") or "(raised in" not in (cell.error or ""):
                failures.append(f"{cell.model} / {cell.backend}: {cell.error}")
        elif cell.classification == "unexplained" or cell.residual != 0:
            failures.append(format_explanation(cell))
    assert not failures, "\n\n".join(failures)


def test_quick_subset_spans_every_family() -> None:
    families = {f for c in QUICK for f in ("timm", "transformers", "detection") if f in get_case(c).tags}
    assert families == {"timm", "transformers", "detection"}
    assert len(REAL) >= 100


def test_quick_real_models_are_explained() -> None:
    _check(QUICK)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", REAL)
def test_real_model_is_explained(case_id: str) -> None:
    _check([case_id], isolate=True)
