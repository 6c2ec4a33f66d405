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
from typing import Any, Iterator, Sequence

from torch import nn

from flopaudit.records import CauseKind
from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory, TensorInfo
from flopaudit.reference.params import ParamTally, param_counter
from flopaudit.reference.rulesets import (
    ModuleRule,
    Ruleset,
    class_path,
    module_counter,
    register_ruleset,
    value_correction,
)


def leaf_macs(class_name: str, params: Sequence[tuple[str, tuple[int, ...]]], out: Sequence[int]) -> int:
    """``LayerInfo.calculate_macs`` for one call: parameters named ``weight``
    or ``bias`` count ``numel * y[0] * prod(y[2:])`` in a module whose class
    name contains ``"Conv"`` (bias included; transposed convolutions priced
    by their *output* size) and ``numel * y[0]`` elsewhere (Linear: the middle
    dims of a 3-D input are ignored; norms: ``N * 2C``; Embedding: ``N * V *
    E``); other parameters whose name contains ``weight``/``bias`` (RNN
    ``weight_ih_l0``...) count ``numel * y[0] * y[1]``; parameter-free
    modules and other parameter names count 0. ``y`` is the output shape.
    A parameter pruned by ``torch.nn.utils.prune`` (``weight_orig`` beside a
    ``weight_mask`` buffer) goes by its name without ``_orig``, priced here by
    its full size; torchinfo counts only the mask's ones, a value
    (:func:`pruned_weights` books the difference). One named ``_orig``
    without a mask (the old ``spectral_norm``) keeps its name in torchinfo
    (:func:`unmasked_orig` books the difference).
    """
    return sum(math.prod(shape) * _factor(class_name, _unpruned(name), out) for name, shape in params)


_PRUNED = "_orig"


def _unpruned(name: str) -> str:
    """``weight_orig -> weight`` (``torch.nn.utils.prune``'s renaming; torchinfo's ``get_param_count``)."""
    return name[: -len(_PRUNED)] if name.endswith(_PRUNED) else name


def _factor(class_name: str, name: str, out: Sequence[int]) -> int:
    """What :func:`leaf_macs` multiplies one parameter element by."""
    if name in ("weight", "bias"):
        return math.prod(list(out[:1]) + list(out[2:])) if "Conv" in class_name else out[0]
    if "weight" in name or "bias" in name:
        return math.prod(out[:2])
    return 0


def _orig_params(model: Any, calls: Sequence[ModuleCall]) -> Iterator[tuple[ModuleCall, str, int, Any]]:
    """``(call, name, numel, mask)`` for each ``X_orig`` parameter of a leaf call's module, ``mask``
    its ``X_mask`` buffer (None where it has none)."""
    for call in calls:
        if not call.in_leaf or not call.output_shapes or not any(n.endswith(_PRUNED) for n, _ in call.param_shapes):
            continue
        try:
            module = model.get_submodule(call.path)
        except AttributeError:
            continue
        for name, shape in call.param_shapes:
            if name.endswith(_PRUNED):
                yield call, name, math.prod(shape), getattr(module, _unpruned(name) + "_mask", None)


@value_correction("torchinfo.pruned", "pruned weight (torch.nn.utils.prune) counted by its mask's ones, not its size")
def pruned_weights(model: Any, calls: Sequence[ModuleCall]) -> Iterator[tuple[ModuleCall, int]]:
    """For each leaf call of a module holding ``X_orig`` and a ``X_mask``
    buffer: ``-(zeros of the mask) x`` the factor :func:`leaf_macs` prices
    ``X`` by, as ``LayerInfo.get_param_count`` counts ``sum(mask)`` elements."""
    for call, name, numel, mask in _orig_params(model, calls):
        if mask is not None:
            zeros = numel - int(mask.sum())
            yield call, -zeros * _factor(call.module_type, _unpruned(name), call.output_shapes[0])


@value_correction("torchinfo.unmasked_orig",
                  "a parameter named X_orig without an X_mask buffer (the old torch.nn.utils.spectral_norm's "
                  "weight_orig) keeps its name: priced as an RNN's inner weight, numel x y[0] x y[1]")
def unmasked_orig(model: Any, calls: Sequence[ModuleCall]) -> Iterator[tuple[ModuleCall, int]]:
    """For each leaf call of a module holding ``X_orig`` but no ``X_mask``: what torchinfo's
    price of it (``get_param_count`` strips ``_orig`` only where the mask exists, and a name
    that is not ``weight``/``bias`` but holds ``weight`` takes the RNN factor) differs from the
    price :func:`leaf_macs` gives it as ``X``."""
    for call, name, numel, mask in _orig_params(model, calls):
        if mask is None:
            out = call.output_shapes[0]
            difference = _factor(call.module_type, name, out) - _factor(call.module_type, _unpruned(name), out)
            if difference:
                yield call, numel * difference


