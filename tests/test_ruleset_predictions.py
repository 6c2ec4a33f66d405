"""Each backend's ruleset predicts that backend's count exactly, case by case.

The reference records a case once; the backend's ruleset, applied to those
events (:func:`flopaudit.reference.predict.predict`), must equal what the
backend's adapter reports, less the parts the backend's own output attributes
to causes the reference cannot observe (``extra`` keys starting with
``"cause: "``). A backend that does not apply to a case (status ``not
applicable``: inputs it cannot take) or counts no MACs has nothing to predict. Where it cannot (yet), the ruleset module lists the
case in ``KNOWN_DIVERGENCES`` with its reason; such cases are strict xfails, so
a divergence that disappears must be removed from the table.
"""

from __future__ import annotations

import importlib
from functools import cache

import pytest

from flopaudit.adapters import get_adapter
from flopaudit.records import DECLARED_CAUSE, CountResult, Status
from flopaudit.reference.backend_rulesets import BACKEND_RULESET_MODULES
from flopaudit.zoo import all_cases, get_case

FAST_CASES = [c.id for c in all_cases() if "hard" in c.tags] + ["resnet18", "mobilenet_v2"]
SLOW_CASES = ["resnet50", "vit_b_16", "convnext_tiny", "efficientnet_b0", "swin_t", "inception_v3"]
BACKENDS = list(BACKEND_RULESET_MODULES)


@cache
def _reference(case_id: str) -> CountResult:
    model, inputs = get_case(case_id).instantiate()
    return get_adapter("reference").count(model, inputs, model_name=case_id)


def _check(case_id: str, backend: str) -> None:
    try:
        module = importlib.import_module(BACKEND_RULESET_MODULES[backend])
    except ModuleNotFoundError:
        pytest.fail(f"no ruleset module for backend {backend!r}")
    known: dict[str, str] = getattr(module, "KNOWN_DIVERGENCES", {})
    if case_id in known:
        pytest.xfail(known[case_id])
    model, inputs = get_case(case_id).instantiate()
    actual = get_adapter(backend).count(model, inputs, model_name=case_id)
    if actual.status is Status.NOT_APPLICABLE:
        pytest.skip(f"{backend} does not apply to {case_id}: {actual.error}")
    assert actual.status is Status.OK, f"{backend} failed on {case_id}: {actual.error}"
    if actual.macs is None:
        pytest.skip(f"{backend} counts no MACs")
    ref = _reference(case_id)
    assert ref.status is Status.OK, ref.error
    prediction = ref.prediction(backend)
    assert prediction is not None, f"reference has no prediction for {backend}"
    causes = "\n".join(f"  {c.kind}: {c.rule}: {c.macs:+d}" for c in prediction.contributions)
    declared = sum(v for k, v in actual.extra if k.startswith(DECLARED_CAUSE))
    assert prediction.macs == actual.macs - declared, (
        f"{backend} on {case_id}: backend {actual.macs}, ruleset predicts {prediction.macs} "
        f"(canonical {ref.macs})\n{causes}"
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case_id", FAST_CASES)
def test_ruleset_predicts_backend(case_id: str, backend: str) -> None:
    _check(case_id, backend)


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case_id", SLOW_CASES)
def test_ruleset_predicts_backend_slow(case_id: str, backend: str) -> None:
    _check(case_id, backend)
