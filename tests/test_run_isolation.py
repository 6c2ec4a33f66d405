"""A failing backend never aborts a run; no backend changes the user's model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from conftest import SmallConvNet
from fake_backends import FAKES, registered

from flopaudit.execution.work import count_one
from flopaudit.isolation import fingerprint
from flopaudit.records import Status
from flopaudit.run import run_audit
from flopaudit.zoo.case import ModelCase, tensor_inputs


@pytest.fixture()
def fake_backends() -> Iterator[None]:
    with registered(FAKES):
        yield


def test_raising_backend_becomes_error(fake_backends: None) -> None:
    r = count_one("fake-raise", SmallConvNet(), torch.randn(1, 3, 8, 8), model_name="m", timeout=30)
    assert r.status is Status.ERROR
    assert "backend exploded" in (r.error or "")
    assert r.backend == "fake-raise" and r.model == "m"


def test_raising_backend_inline_becomes_error(fake_backends: None) -> None:
    r = count_one("fake-raise", SmallConvNet(), torch.randn(1, 3, 8, 8), isolate=False)
    # the message, then the module whose code raised it (the fake backend's own)
    assert r.status is Status.ERROR and (r.error or "").startswith("RuntimeError: backend exploded (raised in ")


def test_hanging_backend_becomes_timeout(fake_backends: None) -> None:
    r = count_one("fake-hang", SmallConvNet(), torch.randn(1, 3, 8, 8), timeout=1.0)
    assert r.status is Status.TIMEOUT
    assert "1 s" in (r.error or "")


def test_crashing_backend_becomes_error(fake_backends: None) -> None:
    r = count_one("fake-crash", SmallConvNet(), torch.randn(1, 3, 8, 8), timeout=30)
    assert r.status is Status.ERROR
    assert "SIGSEGV" in (r.error or "")


def test_run_goes_on_after_failures(fake_backends: None) -> None:
    case = ModelCase("small", SmallConvNet, tensor_inputs(1, 3, 8, 8))
    broken = ModelCase("broken", lambda: (_ for _ in ()).throw(ValueError("cannot build")), tensor_inputs(1))
    run = run_audit([broken, case], ["fake-raise", "fake-hang", "fake-noisy"], timeout=2)
    statuses = {(r.model, r.backend): r.status for r in run.results}
    assert statuses == {
        ("broken", "fake-raise"): Status.ERROR,
        ("broken", "fake-hang"): Status.ERROR,
        ("broken", "fake-noisy"): Status.ERROR,
        ("small", "fake-raise"): Status.ERROR,
        ("small", "fake-hang"): Status.TIMEOUT,
        ("small", "fake-noisy"): Status.OK,
    }
    assert "cannot build" in (run.result("broken", "fake-raise").error or "")
    assert run.case("broken").error and run.case("small").forward_s is not None


@pytest.mark.parametrize("isolate", [True, False], ids=["forked", "inline"])
def test_mutating_backend_leaves_user_model_alone(fake_backends: None, isolate: bool,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    model = SmallConvNet().train()
    before = fingerprint(model)
    r = count_one("fake-noisy", model, torch.randn(2, 3, 8, 8), timeout=30, isolate=isolate)
    assert fingerprint(model) == before
    assert model.training
    out, err = capfd.readouterr()
    assert "NOISY" not in out + err
    assert r.status is Status.OK and r.macs == 7
    # what the backend did to its copy is reported, not hidden
    effects = " | ".join(r.side_effects)
    assert "left hooks on: <root>.forward_hooks" in effects
    assert "added state_dict keys: junk" in effects
    assert "changed train/eval mode of: <root>" in effects
    assert any("NOISY STDOUT" in w for w in r.warnings)
    assert any("noisy warning" in w for w in r.warnings)


def test_result_records_versions(fake_backends: None) -> None:
    r = count_one("fake-noisy", SmallConvNet(), torch.randn(2, 3, 8, 8), isolate=False)
    assert r.torch_version == torch.__version__
    assert r.backend_version  # flopaudit's own version for the fakes
    assert r.batch_size == 2


def test_fingerprint_reads_tensors_made_in_inference_mode() -> None:
    # torchstat stores each module's input and output shapes as buffers: inside a forward that runs
    # under torch.inference_mode they are inference tensors, which have no version counter
    from flopaudit.isolation import fingerprint_diff

    model = torch.nn.Linear(2, 2)
    with torch.inference_mode():
        model.register_buffer("output_shape", torch.tensor([1, 2]))
    before = fingerprint(model, exact=False)
    assert fingerprint_diff(before, fingerprint(model, exact=False)) == []
    assert fingerprint(model).tensor_digests == fingerprint(model).tensor_digests  # exact: by bytes
    with torch.inference_mode():
        model.register_buffer("output_shape", torch.tensor([1, 3]))  # replaced: another tensor
    assert fingerprint_diff(before, fingerprint(model, exact=False))
