"""One conformance suite over every backend (array-api-tests style).

Each check runs for every adapter; where a backend legitimately differs, the
difference is listed in ``EXPECTED_DIVERGENCES`` with its reason and the
check runs as a strict expected failure (a divergence that disappears fails).
"""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
from conftest import KwargsLinear, SmallConvNet, TwoInputLinear
from torch import nn

from flopaudit.adapters import backend_names, get_adapter, get_backend
from flopaudit.inputs import ModelInputs
from flopaudit.isolation import fingerprint
from flopaudit.passes import Pass
from flopaudit.records import Status, Unit

#: (backend, check) -> why this backend differs from the general rule.
_IMAGES_ONLY = "torchstat.stat takes one (C, H, W) image size: a model with other inputs is not applicable"
_NO_MACS = "counts parameters only: no MACs to compare"
_KEYWORDS = "takes positional inputs only: a model with keyword inputs is not applicable"
EXPECTED_DIVERGENCES: dict[tuple[str, str], str] = {
    ("ptflops-pytorch", "raw_is_macs_times_unit"): "divides module-hook counts by the batch size (per-sample)",
}

#: (backend, check) -> why this backend fails the general check (a strict expected failure).
EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    **{("torchstat", check): _IMAGES_ONLY for check in ("two_positional_inputs", "keyword_inputs",
                                                         "raw_is_macs_times_unit", "result_records_versions")},
    **{(backend, check): _NO_MACS for backend in ("torchsummary", "pytorch-model-summary")
       for check in ("two_positional_inputs", "raw_is_macs_times_unit")},
    ("torchsummary", "keyword_inputs"): _KEYWORDS,
    ("torchsummary", "result_records_versions"): "fails on a bare nn.Linear: it never hooks the root module",
    ("pytorch-model-summary", "keyword_inputs"): _KEYWORDS,
    ("torch-profiler", "two_positional_inputs"): "prices aten::add (the sum of the two outputs) at 1 FLOP per element",
    ("torch-profiler", "keyword_inputs"): "prices aten::mul (x * scale) at 1 FLOP per element",
    ("torchprofile", "keyword_inputs"): "prices aten::mul (x * scale) at 1 MAC per element",
    **{("calflops", check): "a training step is its forward x 3 (include_backPropagation): it assumes an input "
       "gradient the first layer does not need" for check in ("train_two_positional_inputs", "train_keyword_inputs")},
}


def _backends(check: str, among: list[str] | None = None) -> list[object]:
    """Every backend that counts a forward pass (or those ``among``), for ``check``; a listed failure is a
    strict expected failure."""
    return [pytest.param(b, marks=pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[(b, check)]))
            if (b, check) in EXPECTED_FAILURES else b for b in (INFERENCE if among is None else among)]


BATCH = 4
INFERENCE = [b for b in backend_names() if get_backend(b).counts("inference")]
TRAIN = [b for b in backend_names() if get_backend(b).counts("train")]
COUNTERS_OF_TRAINING = [b for b in TRAIN if not get_backend(b).granularity.value == "rule of thumb"]
STEP = Pass("train", optimizer="adamw")


def _adapter_or_skip(name: str):  # noqa: ANN202
    adapter = get_adapter(name)
    if not adapter.available():
        pytest.skip(f"{adapter.distribution} not installed")
    return adapter


@pytest.mark.parametrize("backend", _backends("two_positional_inputs"))
def test_two_positional_inputs(backend: str) -> None:
    r = _adapter_or_skip(backend).count(TwoInputLinear(), (torch.randn(BATCH, 16), torch.randn(BATCH, 8)))
    assert r.status is Status.OK, r.error
    assert r.macs == BATCH * 16 * 32 + BATCH * 8 * 32


@pytest.mark.parametrize("backend", _backends("keyword_inputs"))
def test_keyword_inputs(backend: str) -> None:
    inputs = ModelInputs((torch.randn(BATCH, 16),), {"scale": torch.randn(BATCH, 16)})
    r = _adapter_or_skip(backend).count(KwargsLinear(), inputs)
    assert r.status is Status.OK, r.error
    assert r.macs == BATCH * 16 * 32


