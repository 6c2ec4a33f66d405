"""Each backend's ruleset predicts that backend's count exactly, case by case.

The reference records a case once; the backend's ruleset, applied to those
events (:func:`flopaudit.reference.pricing.predict`), must equal what the
backend's adapter reports. Where it cannot (yet), the backend's descriptor lists
the case in :attr:`~flopaudit.adapters.Backend.known_divergences` with its
reason; such cases are strict xfails, so a divergence that disappears must be
removed from the descriptor. The backend's count is compared less the parts its
own output attributes to causes the reference cannot observe (``extra`` keys
starting with ``"cause: "``). A backend that does not apply to a case (status
``not applicable``: inputs it cannot take) or counts no MACs has nothing to
predict there; its parameter count is compared with the prediction all the
same.
"""

from __future__ import annotations

import importlib
from functools import cache

import pytest

from flopaudit.adapters import backends, get_adapter, get_backend
from flopaudit.passes import Pass
from flopaudit.records import DECLARED_CAUSE, CountResult, Status
from flopaudit.reports.explain import conditional_causes
from flopaudit.zoo import all_cases, get_case

FAST_CASES = [c.id for c in all_cases() if "hard" in c.tags] + ["resnet18", "mobilenet_v2"]
SLOW_CASES = ["resnet50", "vit_b_16", "convnext_tiny", "efficientnet_b0", "swin_t", "inception_v3"]
BACKENDS = [name for name, backend in backends().items() if backend.ruleset is not None and backend.counts("inference")]
TRAIN_BACKENDS = [name for name, backend in backends().items() if backend.ruleset is not None and backend.counts("train")]
#: A training step with an optimizer step. Hard cases that cannot train: a custom op without a gradient formula.
STEP = Pass("train", optimizer="adamw")
TRAIN_CASES = [c.id for c in all_cases() if "hard" in c.tags and c.id != "custom-torch-library-op"]
TRAIN_SLOW_CASES = ["resnet18", "mobilenet_v2", "hf-llama-tiny", "vit_b_16"]


@cache
def _reference(case_id: str) -> CountResult:
    model, inputs = get_case(case_id).instantiate()
    return get_adapter("reference").count(model, inputs, model_name=case_id)


def _pairs(case_ids: list[str]) -> list[object]:
    """Every (case, backend) pair; the backend's known divergences are strict expected failures."""
    pairs = []
    for case_id in case_ids:
        for backend in BACKENDS:
            reason = get_backend(backend).known_divergences.get(case_id)
            marks = pytest.mark.xfail(strict=True, reason=reason) if reason else ()
            pairs.append(pytest.param(case_id, backend, marks=marks, id=f"{case_id}-{backend}"))
    return pairs


@cache
def _reference_train(case_id: str) -> CountResult:
    model, inputs = get_case(case_id).instantiate()
    return get_adapter("reference").count(model, inputs, model_name=case_id, pass_=STEP)


def test_known_divergences_name_zoo_cases() -> None:
    cases = {c.id for c in all_cases()}
    for backend in BACKENDS:
        assert set(get_backend(backend).known_divergences) <= cases, backend


def _check(case_id: str, backend: str) -> None:
    try:
        importlib.import_module(get_backend(backend).ruleset or "")
    except (ModuleNotFoundError, ValueError):
        pytest.fail(f"no ruleset module for backend {backend!r}")
    model, inputs = get_case(case_id).instantiate()
    actual = get_adapter(backend).count(model, inputs, model_name=case_id)
    if actual.status is Status.NOT_APPLICABLE:
        pytest.skip(f"{backend} does not apply to {case_id}: {actual.error}")
    assert actual.status is Status.OK, f"{backend} failed on {case_id}: {actual.error}"
    ref = _reference(case_id)
    assert ref.status is Status.OK, ref.error
    prediction = ref.prediction(backend)
    assert prediction is not None, f"reference has no prediction for {backend}"
    param_causes = "\n".join(f"  {c.kind}: {c.rule}: {c.macs:+d}" for c in prediction.param_contributions)
    assert prediction.params == actual.params, (
        f"{backend} on {case_id}: backend {actual.params} parameters, ruleset predicts {prediction.params} "
        f"(reference {ref.params})\n{param_causes}"
    )
    if actual.macs is None:
        return  # counts no MACs: its parameters were all there was to predict
    causes = "\n".join(f"  {c.kind}: {c.rule}: {c.macs:+d}" for c in prediction.contributions)
    declared = sum(v for k, v in actual.extra if k.startswith(DECLARED_CAUSE))
    declared += sum(c.macs for c in conditional_causes(actual, actual.macs - declared - prediction.macs))
    assert prediction.macs == actual.macs - declared, (
        f"{backend} on {case_id}: backend {actual.macs}, ruleset predicts {prediction.macs} "
        f"(canonical {ref.macs})\n{causes}"
    )


@pytest.mark.parametrize("case_id, backend", _pairs(FAST_CASES))
def test_ruleset_predicts_backend(case_id: str, backend: str) -> None:
    _check(case_id, backend)


@pytest.mark.slow
@pytest.mark.parametrize("case_id, backend", _pairs(SLOW_CASES))
def test_ruleset_predicts_backend_slow(case_id: str, backend: str) -> None:
    _check(case_id, backend)


@pytest.mark.parametrize("case_id", TRAIN_CASES)
def test_ruleset_predicts_training_backends(case_id: str) -> None:
    """A training step: each backend that counts one is predicted exactly by its ruleset; a rule of
    thumb that does not apply to the model (no token ids, no config) has no prediction; a backend's
    declared crash (its known divergence on the case) has nothing to predict."""
    _check_train(case_id)


@pytest.mark.slow
@pytest.mark.parametrize("case_id", TRAIN_SLOW_CASES)
def test_ruleset_predicts_training_backends_slow(case_id: str) -> None:
    _check_train(case_id)


def _check_train(case_id: str) -> None:
    ref = _reference_train(case_id)
    assert ref.status is Status.OK, ref.error
    model, inputs = get_case(case_id).instantiate()
    for backend in TRAIN_BACKENDS:
        actual = get_adapter(backend).count(model, inputs, model_name=case_id, pass_=STEP)
        prediction = ref.prediction(backend)
        if actual.status is Status.NOT_APPLICABLE:
            assert prediction is None, f"{backend} on {case_id}: not applicable, yet predicted"
            continue
        if actual.status is Status.ERROR and case_id in get_backend(backend).known_divergences:
            continue  # a crash declared on the descriptor (held strictly by the forward-pass test)
        assert actual.status is Status.OK, f"{backend} failed on {case_id}: {actual.error}"
        assert prediction is not None, f"reference has no prediction for {backend}"
        causes = "\n".join(f"  {c.kind}: {c.rule}: {c.macs:+d}" for c in prediction.contributions)
        assert prediction.macs == actual.macs, (
            f"{backend} on {case_id} (training step): backend {actual.macs}, ruleset predicts {prediction.macs} "
            f"(canonical {ref.macs})\n{causes}")
        assert not any("not explained" in c.rule for c in prediction.contributions), causes
