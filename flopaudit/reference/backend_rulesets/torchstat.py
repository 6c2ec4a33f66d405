"""torchstat's ``Flops`` column (torchstat 0.0.7) as a ruleset.

torchstat wraps the ``__call__`` of every *leaf* module class and, on each
call, stores the leaf's counts in buffers on the module, overwriting the
previous call's (``torchstat/model_hook.py``); the total sums the leaves of
``named_modules()``. So only leaves are priced, each module once, by its
last call (``last_call_only``); a module shared by two parents is one leaf.
Work outside leaves (functional ops, a non-leaf module's own ``forward``)
is not seen. ``compute_flops`` (``torchstat/compute_flops.py``) matches with
``isinstance``:

* ``Conv2d``: ``N * H_out * W_out * kh * kw * Cin * (Cout // groups)`` plus
  ``N * H_out * W_out * Cout`` with a bias;
* ``BatchNorm2d``: ``numel(x)``, doubled with affine parameters;
* ``ReLU``, ``ReLU6``, ``PReLU``, ``ELU``, ``LeakyReLU``: ``numel(x)``;
* ``MaxPool2d``, ``AvgPool2d``: ``numel(x)``;
* ``Upsample``: ``N * prod(y.shape[2:])`` (one per output position, the
  channels left out);
* ``Linear`` (2-D input only, else torchstat fails): ``N * in * out``, no bias;
* every other leaf: 0 (``ConvTranspose2d`` included: it has a MAdd rule only).

torchstat runs a batch of one; the adapter multiplies by the batch size,
and these formulas, read on the reference's batch-``N`` recording, are
``N`` times the one-sample counts for models whose work scales with the
batch. It runs in eval mode with autograd on.

Rules match subclasses too, as ``isinstance`` does (timm's ``StdConv2d`` and
``ScaledStdConv2d`` are priced as ``Conv2d``).
"""

from __future__ import annotations

from typing import Sequence

from torch import nn

from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory
from flopaudit.reference.params import NEVER_CALLED, ParamTally, called_paths, param_counter
from flopaudit.reference.rulesets import (
    ModuleRule,
    Ruleset,
    class_path,
    first_in,
    first_out,
    module_counter,
    numel,
    register_ruleset,
)


def _attr(call: ModuleCall, name: str, default: object = None) -> object:
    return dict(call.attrs).get(name, default)


@module_counter("torchstat.conv2d")
def conv2d(call: ModuleCall) -> int:
    """``compute_Conv2d_flops``: ``N * H_out * W_out * kh * kw * Cin * (Cout //
    groups)`` plus ``N * H_out * W_out * Cout`` for a bias."""
    x, y = first_in(call), first_out(call)
    if len(x) != 4 or len(y) != 4:
        return 0
    kernel = numel(_attr(call, "kernel_size", ()))  # type: ignore[arg-type]
    groups = int(_attr(call, "groups", 1) or 1)  # type: ignore[call-overload]
    positions = y[0] * y[2] * y[3]
    bias = positions * y[1] if dict(call.param_shapes).get("bias") is not None else 0
    return kernel * x[1] * (y[1] // groups) * positions + bias


@module_counter("torchstat.batchnorm2d")
def batchnorm2d(call: ModuleCall) -> int:
    """``compute_BatchNorm2d_flops``: ``numel(x)``, doubled if ``affine``."""
    return numel(first_in(call)) * (2 if _attr(call, "affine", False) else 1)


@module_counter("torchstat.upsample")
def upsample(call: ModuleCall) -> int:
    """``compute_Upsample_flops``: ``N * prod(y[0].shape[1:])`` = ``N * prod(y.shape[2:])``."""
    y = first_out(call)
    return y[0] * numel(y[2:]) if len(y) > 2 else 0


@module_counter("torchstat.linear")
def linear(call: ModuleCall) -> int:
    """``compute_Linear_flops``: ``N * in * out`` (torchstat asserts a 2-D input)."""
    x, y = first_in(call), first_out(call)
    return x[0] * x[1] * y[1] if len(x) == 2 and len(y) == 2 else 0


_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.PReLU, nn.ELU, nn.LeakyReLU)


@param_counter("torchstat")
def torchstat_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """torchstat's ``params``: each *called* leaf of ``named_modules()`` (each
    module once) counts its own ``_parameters`` (frozen ones too); a weight tied
    between two leaves counts in each; parameters of non-leaf modules (a class
    token on the root, ``nn.MultiheadAttention``'s ``in_proj_weight``) are not
    seen."""
    tally = ParamTally()
    called = called_paths(calls)
    for info in modules.modules:
        for t in info.params:
            if info.children:
                tally.miss(t, "unsupported", "held by a non-leaf module (torchstat reads leaf modules only)")
            elif not called.get(info.path):
                tally.miss(t, *NEVER_CALLED)
            else:
                tally.count(t, info.path)
    return tally

TORCHSTAT = register_ruleset(Ruleset(
    name="torchstat",
    unit="MAC",
    description="torchstat Flops: leaf modules only, each by its last call: Conv2d MACs + bias, BatchNorm2d 1 (2 "
    "affine) per element, ReLU family and max/avg pools 1 per input element, Upsample 1 per output position, 2-D "
    "Linear MACs; other leaves and all functional ops 0.",
    module_rules=(
        ModuleRule(class_path(nn.Conv2d), "torchstat.conv2d", in_leaf=True, subclasses=True,
                   reason="Conv2d = MACs + bias (one per output element)"),
        ModuleRule(class_path(nn.BatchNorm2d), "torchstat.batchnorm2d", in_leaf=True, subclasses=True,
                   reason="BatchNorm2d = 1 per element, 2 with affine"),
        *(ModuleRule(class_path(cls), "in_numel", in_leaf=True, subclasses=True,
                     reason="ReLU family = 1 per input element") for cls in _ACTIVATIONS),
        *(ModuleRule(class_path(cls), "in_numel", in_leaf=True, subclasses=True,
                     reason="MaxPool2d/AvgPool2d = 1 per input element") for cls in (nn.MaxPool2d, nn.AvgPool2d)),
        ModuleRule(class_path(nn.Upsample), "torchstat.upsample", in_leaf=True, subclasses=True,
                   reason="Upsample = 1 per output position (channels left out)"),
        ModuleRule(class_path(nn.Linear), "torchstat.linear", in_leaf=True, subclasses=True,
                   reason="Linear (2-D) = MACs, no bias"),
    ),
    default="zero",
    eval_mode=True,  # the backend calls model.eval() before its pass
    grad_enabled=True,
    last_call_only=True,
    params="torchstat",
))