@pytest.mark.parametrize("backend", _backends("raw_is_macs_times_unit"))
def test_raw_is_macs_times_unit(backend: str) -> None:
    """The declared unit is what the backend really returns (bias-free Linear)."""
    adapter = _adapter_or_skip(backend)
    r = adapter.count(nn.Linear(16, 32, bias=False), torch.randn(BATCH, 16))
    assert r.status is Status.OK, r.error
    assert r.macs == BATCH * 16 * 32
    per_unit = 2 if adapter.unit is Unit.FLOP else 1
    if (backend, "raw_is_macs_times_unit") in EXPECTED_DIVERGENCES:
        assert r.raw_total != r.macs * per_unit
        assert r.raw_total == r.macs * per_unit // BATCH
    else:
        assert r.raw_total == r.macs * per_unit


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("backend", INFERENCE)
def test_user_model_is_unchanged(backend: str, mode: str) -> None:
    model = SmallConvNet().train(mode == "train")
    before = fingerprint(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    r = _adapter_or_skip(backend).count(model, torch.randn(2, 3, 8, 8))
    assert r.status is Status.OK, r.error
    assert fingerprint(model) == before
    assert model.training is (mode == "train")
    assert all(m.training is (mode == "train") for m in model.modules())
    after = model.state_dict()
    assert list(after) == list(state)
    assert all(torch.equal(after[k], state[k]) for k in state)
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert {p.device.type for p in model.parameters()} == {"cpu"}


@pytest.mark.parametrize("backend", _backends("result_records_versions"))
def test_result_records_versions_and_options(backend: str) -> None:
    adapter = _adapter_or_skip(backend)
    r = adapter.count(nn.Linear(4, 4), torch.randn(2, 4), model_name="lin")
    assert r.backend == backend and r.model == "lin"
    assert r.backend_version == importlib.metadata.version(adapter.distribution)
    assert r.torch_version == torch.__version__
    assert r.unit is adapter.unit
    assert dict(r.options) == {k: repr(v) for k, v in adapter.options().items()}
    if get_backend(backend).counts_macs:
        assert isinstance(r.macs, int)
    else:
        assert r.macs is None and isinstance(r.params, int)
    assert all(isinstance(v, int) for _, v in r.per_module + r.per_op)


@pytest.mark.parametrize("backend", INFERENCE)
def test_backend_is_quiet(backend: str, capfd: pytest.CaptureFixture[str]) -> None:
    _adapter_or_skip(backend).count(SmallConvNet(), torch.randn(1, 3, 8, 8))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


@pytest.mark.parametrize("backend", [b for b in backend_names() if not get_backend(b).counts_macs])
def test_params_only_backend_reads_no_macs(backend: str) -> None:
    """A backend that counts no operations reports parameters and no MACs (not 0)."""
    r = _adapter_or_skip(backend).count(SmallConvNet(), torch.randn(2, 3, 8, 8))
    assert r.status is Status.OK, r.error
    assert r.macs is None and r.raw_total is None
    # conv 8x3x3x3 + 8, BN 8 + 8, fc 8 x 10 + 10
    assert r.params == (8 * 27 + 8) + 16 + (80 + 10)


# -- a training step (--pass train) -------------------------------------------------


def test_a_backend_asked_for_another_pass_is_not_applicable() -> None:
    for backend in backend_names():
        counts_train = get_backend(backend).counts("train")
        r = get_adapter(backend).count(nn.Linear(4, 4), torch.randn(2, 4), pass_=STEP)
        if not counts_train:
            assert r.status is Status.NOT_APPLICABLE and "forward pass only" in (r.error or ""), backend
        assert dict(r.options)["pass"] == "'train'" and dict(r.options)["optimizer"] == "'adamw'"


@pytest.mark.parametrize("backend", _backends("train_two_positional_inputs", COUNTERS_OF_TRAINING))
def test_training_step_of_two_positional_inputs(backend: str) -> None:
    """TwoInputLinear, inputs needing no gradient: each Linear's forward and its weight gradient
    (no input gradient): 2 * (4*16*32 + 4*8*32) MACs; the optimizer adds no MACs."""
    r = _adapter_or_skip(backend).count(TwoInputLinear(), (torch.randn(BATCH, 16), torch.randn(BATCH, 8)),
                                        pass_=STEP)
    assert r.status is Status.OK, r.error
    assert r.macs == 2 * (BATCH * 16 * 32 + BATCH * 8 * 32)
    assert [p.phase for p in r.phases][:1] == ["forward"] and sum(p.macs for p in r.phases) == r.macs


@pytest.mark.parametrize("backend", _backends("train_keyword_inputs", COUNTERS_OF_TRAINING))
def test_training_step_with_keyword_inputs(backend: str) -> None:
    inputs = ModelInputs((torch.randn(BATCH, 16),), {"scale": torch.randn(BATCH, 16)})
    r = _adapter_or_skip(backend).count(KwargsLinear(), inputs, pass_=STEP)
    assert r.status is Status.OK, r.error
    assert r.macs == 2 * BATCH * 16 * 32  # forward and the weight gradient


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("backend", TRAIN)
def test_user_model_is_unchanged_by_a_training_step(backend: str, mode: str) -> None:
    model = SmallConvNet().train(mode == "train")
    before = fingerprint(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    r = _adapter_or_skip(backend).count(model, torch.randn(2, 3, 8, 8), pass_=STEP)
    assert r.status in (Status.OK, Status.NOT_APPLICABLE), r.error
    assert fingerprint(model) == before
    assert model.training is (mode == "train")
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
