"""Graphs exported with ``torch.export``: counted in the mode they were exported in, and the
``torch.ops.aten`` operators their code calls priced as the Python calls a model's source makes."""

from __future__ import annotations

import pytest
from torch import nn

from flopaudit.adapters import get_adapter
from flopaudit.modes import FIXED_MODE_NOTE, set_mode
from flopaudit.reports import build_report
from flopaudit.run import run_audit
from flopaudit.zoo import get_case
from flopaudit.zoo.hard.structure import _SmallConvNet, exported_program


def test_an_exported_module_keeps_its_mode() -> None:
    model = exported_program()
    with pytest.raises(NotImplementedError):
        model.eval()  # what torch.export does
    assert set_mode(model, False) is False
    assert set_mode(nn.Linear(2, 2), False) is True


def test_an_exported_module_is_audited_in_the_mode_it_has() -> None:
    """Given as a model to count in eval mode (as every `module:function` model), it is counted as it
    is, with a note; every cell that counts is explained by a named cause."""
    case = get_case("exported-program")
    report = build_report(run_audit([case], isolate=False, mode="eval"))
    ref = report.run.result(case.id, "reference")
    assert ref is not None and ref.ok, ref
    assert ref.macs == case.expected_macs
    assert FIXED_MODE_NOTE in ref.warnings
    assert [c.backend for c in report.cells if c.status == "ok" and c.classification == "unexplained"] == []


@pytest.mark.parametrize("backend", ["fvcore", "torch-profiler", "torchprofile"])
def test_aten_operator_calls_are_priced_as_the_python_calls(backend: str) -> None:
    """The exported graph calls torch.ops.aten.conv2d/linear/matmul/adaptive_avg_pool2d where the
    model's source calls F.conv2d, F.linear, torch.matmul and F.adaptive_avg_pool2d: a JIT trace and
    the profiler see the same operators, and the ruleset predicts the backend exactly."""
    model, inputs = get_case("exported-program").instantiate()
    actual = get_adapter(backend).count(model, inputs)
    prediction = get_adapter("reference").count(model, inputs).prediction(backend)
    assert actual.ok, actual.error
    assert prediction is not None and prediction.macs == actual.macs
    source = get_adapter(backend).count(_SmallConvNet().eval(), inputs)  # the network before export
    assert source.macs == actual.macs
