"""The diff report on real counts: every difference explained to named causes.

These run the real backends (in-process) on zoo cases and check the report's
explanations, not the backends' numbers: each cell's causes plus residual add
up to its difference, nothing is unexplained, and the causes are the ones the
counters' documentation and source name (fvcore has no handle for aten::lstm,
thop prices ConvTranspose as a direct conv on its output, module-hook counters
cannot see functional matmuls, ...).
"""

from __future__ import annotations

from functools import cache

import pytest

from flopaudit.commands.explain import format_explanation
from flopaudit.reports import build_report
from flopaudit.reports.model import CellExplanation, Report
from flopaudit.run import default_backends, run_audit
from flopaudit.zoo import get_case

HARD = ("lstm-bidir-2layer", "convtranspose-s2", "mha-batch-first", "attention-matmul", "attention-sdpa")


@cache
def _report(*case_ids: str) -> Report:
    run = run_audit([get_case(c) for c in case_ids], isolate=False)
    return build_report(run)


def _cell(report: Report, model: str, backend: str) -> CellExplanation:
    cell = report.cell(model, backend)
    assert cell is not None and cell.status == "ok", cell
    return cell


def _kinds(cell: CellExplanation) -> set[str]:
    return {c.kind for c in cell.causes}


def test_every_hard_cell_is_explained_exactly() -> None:
    report = _report(*HARD)
    # every backend that counts a forward pass, but the reference
    assert len(report.cells) == len(HARD) * (len(default_backends("inference")) - 1)
    for cell in report.cells:
        assert cell.classification != "unexplained", format_explanation(cell)
        assert cell.residual == 0, format_explanation(cell)
        if cell.status == "ok" and cell.backend_macs is not None:
            assert cell.difference == sum(c.macs for c in cell.causes), format_explanation(cell)
        if cell.params is not None:
            p = cell.params
            assert p.residual == 0 and p.classification != "unexplained", format_explanation(cell)
            assert p.difference == sum(c.macs for c in p.causes), format_explanation(cell)


@pytest.mark.parametrize("backend", ["fvcore", "torch-flop-counter", "ptflops-aten"])
def test_lstm_is_unsupported_where_the_backend_has_no_formula(backend: str) -> None:
    cell = _cell(_report(*HARD), "lstm-bidir-2layer", backend)
    assert cell.backend_macs == 0 and cell.classification == "unsupported"
    # T=5 x B=2 x 2 directions x 4 gates x H=16 x (I + H); layer 0 reads I=8, layer 1 reads 2H=32
    lstm = 5 * 2 * 2 * 4 * 16 * ((8 + 16) + (32 + 16))
    assert cell.reference_macs == lstm and cell.difference == -lstm
    assert cell.causes[0].layers == (("rnn", -lstm),)


@pytest.mark.parametrize("backend", ["thop", "torchinfo"])
def test_conv_transpose_priced_by_output_size(backend: str) -> None:
    cell = _cell(_report(*HARD), "convtranspose-s2", backend)
    assert cell.classification == "rule"
    assert any("ConvTranspose priced by output size" in c.rule for c in cell.causes)
    assert round(cell.ratio or 0) == 4  # stride 2 in two dims


def test_multihead_attention_zero_is_a_missing_rule_in_hook_counters() -> None:
    report = _report(*HARD)
    for backend in ("thop", "torchinfo"):
        cell = _cell(report, "mha-batch-first", backend)
        assert cell.backend_macs == 0 and cell.classification == "unsupported"
        assert "MultiheadAttention" in cell.causes[0].rule
    assert _cell(report, "mha-batch-first", "fvcore").classification == "agrees"


def test_functional_attention_is_missed_by_module_hooks() -> None:
    report = _report(*HARD)
    for model in ("attention-matmul", "attention-sdpa"):
        for backend in ("thop", "ptflops-pytorch"):
            cell = _cell(report, model, backend)
            assert "missed-functional" in _kinds(cell)
            missed = next(c for c in cell.causes if c.kind == "missed-functional")
            # scores and weighted sum: 2 x N=2 x heads 4 x L=6 x L=6 x head width 4
            assert missed.macs == -(2 * 2 * 4 * 6 * 6 * 4)
    assert _cell(report, "attention-sdpa", "fvcore").classification == "unsupported"
    assert _cell(report, "attention-matmul", "fvcore").classification == "agrees"


def test_module_shared_by_two_parents_is_a_reused_module_cause() -> None:
    """thop hooks and sums per name (n x n copies), ptflops sums per name (n
    copies); counters that follow calls count each call once."""
    report = _report("module-shared-two-parents")
    call = 4 * 16 * 16  # one Linear(16, 16) call on (4, 16)
    bias = 4 * 16  # one bias add per output element of one call
    expected_excess = {"thop": (2 * 2 - 1) * 2 * call, "ptflops-pytorch": (2 - 1) * 2 * (call + bias)}
    for backend, excess in expected_excess.items():
        cell = _cell(report, "module-shared-two-parents", backend)
        assert cell.classification == "reused-module", format_explanation(cell)
        assert cell.residual == 0 and cell.difference == sum(c.macs for c in cell.causes)
        reused = [c for c in cell.causes if c.kind == "reused-module"]
        assert len(reused) == 1 and reused[0].macs == excess, format_explanation(cell)
        assert "b.shared" in dict(reused[0].layers)
    for backend in ("fvcore", "torch-flop-counter", "torchinfo", "ptflops-aten"):
        cell = _cell(report, "module-shared-two-parents", backend)
        assert "reused-module" not in _kinds(cell), format_explanation(cell)
        assert cell.residual == 0


