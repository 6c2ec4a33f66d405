"""The ``thop`` ruleset: predicts what the ``thop`` adapter reports (thop 0.1.1).

thop (``thop/profile.py``, ``profile``) registers a forward hook on every
module whose *exact* type is a key of ``register_hooks``; each hook adds a
whole-batch count to the module's ``total_ops`` buffer, and ``dfs_count``
sums a module with a rule without visiting its children. Functional ops
(``torch.matmul``, ``@``, ``F.*``, ``+``) are never seen, nor are modules of
types without a rule. The adapter reports ``int(round(total_ops))``.

This ruleset reproduces that with one :class:`ModuleRule` per
``register_hooks`` entry, matched by dotted class path (exact type, as thop
does), and ``default="zero"`` for every operator outside those modules.
Each module counter below mirrors one hook of ``thop/vision/basic_hooks.py``
(via ``thop/vision/calc_func.py``) or ``thop/rnn_hooks.py``, reading shapes
and hyper-parameters from the :class:`~flopaudit.reference.engine.ModuleCall`
record.

thop runs the model under ``torch.no_grad()`` with forward hooks attached to
its modules; fused eval-mode fast paths that refuse to run when a module has
hooks (``nn.TransformerEncoderLayer``) are then not taken, while those that
only test autograd are (``nn.TransformerEncoder`` turns a batch with a
padding mask into a nested tensor, and thop's hooks then see the real
sequence lengths), so the ruleset reads a recording made the same way
(autograd off, ``module_hooks``). thop calls ``model.eval()`` first
(``eval_mode``): a model given in train mode is recorded for it in eval mode,
so a branch on ``self.training`` (an auxiliary head) is left out as thop
leaves it out.
# NB: ``nn.Sequential``'s ``zero_ops`` rule is left out: ``dfs_count``
always descends into it, which is what no rule means here.

A module shared by two parents (``a.shared is b.shared``) is counted once
per name twice over: ``model.apply(add_hooks)`` visits it under each parent
and registers its hook each time, so every call adds its count n times for n
names, and ``dfs_count`` walks ``named_children`` and adds its ``total_ops``
under each name: n x n in all (``hooks_per_name`` and ``sums_per_name``; the
excess is booked as ``reused-module``). A module assigned twice to one
parent has one name there (``named_children`` skips the repeat).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from flopaudit.records import CauseKind
from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory, ModuleInfo
from flopaudit.reference.params import (
    COPY_KEPT,
    NEVER_CALLED,
    PER_NAME,
    ParamTally,
    called_paths,
    miss_the_rest,
    param_counter,
)
from flopaudit.reference.rulesets import (
    ModuleRule,
    Ruleset,
    affine_norm,
    attr,
    class_path,
    exact_type_rules,
    module_counter,
    param_shape,
    register_ruleset,
)
from flopaudit.reference.rulesets import first_in as _first_in
from flopaudit.reference.rulesets import first_out as _first_out
from flopaudit.reference.rulesets import numel as _numel

Shape = tuple[int, ...]


def _weight_shape(call: ModuleCall) -> Shape:
    """The shape of ``m.weight`` as thop's hook reads it: the parameter, or
    for a module whose ``weight`` is recomputed from other parameters in a
    forward pre-hook (``torch.nn.utils.prune``: ``weight_orig``; the old
    ``weight_norm``: ``weight_v``), the parameter it has the shape of."""
    for name in ("weight", "weight_orig", "weight_v"):
        shape = param_shape(call, name)
        if shape is not None:
            return shape
    return ()


# ---------------------------------------------------------------------------
# thop/vision/basic_hooks.py


@module_counter("thop.conv")
def thop_conv(call: ModuleCall) -> int:
    """``count_convNd`` / ``calculate_conv2d_flops``:
    ``numel(y) * (x.shape[1] // groups) * prod(weight.shape[2:])``.

    Bias is never counted. Transposed convolutions use the same formula, so
    they are priced by their *output* size (about stride^d too high). The
    input channels are read from ``x.shape[1]``: on an unbatched input that
    is the first spatial dimension, not the channels.
    """
    x, y = _first_in(call), _first_out(call)
    weight = _weight_shape(call)
    groups = int(attr(call, "groups", 1) or 1)
    if len(x) < 2:
        return 0
    return _numel(y) * (x[1] // groups) * _numel(weight[2:])


@module_counter("thop.linear")
def thop_linear(call: ModuleCall) -> int:
    """``count_linear``: ``in_features * numel(y)``; bias not counted."""
    return int(attr(call, "in_features", 0)) * _numel(_first_out(call))


#: ``count_normalization``: ``2 * numel(x)``, doubled when the module has ``affine`` or
#: ``elementwise_affine`` set (BatchNorm, InstanceNorm, LayerNorm, SyncBatchNorm; train or eval alike).
module_counter("thop.norm")(affine_norm(
    2, 4, lambda call: bool(attr(call, "affine", False) or attr(call, "elementwise_affine", False))))


@module_counter("thop.softmax")
def thop_softmax(call: ModuleCall) -> int:
    """``count_softmax`` / ``calculate_softmax``: with ``F = x.shape[dim]``,
    ``(numel(x) // F) * (3F - 1)`` (F exps, F-1 adds, F divisions per row)."""
    x = _first_in(call)
    dim = attr(call, "dim")
    if dim is None or not x:
        return 0
    features = x[dim]
    return (_numel(x) // features) * (features + (features - 1) + features)


@module_counter("thop.adaptive_avgpool")
def thop_adaptive_avgpool(call: ModuleCall) -> int:
    """``count_adap_avgpool`` / ``calculate_adaptive_avg``:
    ``int((prod(in_spatial / out_spatial) + 1) * numel(y))``, computed in
    float64 tensors exactly as thop does (uneven windows give a fractional
    kernel before the truncation)."""
    x, y = _first_in(call), _first_out(call)
    kernel = torch.div(torch.DoubleTensor([*x[2:]]), torch.DoubleTensor([*y[2:]]))
    total_add = torch.prod(kernel)
    return int((total_add + 1) * _numel(y))


#: ``calculate_upsample``: ops per output element by mode.
_UPSAMPLE_FACTOR = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 224 + 35}


@module_counter("thop.upsample")
def thop_upsample(call: ModuleCall) -> int:
    """``count_upsample``: ``numel(y)`` times 1 (nearest), 5 (linear),
    11 (bilinear) or 259 (bicubic); any other mode (trilinear included) 0."""
    factor = _UPSAMPLE_FACTOR.get(str(attr(call, "mode", "")), 0)
    return _numel(_first_out(call)) * factor


# ---------------------------------------------------------------------------
# thop/rnn_hooks.py


def _rnn_cell(input_size: int, hidden_size: int, bias: bool) -> int:
    """``_count_rnn_cell``: ``H*(I+H) + H``, plus ``2H`` with bias."""
    ops = hidden_size * (input_size + hidden_size) + hidden_size
    return ops + (hidden_size * 2 if bias else 0)


def _gru_cell(input_size: int, hidden_size: int, bias: bool) -> int:
    """``_count_gru_cell``: r and z gates ``2*((H+I)*H + H [+2H])``, n gate
    ``(H+I)*H + H [+2H]``, then ``H`` (r hadamard) and ``3H`` (output mix)."""
    state = (hidden_size + input_size) * hidden_size + hidden_size + (hidden_size * 2 if bias else 0)
    ops = state * 2
    ops += (hidden_size + input_size) * hidden_size + hidden_size + (hidden_size * 2 if bias else 0)
    return ops + hidden_size + hidden_size * 3


def _lstm_cell(input_size: int, hidden_size: int, bias: bool) -> int:
    """``_count_lstm_cell``: four gates ``4*((I+H)*H + H [+2H])``, then
    ``3H`` (cell update) and ``H`` (output)."""
    state = (input_size + hidden_size) * hidden_size + hidden_size + (hidden_size * 2 if bias else 0)
    return state * 4 + hidden_size * 3 + hidden_size


def _cell_sizes(call: ModuleCall) -> tuple[int, int, bool]:
    return int(attr(call, "input_size", 0)), int(attr(call, "hidden_size", 0)), bool(attr(call, "bias", True))


Cell = Callable[[int, int, bool], int]
"""A cell formula: ``(input_size, hidden_size, bias) -> ops`` for one step of one sample."""


def _cell_counter(cell: Cell) -> Callable[[ModuleCall], int]:
    """``count_{rnn,gru,lstm}_cell``: the cell formula times ``x.size(0)``
    (for an unbatched 1-D input that is the feature size)."""

    def count(call: ModuleCall) -> int:
        x = _first_in(call)
        return cell(*_cell_sizes(call)) * (x[0] if x else 0)

    return count


def _stack_counter(cell: Cell) -> Callable[[ModuleCall], int]:
    """``count_{rnn,gru,lstm}``: layer 0 on ``input_size``, later layers on
    ``H`` (``2H`` if bidirectional), each doubled when bidirectional, times
    steps and batch read from ``x[0]`` by ``batch_first``. ``proj_size`` is
    ignored. A ``PackedSequence`` input is priced as thop does, as a padded
    batch: ``len(batch_sizes)`` steps (the longest sequence) times
    ``max(batch_sizes)`` sequences, whatever the lengths (:func:`_packed_steps`)."""

    def count(call: ModuleCall) -> int:
        input_size, hidden_size, bias = _cell_sizes(call)
        layers = int(attr(call, "num_layers", 1))
        directions = 2 if attr(call, "bidirectional", False) else 1
        x = _first_in(call)
        if len(x) < 2:
            return 0
        packed = _packed_steps(call)
        if packed is not None:
            steps, batch = packed
        else:
            batch, steps = (x[0], x[1]) if attr(call, "batch_first", False) else (x[1], x[0])
        ops = cell(input_size, hidden_size, bias) * directions
        for _ in range(layers - 1):
            ops += cell(hidden_size * directions, hidden_size, bias) * directions
        return ops * steps * batch

    return count


def _packed_steps(call: ModuleCall) -> tuple[int, int] | None:
    """``(steps, sequences)`` of an RNN call on a ``PackedSequence``, else None.

    A packed input flattens to ``data`` (2-D: all steps of all sequences)
    then ``batch_sizes`` (1-D, one entry per step); an unbatched 2-D input is
    followed by nothing or by a 2-D ``hx``. The number of sequences,
    ``max(batch_sizes)``, is a value; the module's last output, ``h_n`` of
    shape ``(layers x directions, sequences, H)``, carries it as a shape.
    """
    shapes = call.input_shapes
    if len(shapes) < 2 or len(shapes[0]) != 2 or len(shapes[1]) != 1:
        return None
    h_n = next((s for s in reversed(call.output_shapes) if len(s) == 3), None)
    return (shapes[1][0], h_n[1]) if h_n is not None else None


for _kind, _cell in (("rnn", _rnn_cell), ("gru", _gru_cell), ("lstm", _lstm_cell)):
    module_counter(f"thop.{_kind}_cell")(_cell_counter(_cell))
    module_counter(f"thop.{_kind}")(_stack_counter(_cell))


# ---------------------------------------------------------------------------
# The rules: thop/profile.py register_hooks, in its order.


_ZERO_REASON = "thop's zero_ops: padding, ReLU/ReLU6/LeakyReLU, max pools, Dropout and PixelShuffle count 0"

_LAZY = (nn.LazyLinear, nn.LazyConv1d, nn.LazyConv2d, nn.LazyConv3d, nn.LazyConvTranspose1d, nn.LazyConvTranspose2d,
         nn.LazyConvTranspose3d, nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d, nn.LazyInstanceNorm1d,
         nn.LazyInstanceNorm2d, nn.LazyInstanceNorm3d)
_LAZY_REASON = ("lazy module not materialised when thop registers its hooks: its type (LazyLinear...) has no rule, "
                "so it counts 0")

MODULE_RULES: tuple[ModuleRule, ...] = (
    # Not thop rules, and first: a lazy module is hooked by its type before
    # the forward that materialises it (and turns it into its cls_to_become,
    # e.g. Linear); its calls are priced under the class it had then.
    *exact_type_rules(_LAZY, "zero", _LAZY_REASON, kind=CauseKind.UNSUPPORTED),
    *exact_type_rules([nn.ZeroPad2d, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                       nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.Dropout,
                       nn.PixelShuffle],
                      "zero", _ZERO_REASON),
    *exact_type_rules([nn.Conv1d, nn.Conv2d, nn.Conv3d], "thop.conv",
                      "Conv priced numel(out)·(in.shape[1]/groups)·kernel: bias never counted, "
                      "unbatched input misread"),
    *exact_type_rules([nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d], "thop.conv",
                      "ConvTranspose priced by output size, as a direct conv"),
    *exact_type_rules([nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm], "thop.norm",
                      "BatchNorm = 2 per element, 4 if affine"),
    *exact_type_rules([nn.LayerNorm], "thop.norm", "LayerNorm = 2 per element, 4 if elementwise_affine"),
    *exact_type_rules([nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d], "thop.norm",
                      "InstanceNorm = 2 per element, 4 if affine"),
    *exact_type_rules([nn.PReLU], "in_numel", "PReLU = 1 per element"),
    *exact_type_rules([nn.Softmax], "thop.softmax", "Softmax = 3F-1 per row of F features"),
    *exact_type_rules([nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d], "out_numel", "AvgPool = 1 per output element"),
    *exact_type_rules([nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d],
                      "thop.adaptive_avgpool",
                      "AdaptiveAvgPool = (prod(in/out) + 1) per output element"),
    *exact_type_rules([nn.Linear], "thop.linear", "Linear = in_features per output element, bias not counted"),
    *exact_type_rules([nn.Upsample, nn.UpsamplingBilinear2d, nn.UpsamplingNearest2d], "thop.upsample",
                      "Upsample = 1 (nearest) / 11 (bilinear) per output element"),
    *exact_type_rules([nn.RNNCell], "thop.rnn_cell", "RNNCell per thop's formula (gate adds and bias included)"),
    *exact_type_rules([nn.GRUCell], "thop.gru_cell",
                      "GRUCell per thop's formula (gate adds, hadamards and bias included)"),
    *exact_type_rules([nn.LSTMCell], "thop.lstm_cell",
                      "LSTMCell gates per thop's formula (hadamards and bias included)"),
    *exact_type_rules([nn.RNN], "thop.rnn", "RNN per thop's formula (gate adds and bias included)"),
    *exact_type_rules([nn.GRU], "thop.gru", "GRU per thop's formula (gate adds, hadamards and bias included)"),
    *exact_type_rules([nn.LSTM], "thop.lstm",
                      "LSTM gates per thop's formula (hadamards and bias included, proj_size ignored)"),
    # Not a thop rule: named so that the report says why attention counts 0
    # (the module has no rule and its out_proj is never called as a module).
    *exact_type_rules([nn.MultiheadAttention], "zero", "MultiheadAttention has no thop rule",
                      kind=CauseKind.UNSUPPORTED),
)

#: Class paths thop registers hooks (and counts parameters) for: its rules, not the MultiheadAttention and
#: lazy-module markers.
RULED_CLASSES: frozenset[str] = frozenset(r.module_type for r in MODULE_RULES) - {
    class_path(c) for c in (nn.MultiheadAttention, *_LAZY)}


@param_counter("thop")
def thop_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """thop's ``total_params``: ``dfs_count`` walks ``named_children()`` from the
    root; a module with a rule (exact type, not ``Sequential``/``ModuleList``)
    gives the parameters its ``count_parameters`` hook read at its last call
    (``m.parameters()``, recursive; 0 if it never ran) and is not descended
    into; any other module is descended into. The root's own parameters are
    never counted; a shared module is counted under each name. A copy of a module made during the
    forward carries the hooks and keeps its count on itself: a module run only as a copy is not counted."""
    tally = ParamTally()
    called = called_paths([c for c in calls if not c.copied])
    copied = called_paths([c for c in calls if c.copied])

    def walk(info: ModuleInfo) -> None:
        for child_path in info.children:
            child = modules.module(child_path)
            if child is None:
                continue
            if child.module_class in RULED_CLASSES and not child.container:
                held = [t for _, t in modules.named_params(child.path)]
                if not called.get(child.path):
                    for t in held:
                        tally.miss(t, *(COPY_KEPT if copied.get(child.path) else NEVER_CALLED))
                    continue
                again = child.path in tally.first_at.values()
                for t in held:
                    tally.count(t, child.path, *(PER_NAME if again else ("rule", "")))
            else:
                walk(child)

    walk(modules.root)
    miss_the_rest(tally, modules, ("rule", "parameters held by the root module itself are never counted"),
                  ("unsupported", "held by a module without a thop rule (its parameters count 0)"))
    return tally


THOP = register_ruleset(Ruleset(
    name="thop",
    unit="MAC",
    description="thop.profile: forward hooks on modules whose exact type has a rule (whole-batch counts, bias "
    "excluded, per-element counts for norms, softmax, average pools and upsampling); functional ops and "
    "modules without a rule count 0.",
    module_rules=MODULE_RULES,
    default="zero",
    module_hooks=True,
    eval_mode=True,
    hooks_per_name=True,
    sums_per_name=True,
    copies_lost=True,  # ``total_ops`` buffers, totalled over the model's modules
    params="thop",
))


__all__ = ["MODULE_RULES", "THOP", "class_path"]
