"""``torch.utils.flop_counter.FlopCounterMode`` as a ruleset.

FlopCounterMode is a ``TorchDispatchMode`` like the reference's engine: it
sees the same aten ops (with autograd on, as the adapter runs it, so the
ruleset reads the recording made with autograd on) and prices an op only if
its overload packet is in ``torch/utils/flop_counter.py``'s ``flop_registry``,
as ``2 * MACs`` (``mm_flop``, ``addmm_flop``, ``bmm_flop``, ``baddbmm_flop``,
``conv_flop`` with transposed convolutions by input size, ``sdpa_flop`` for
the CUDA attention kernels...). The rules are built from that registry at
import time, so they follow the installed torch. The adapter halves the FLOPs
to MACs; every formula is even, so the halving is exact.

Otherwise the same view as the ``torchvision`` ruleset (``meta['_ops']`` was
made by a counter of this family), with these differences:

* ops without a formula count 0: the CPU attention kernel
  ``_scaled_dot_product_flash_attention_for_cpu`` (SDPA, and the attention of
  ``nn.MultiheadAttention`` / ``nn.TransformerEncoderLayer`` paths that use
  it), the CPU LSTM kernel ``mkldnn_rnn_layer``, ``mv``, ``dot``,
  ``addbmm``... Nothing else is counted (no bias, norms, activations).
* a ``torch.library`` custom op without a formula is opaque to it (its
  kernel runs outside the mode): the ops the reference traced inside count 0.

In a training step it counts the backward's operators the same way:
``mm``/``bmm``/``addmm`` gradients as themselves, ``convolution_backward``
by ``conv_backward_flop``, which prices the weight gradient as an ungrouped
convolution (``x.shape[1]`` input channels, not ``Cin / groups``: ``groups``
times the reference's MACs), the CUDA attention kernels' gradients with the
scores recomputed (as the reference); the CPU attention kernel's gradient,
the CPU LSTM's, norms, activations and the optimizer's elementwise
operators count 0.

# NB: the variable-length flash/efficient kernels (``cu_seqlens``) are priced
# by torch from the sequence lengths' values; the reference only has shapes
# and uses an upper bound there (CUDA only).
"""

from __future__ import annotations

from torch.utils.flop_counter import flop_registry

from flopaudit.records import CauseKind
from flopaudit.reference.events import OpEvent
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import (
    QUANTIZED_RNN_OPS,
    R_SPARSE_AS_DENSE,
    EventRule,
    Ruleset,
    composite_product_rules,
    event_counter,
    numel,
    register_ruleset,
)

#: Overload packets FlopCounterMode has a formula for (``"aten.mm"``...), from torch itself.
FORMULA_OPS: tuple[str, ...] = tuple(sorted(str(op) for op in flop_registry))



@event_counter("torch_flop_counter.conv_backward")
def conv_backward(e: OpEvent) -> int:
    """``conv_backward_flop``: 2 x the forward's MACs for the input gradient, 2 x ``groups``
    x the forward's MACs for the weight gradient (priced as if ungrouped), no bias."""
    grad_out, x, w = e.input_shapes[:3]
    forward = (numel(x) if e.arg("transposed", False) else numel(grad_out)) * numel(w[1:])
    grad_input, grad_weight = (tuple(e.arg("output_mask", (True, True, True))) + (True, True))[:2]
    groups = int(e.arg("groups", 1) or 1)
    return 2 * forward * (int(bool(grad_input)) + groups * int(bool(grad_weight)))


TORCH_FLOP_COUNTER = Ruleset(
    name="torch-flop-counter",
    unit="FLOP",
    description="torch.utils.flop_counter.FlopCounterMode: 2 x MACs of the aten ops in its flop_registry "
    "(mm/addmm/bmm/baddbmm, convolution, CUDA SDPA kernels), bias excluded; every other op 0.",
    event_rules=(
        EventRule("zero", traced=True, reason="torch.library custom op without a flop formula (opaque)",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("torch_flop_counter.conv_backward", op="aten.convolution_backward",
                  reason="convolution gradients: 2 x MACs, the weight gradient priced as if ungrouped "
                  "(groups x its MACs), bias gradient excluded"),
        *(EventRule("2*dense_product", op=op, sparse=True, reason=R_SPARSE_AS_DENSE)
          for op in FORMULA_OPS if op in ("aten.mm", "aten.addmm", "aten.bmm")),
        *(EventRule("2*macs", op=op, reason="2 x MACs (bias excluded)") for op in FORMULA_OPS),
        *composite_product_rules("decomposed into"),
        EventRule("zero", category=Category.ATTENTION,
                  reason="SDPA CPU kernel has no formula (scaled_dot_product_attention counted 0)",
                  kind=CauseKind.UNSUPPORTED),
        *(EventRule("zero", op=op, reason="dynamically quantized LSTM/GRU kernels (aten::quantized_lstm/gru) have "
                    "no formula", kind=CauseKind.UNSUPPORTED) for op in QUANTIZED_RNN_OPS),
        EventRule("zero", category=Category.RNN, reason="LSTM CPU kernel (mkldnn_rnn_layer) has no formula",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", family="linalg", reason="torch.linalg factorisations and solves have no formula",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", family="quantized", reason="int8 kernels (torch.ao quantized::*) have no formula",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.MATMUL,
                  reason="no formula for this product (mv, dot, addbmm, torch._grouped_mm, torch.sparse.mm...)",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.CONV, reason="no formula for this convolution kernel",
                  kind=CauseKind.UNSUPPORTED),
    ),
    default="zero",
    grad_enabled=True,
)
register_ruleset(TORCH_FLOP_COUNTER)