def test_padding_skipped_by_the_nested_inference_path_is_a_named_cause() -> None:
    """Under no_grad nn.TransformerEncoder packs a padded batch into a nested
    tensor and computes only real tokens (the reference counts that); counters
    that run with autograd on compute the padding too, and their cells book
    the difference to that cause. thop's hooks see the nested path as well."""
    report = _report("transformer-encoder-padding-mask")
    padded = 2 * 2 * (2048 * 6 + 32 * 6 * 6)  # both sequences at full length 6, two layers
    for backend in ("fvcore", "torch-flop-counter", "ptflops-aten", "ptflops-pytorch"):
        cell = _cell(report, "transformer-encoder-padding-mask", backend)
        assert cell.residual == 0 and cell.difference == sum(c.macs for c in cell.causes), format_explanation(cell)
        path = [c for c in cell.causes if "autograd on" in c.rule]
        assert len(path) == 1 and path[0].macs == padded - cell.reference_macs, format_explanation(cell)
    thop = _cell(report, "transformer-encoder-padding-mask", "thop")
    assert thop.residual == 0 and not any("autograd" in c.rule or "hook on every" in c.rule for c in thop.causes)
    torchinfo = report.cell("transformer-encoder-padding-mask", "torchinfo")
    assert torchinfo is not None and torchinfo.classification == "error"


def test_the_branch_a_model_takes_under_a_trace_is_a_named_cause() -> None:
    """tracing-branch-warp builds its grid with F.affine_grid under a JIT trace and by multiply-adds
    otherwise: fvcore and torchprofile are predicted from the traced branch, its extra product
    (affine_grid_generator: 2 x 12 x 12 x 3 x 2 MACs) booked to that cause, and the note says who asked."""
    report = _report("tracing-branch-warp")
    grid = 2 * 12 * 12 * 3 * 2
    for backend in ("fvcore", "torchprofile"):
        cell = _cell(report, "tracing-branch-warp", backend)
        assert cell.residual == 0 and cell.classification != "unexplained", format_explanation(cell)
        branch = [c for c in cell.causes if "torch.jit.is_tracing()" in c.rule]
        assert len(branch) == 1 and branch[0].macs == grid, format_explanation(cell)
        assert any("flopaudit.zoo.hard.structure:forward" in n for n in cell.notes), cell.notes
    thop = _cell(report, "tracing-branch-warp", "thop")  # hooks, not a trace: the eager branch
    assert not any("is_tracing" in c.rule for c in thop.causes) and not any("is_tracing" in n for n in thop.notes)


def test_resnet50_spread_is_explained_to_named_rules() -> None:
    """4.089 / 4.112 / 4.132 / 4.134 G: the spread users see, each to exact rules."""
    report = _report("resnet50")
    published = {"reference": 4.089, "fvcore": 4.112, "ptflops-pytorch": 4.132, "thop": 4.134,
                 "torch-flop-counter": 4.089}
    for backend, giga in published.items():
        r = report.run.result("resnet50", backend)
        assert r is not None and round(r.macs / 1e9, 3) == giga, backend
    for backend in ("thop", "ptflops-pytorch", "fvcore", "torchinfo", "ptflops-aten"):
        cell = _cell(report, "resnet50", backend)
        assert cell.residual == 0 and cell.difference == sum(c.macs for c in cell.causes) != 0
        assert cell.classification == "rule", format_explanation(cell)
    assert any("BatchNorm" in c.rule for c in _cell(report, "resnet50", "thop").causes)
    assert any("ReLU" in c.rule for c in _cell(report, "resnet50", "ptflops-pytorch").causes)
    assert any("BatchNorm" in c.rule for c in _cell(report, "resnet50", "fvcore").causes)
    assert _cell(report, "resnet50", "torch-flop-counter").classification == "unit"


def test_explain_command_prints_causes(capsys: pytest.CaptureFixture[str]) -> None:
    from flopaudit.cli import main

    assert main(["explain", "convtranspose-s2", "--backend", "thop"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("convtranspose-s2 / thop: rule")
    assert "ConvTranspose priced by output size" in out and "residual" not in out


def test_a_custom_layer_no_hook_counter_prices_has_one_name_everywhere() -> None:
    """thop and ptflops have no hook for the class, torchinfo's catch-all finds
    no ``weight``/``bias`` in it: all three miss the same layer, under the
    same cause, as a leaf or as the whole model."""
    import torch

    from flopaudit.run import audit_model
    from tests.user_models import EinsumLayer, einsum_net

    batch = 4
    for model, einsum in ((einsum_net(), batch * 16 * 96), (EinsumLayer(16, 96), batch * 16 * 96)):
        report = build_report(audit_model(model, torch.randn(batch, 16), isolate=False,
                                          backends=("reference", "thop", "ptflops-pytorch", "torchinfo")))
        for backend in ("thop", "ptflops-pytorch", "torchinfo"):
            cell = _cell(report, "model", backend)
            assert cell.classification == "unsupported", format_explanation(cell)
            assert [(c.kind, c.rule, c.macs) for c in cell.causes] == [
                ("unsupported", "no rule for EinsumLayer modules", -einsum)], format_explanation(cell)