@module_counter("torchinfo.leaf")
def leaf(call: ModuleCall) -> int:
    """torchinfo's Mult-Adds of one leaf module call (:func:`leaf_macs`).

    ``y`` is the shape of the first tensor of the output, as torchinfo's
    ``calculate_size`` takes it for a tensor, a tuple/list (its first
    element) or a ``PackedSequence`` (its ``data``).
    # NB: for a dict output torchinfo takes the *last* value; a module whose
    # output holds no tensor makes torchinfo fail. Neither is reproduced here
    # (the record has only the flattened output shapes).
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


class _Row:
    """A ``LayerInfo`` of torchinfo's summary list, as far as parameters go."""

    def __init__(self, path: str, depth: int, parent: _Row | None, copy: int = -1) -> None:
        self.path, self.depth, self.parent = path, depth, parent
        self.module: tuple[str, int] = (path, copy)
        """Which module the row is of (torchinfo's ``layer_id``): the module at ``path``, or a copy of it
        made in the forward (its call's index), another module."""
        self.recursive = False
        self.children: list[_Row] = []


def torchinfo_rows(modules: ModelInventory, calls: Sequence[ModuleCall]) -> list[_Row]:
    """torchinfo 1.8's summary list (``torchinfo.py`` ``apply_hooks``,
    ``add_missing_container_layers``, ``set_children_layers``), replayed on the
    module calls: a depth-first walk of ``_modules`` hooks every module, each
    keeping the name, depth and parent of its *last* visit (a shared module's
    second parent); every call adds a row, "recursive" if its module had one
    before (a copy of a module made in the forward is another module, and
    has none); container rows missing from a row's hierarchy are inserted (the
    walk's own ``LayerInfo``, recursive if its module already has a row); a
    row's children are the rows after it that are deeper."""
    last: dict[str, _Row] = {}
    stack: list[tuple[str, int, _Row | None]] = [(modules.root.path, 0, None)]
    while stack:
        path, depth, parent = stack.pop()
        last[path] = fallback = _Row(path, depth, parent)
        info = modules.module(path)
        stack += [(child, depth + 1, fallback) for child in reversed(info.children if info else ())]
    rows: list[_Row] = []
    ids: set[str] = set()
    for i, call in enumerate(calls):
        hooked = last.get(call.path)
        if hooked is None:
            continue
        if call.copied:  # a copy made in the forward is a module of its own, which has no row before
            # NB: a copy called twice has a recursive second row in torchinfo; counted again here.
            rows.append(_Row(call.path, hooked.depth, hooked.parent, i))
            continue
        row = _Row(call.path, hooked.depth, hooked.parent)
        row.recursive = call.path in ids
        ids.add(call.path)
        rows.append(row)
    current: dict[int, _Row] = {}
    for idx, row in enumerate(rows):  # rows grow while iterating, as torchinfo's list does
        inserted = 0
        hierarchy: dict[int, _Row] = {}
        parent = row.parent
        while parent is not None and parent.depth > 0:
            hierarchy[parent.depth] = parent
            parent = parent.parent
        for d in range(1, row.depth):
            if (d not in current or current[d].module != hierarchy[d].module) and \
                    hierarchy[d] is not rows[idx + inserted - 1]:
                hierarchy[d].recursive = hierarchy[d].path in ids
                rows.insert(idx + inserted, hierarchy[d])
                ids.add(hierarchy[d].path)
                current[d] = hierarchy[d]
                inserted += 1
        current[row.depth] = row
        d = row.depth + 1
        while d in current:
            current.pop(d)
            d += 1
    for i, row in enumerate(rows):
        end = i + 1
        while end < len(rows) and rows[end].depth > row.depth:
            end += 1
        row.children = rows[i + 1:end]
    return rows


@param_counter("torchinfo")
def torchinfo_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """torchinfo's ``total_params`` (``ModelStatistics``) over :func:`torchinfo_rows`:
    a non-recursive leaf row adds its parameters, any other non-recursive row
    ``max(0, leftover)``, leftover being its parameters less its non-recursive
    children's (a leaf's parameters, another row's leftover); a pruned weight
    counts its mask's ones. So a weight held by two modules, or a module
    reached under two parents, can be counted again through its parents'
    leftovers.

    The total is computed row by row; the tally counts every parameter once
    and books what torchinfo adds or leaves out on top as two causes."""
    tally = ParamTally()
    reference = modules.unique_params()
    for t, path in reference.values():
        tally.count(t, path)
    rows = torchinfo_rows(modules, calls)
    counts = {row.path: _torchinfo_param_count(modules, row.path)[0] for row in rows}

    def leaf(row: _Row) -> bool:
        info = modules.module(row.path)
        return info is None or not info.children

    def leftover(row: _Row) -> int:
        return counts[row.path] - sum(counts[c.path] if leaf(c) else leftover(c) for c in row.children
                                      if not c.recursive)

    total = sum(counts[r.path] if leaf(r) else max(leftover(r), 0) for r in rows if not r.recursive)
    pruned = _torchinfo_param_count(modules, modules.root.path)[1]
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
        # Not a leaf (out_proj is a child, never called): its work is functional ops, counted 0. Torch's
        # class (and its subclasses) only: a model's own class of that name runs its projections as modules.
        ModuleRule(class_path(nn.MultiheadAttention), "zero", in_leaf=False, subclasses=True,
                   kind=CauseKind.UNSUPPORTED,
                   reason="MultiheadAttention counted 0: not a leaf, its projections and attention are functional"),
    ),
    default="zero",
    module_hooks=True,
    params="torchinfo",
    value_corrections=("torchinfo.pruned", "torchinfo.unmasked_orig"),
)
register_ruleset(TORCHINFO)
