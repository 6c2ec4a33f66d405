"""torchinfo's ``summary`` "Mult-Adds" (torchinfo 1.8.0) as a ruleset.

torchinfo never looks at the operators a module runs: its forward hooks
record each *called* module's output size, and ``LayerInfo.calculate_macs``
(``torchinfo/layer_info.py``) multiplies the module's parameter counts by a
slice of that output shape ``y``; ``ModelStatistics`` sums ``macs`` over
*leaf* layers only (``torchinfo/model_statistics.py``).

Which recording: torchinfo runs the forward under ``torch.no_grad()``
(``torchinfo/torchinfo.py`` ``forward_pass``) but with a forward hook on every
module, and ``nn.TransformerEncoderLayer`` refuses its fused eval path when
any of its modules has hooks, so its sub-layers are called; the ruleset
reads a recording made the same way (autograd off, ``module_hooks``).

Every leaf module call is priced by :func:`leaf_macs` (the operators inside
it are not counted again); the rules only differ by the reason they give the
report, per module family (:data:`FAMILIES`), with a catch-all for other
leaves. Everything outside leaf modules counts 0: functional ops in a
``forward`` (reported as missed functional ops) and the work of
``nn.MultiheadAttention``, a non-leaf module whose ``out_proj`` child is never
called (its own rule, so the report names it).
"""

from __future__ import annotations

import math
from typing import Sequence

from flopaudit.records import CauseKind
from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.rulesets import ModuleRule, Ruleset, module_counter, register_ruleset


def leaf_macs(class_name: str, params: Sequence[tuple[str, tuple[int, ...]]], out: Sequence[int]) -> int:
    """``LayerInfo.calculate_macs`` for one call: parameters named ``weight``
    or ``bias`` count ``numel * y[0] * prod(y[2:])`` in a module whose class
    name contains ``"Conv"`` (bias included; transposed convolutions priced
    by their *output* size) and ``numel * y[0]`` elsewhere (Linear: the middle
    dims of a 3-D input are ignored; norms: ``N * 2C``; Embedding: ``N * V *
    E``); other parameters whose name contains ``weight``/``bias`` (RNN
    ``weight_ih_l0``...) count ``numel * y[0] * y[1]``; parameter-free
    modules and other parameter names count 0. ``y`` is the output shape.
    """
    total = 0
    for name, shape in params:
        n = math.prod(shape)
        if name in ("weight", "bias"):
            if "Conv" in class_name:
                total += n * math.prod(list(out[:1]) + list(out[2:]))
            else:
                total += out[0] * n
        elif "weight" in name or "bias" in name:
            total += math.prod(out[:2]) * n
    return total


@module_counter("torchinfo.leaf")
def leaf(call: ModuleCall) -> int:
    """torchinfo's Mult-Adds of one leaf module call (:func:`leaf_macs`).

    ``y`` is the shape of the first tensor of the output, as torchinfo's
    ``calculate_size`` takes it for a tensor, a tuple/list (its first
    element) or a ``PackedSequence`` (its ``data``).
    # NB: for a dict output torchinfo takes the *last* value; pruned weights
    # (``weight_orig`` + mask) are counted by the mask's ones there; a module
    # whose output holds no tensor makes torchinfo fail. None of these is
    # reproduced here (the record has only the flattened output shapes).
    """
    if not call.param_shapes:
        return 0
    out = call.output_shapes[0] if call.output_shapes else ()
    if not out:
        return 0
    return leaf_macs(call.module_type, call.param_shapes, out)


#: Reasons by module family; every family is priced by the same counter
#: (:func:`leaf`), the reason only names the effect in the report.
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Conv = parameters x output positions: bias counted", ("Conv1d", "Conv2d", "Conv3d")),
    ("ConvTranspose priced by output size as if direct, bias counted",
     ("ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d")),
    ("Linear = y.shape[0] x parameters: bias counted, middle dims of N-d input ignored",
     ("Linear", "NonDynamicallyQuantizableLinear", "Bilinear")),
    ("norms = y.shape[0] x affine parameters (2C per sample)",
     ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm1d",
      "InstanceNorm2d", "InstanceNorm3d", "RMSNorm", "LocalResponseNorm")),
    ("Embedding = y.shape[0] x vocabulary x width (parameter count)", ("Embedding", "EmbeddingBag")),
    ("LSTM/GRU/RNN = y.shape[0] x y.shape[1] x all weights and biases",
     ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")),
)
_OTHER_LEAVES = "other leaf modules priced from their weight/bias parameters, not from the ops they run"

TORCHINFO = Ruleset(
    name="torchinfo",
    unit="MAC",
    description="torchinfo summary Mult-Adds: for each called leaf module, its weight/bias parameter counts x "
    "the output's batch dim (x output spatial size for Conv classes, x the sequence dim for RNN weights); "
    "functional ops and non-leaf modules 0.",
    module_rules=(
        *(ModuleRule(cls, "torchinfo.leaf", in_leaf=True, reason=reason) for reason, classes in FAMILIES
          for cls in classes),
        ModuleRule("*", "torchinfo.leaf", in_leaf=True, reason=_OTHER_LEAVES),
        # Not a leaf (out_proj is a child, never called): its work is functional ops, counted 0.
        ModuleRule("MultiheadAttention", "zero", in_leaf=False, kind=CauseKind.UNSUPPORTED,
                   reason="MultiheadAttention counted 0: not a leaf, its projections and attention are functional"),
    ),
    default="zero",
    module_hooks=True,
)
register_ruleset(TORCHINFO)
