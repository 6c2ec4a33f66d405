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
from flopaudit.reference.inventory import ModelInventory, TensorInfo
from flopaudit.reference.params import ParamTally, param_counter
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

def _torchinfo_param_count(modules: ModelInventory, path: str) -> tuple[int, int]:
    """``LayerInfo.calculate_num_params``: ``named_parameters()`` of the module,
    a pruned ``*_orig`` parameter counted as its mask's ones. Returns
    ``(count, elements left out by pruning)``."""
    info = modules.module(path)
    count = pruned = 0
    for name, t in modules.named_params(path):
        n = t.numel
        if name.endswith("_orig") and info is not None:
            mask = _mask(modules, path, name[: -len("_orig")] + "_mask")
            if mask is not None and mask.nonzero >= 0:
                pruned += n - mask.nonzero
                n = mask.nonzero
        count += n
    return count, pruned


def _mask(modules: ModelInventory, path: str, dotted: str) -> TensorInfo | None:
    """The buffer reached by ``rgetattr(module, dotted)`` from the module at ``path``."""
    *parts, leaf = dotted.split(".")
    info = modules.module(path)
    for part in parts:
        if info is None:
            return None
        child = dict(zip(info.child_attrs, info.children)).get(part)
        info = modules.module(child) if child is not None else None
    return next((b for b in info.buffers if b.name == leaf), None) if info is not None else None


@param_counter("torchinfo")
def torchinfo_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """torchinfo's ``total_params`` (``ModelStatistics``): one row per module
    call, a repeated module's later rows "recursive" and skipped; a leaf row
    adds its parameters, any other row ``max(0, leftover)``, where leftover
    is its parameters less its (non-recursive) child rows' (a leaf child's
    parameters, another child's leftover). A weight held by two modules, or a
    module reached under two parents, is counted again through the parents'
    leftovers; a pruned weight counts its mask's ones.

    The total is computed row by row; the tally counts every parameter once
    and books what torchinfo adds or leaves out on top as two causes."""
    tally = ParamTally()
    reference = modules.unique_params()
    for t, path in reference.values():
        tally.count(t, path)
    counts: dict[int, int] = {}
    children: dict[int, list[int]] = {}
    recursive: list[bool] = []
    seen: set[str] = set()
    pruned = 0
    for i, call in enumerate(calls):
        recursive.append(call.path in seen)
        seen.add(call.path)
        children.setdefault(call.parent, []).append(i)
        counts[i], left_out = _torchinfo_param_count(modules, call.path)
        if call.parent < 0:
            pruned = left_out

    def leaf(i: int) -> bool:
        info = modules.module(calls[i].path)
        return info is None or not info.children

    def leftover(i: int) -> int:
        return counts[i] - sum(counts[j] if leaf(j) else leftover(j) for j in children.get(i, []) if not recursive[j])

    total = sum(counts[i] if leaf(i) else max(leftover(i), 0) for i in range(len(calls)) if not recursive[i])
    if pruned:
        tally.adjust(-pruned, "", "rule", "a pruned weight (weight_orig + weight_mask) counts its mask's ones")
    extra = total - (sum(t.numel for t, _ in reference.values()) - pruned)
    if extra:
        tally.adjust(extra, "", "reused-module",
                     "a weight held by several modules, or a module reached under several parents, is counted "
                     "again in its parents' leftover parameters")
    return tally


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
    params="torchinfo",
)
register_ruleset(TORCHINFO)
