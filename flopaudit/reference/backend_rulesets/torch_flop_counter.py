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

# NB: the variable-length flash/efficient kernels (``cu_seqlens``) are priced
# by torch from the sequence lengths' values; the reference only has shapes
# and uses an upper bound there (CUDA only).
"""

from __future__ import annotations

from torch.utils.flop_counter import flop_registry

from flopaudit.records import CauseKind
from flopaudit.reference.registry import Category
from flopaudit.reference.rulesets import EventRule, Ruleset, register_ruleset

#: Overload packets FlopCounterMode has a formula for (``"aten.mm"``...), from torch itself.
FORMULA_OPS: tuple[str, ...] = tuple(sorted(str(op) for op in flop_registry))

TORCH_FLOP_COUNTER = Ruleset(
    name="torch-flop-counter",
    unit="FLOP",
    description="torch.utils.flop_counter.FlopCounterMode: 2 x MACs of the aten ops in its flop_registry "
    "(mm/addmm/bmm/baddbmm, convolution, CUDA SDPA kernels), bias excluded; every other op 0.",
    event_rules=(
        EventRule("zero", traced=True, reason="torch.library custom op without a flop formula (opaque)",
                  kind=CauseKind.UNSUPPORTED),
        *(EventRule("2*macs", op=op, reason="2 x MACs (bias excluded)") for op in FORMULA_OPS),
        EventRule("zero", category=Category.ATTENTION,
                  reason="SDPA CPU kernel has no formula (scaled_dot_product_attention counted 0)",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.RNN, reason="LSTM CPU kernel (mkldnn_rnn_layer) has no formula",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.MATMUL, reason="no formula for this product (mv, dot, addbmm...)",
                  kind=CauseKind.UNSUPPORTED),
        EventRule("zero", category=Category.CONV, reason="no formula for this convolution kernel",
                  kind=CauseKind.UNSUPPORTED),
    ),
    default="zero",
    grad_enabled=True,
)
register_ruleset(TORCH_FLOP_COUNTER)
