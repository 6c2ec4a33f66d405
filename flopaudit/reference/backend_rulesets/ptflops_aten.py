"""The ``ptflops-aten`` ruleset: predicts ptflops' aten engine (ptflops 0.7.5).

ptflops' ``FlopCounterMode`` (``ptflops/aten_engine.py``) is a
``TorchDispatchMode`` that prices only the operators of ``ATEN_OPS_MAPPING``
(``ptflops/aten_ops.py``): ``aten.mm``/``aten.matmul`` (``matmul_flop``),
``aten.addmm`` (``addmm_flop``), ``aten.bmm`` (``bmm_flop``) and
``aten.convolution``/``aten._convolution`` (``conv_flop``). Every other
operator counts 0: norms, activations, pools, softmax, ``aten.baddbmm``,
``aten.mv``, fused attention (SDPA) and CPU LSTM kernels among them. Counts
are whole-batch MACs and the adapter reports them as they are.

The reference sees the same aten operators, so each counter below is the
ptflops formula applied to the recorded event. ptflops runs the forward with
autograd on after ``model.eval()``, so the ruleset sets ``grad_enabled`` and
``eval_mode`` (a train-mode model is recorded for it in eval mode).
A formula-less ``torch.library`` custom op is one opaque operator to
ptflops: the operators its Python kernel dispatches (which the reference
traces) count 0. So is a composite operator that reaches the mode whole
(inside ``torch.inference_mode``, where autograd does not decompose
``aten.conv2d`` or ``aten.layer_norm``): ptflops runs it without looking
inside, the reference decomposes it (``OpEvent.decomposed_from``).
"""

from __future__ import annotations

from flopaudit.records import CauseKind
from flopaudit.reference.engine import OpEvent
from flopaudit.reference.rulesets import EventRule, Ruleset, event_counter, register_ruleset
from flopaudit.reference.rulesets import numel as _numel


@event_counter("ptflops_aten.matmul")
def ptflops_aten_matmul(e: OpEvent) -> int:
    """``matmul_flop`` (``aten.mm``, ``aten.matmul``): ``prod(a.shape) * b.shape[-1]``."""
    if len(e.input_shapes) < 2 or not e.input_shapes[1]:
        return 0
    return _numel(e.input_shapes[0]) * e.input_shapes[1][-1]


@event_counter("ptflops_aten.addmm")
def ptflops_aten_addmm(e: OpEvent) -> int:
    """``addmm_flop``: ``M*K*N`` for ``mat1 (M, K) @ mat2 (K, N)`` plus ``M*N``
    for the added ``input`` (the bias of ``nn.Linear``), which ``aten.addmm``
    always has."""
    if len(e.input_shapes) < 3:
        return 0
    (m, k), n = e.input_shapes[1], e.input_shapes[2][1]
    return m * k * n + m * n


@event_counter("ptflops_aten.bmm")
def ptflops_aten_bmm(e: OpEvent) -> int:
    """``bmm_flop``: ``n*c*t*d`` for ``(n, c, t) @ (n, t, d)``."""
    if len(e.input_shapes) < 2:
        return 0
    n, c, t = e.input_shapes[0]
    return n * c * t * e.input_shapes[1][-1]


@event_counter("ptflops_aten.conv")
def ptflops_aten_conv(e: OpEvent) -> int:
    """``conv_flop`` / ``conv_flop_count``: ``N * prod(w.shape) * prod(spatial)``
    with the output's spatial size (the input's for a transposed conv, which
    equals the canonical MACs), plus ``N * Cout * prod(out spatial)`` when a
    bias is passed."""
    x, w = e.input_shapes[0], e.input_shapes[1]
    out = e.output_shapes[0]
    transposed = bool(e.arg("transposed", False))
    macs = x[0] * _numel(w) * _numel((x if transposed else out)[2:])
    if len(e.input_shapes) >= 3:  # a bias tensor was passed
        macs += x[0] * out[1] * _numel(out[2:])
    return macs


EVENT_RULES: tuple[EventRule, ...] = (
    EventRule("zero", traced=True, kind=CauseKind.UNSUPPORTED,
              reason="custom op without a ptflops rule: one opaque operator, its kernel's ops unseen"),
    EventRule("zero", decomposed=True, kind=CauseKind.UNSUPPORTED,
              reason="an operator its dispatch mode receives whole, without a handler (inside torch.inference_mode "
              "autograd does not decompose aten.conv2d, aten.layer_norm...): what it runs counts 0"),
    EventRule("ptflops_aten.matmul", op="aten.mm", reason="mm priced prod(a.shape)·b[-1]"),
    EventRule("ptflops_aten.matmul", op="aten.matmul", reason="matmul priced prod(a.shape)·b[-1]"),
    EventRule("ptflops_aten.addmm", op="aten.addmm", reason="counts Linear/addmm bias (one per output element)"),
    EventRule("ptflops_aten.bmm", op="aten.bmm", reason="bmm priced n·c·t·d"),
    EventRule("ptflops_aten.conv", op="aten.convolution", reason="counts conv bias (one per output element)"),
    EventRule("ptflops_aten.conv", op="aten._convolution", reason="counts conv bias (one per output element)"),
)

PTFLOPS_ATEN = register_ruleset(Ruleset(
    name="ptflops-aten",
    unit="MAC",
    description="ptflops aten engine: aten.mm/matmul, addmm (bias counted), bmm and convolution (bias counted), "
    "whole batch; every other aten operator counts 0.",
    event_rules=EVENT_RULES,
    default="zero",
    grad_enabled=True,
    module_hooks="children",  # the engine's scope hooks, on the root's children
    params="trainable",
    eval_mode=True,
))


__all__ = ["EVENT_RULES", "PTFLOPS_ATEN"]
