"""TylerYep's ``torch-summary`` (1.4.5) as a ruleset: weight-count Mult-Adds per sample, and its parameters.

``torchsummary.summary`` of torch-summary (``torchsummary.py``
``apply_hooks``, ``layer_info.py``, ``model_statistics.py``) hooks every
module reached from the root through ``children()`` down to depth 4 (the
default ``depth=3``, plus one), once per path, the root only when it has
no children or is an ``nn.MultiheadAttention``; each hook call is a row. It
runs under ``torch.no_grad()`` in eval mode.

* Mult-Adds of a row: for each of the module's ``named_parameters()``
  (recursive, so a container adds its children's weights again), a name
  equal to ``weight`` counts ``numel`` (``numel * prod(output[2:])`` in a
  class whose name contains ``Conv``), any other name containing ``weight``
  ``numel``; biases nothing. Every row counts, whatever its depth; the total
  is per sample (the adapter multiplies by the batch: ``batch_scaled``).
  Rows come from module calls, so each call of a module is priced; one per
  name of a shared module (``hooks_per_name``).
* Parameters: rows at depth 3 and childless rows above it, each module once
  (a repeated module with parameters is "recursive"), their
  ``named_parameters()``.

# NB: a module reached at depth 5 or deeper by every path has no hook; the
# module rule prices such calls 0. A name deeper than 4 of a module also
# reached higher is still counted per name here.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import nn

from flopaudit.reference.engine import ModuleCall
from flopaudit.reference.inventory import ModelInventory
from flopaudit.reference.params import COPIED, NEVER_CALLED, ParamTally, param_counter
from flopaudit.reference.rulesets import (
    ModuleRule,
    Ruleset,
    class_path,
    first_out,
    inventory_module_counter,
    is_subclass,
    register_ruleset,
)

MAX_DEPTH = 3
"""``summary``'s ``depth`` default: hooks reach depth ``MAX_DEPTH + 1``."""
_LAYER_MODULES = (class_path(nn.MultiheadAttention),)
"""``LAYER_MODULES``: classes whose root is hooked though it has children (``isinstance``: torch's class
and its subclasses, not a model's own class of that name)."""


def _depth(name: str) -> int:
    return 0 if not name else name.count(".") + 1


def hooked(modules: ModelInventory, path: str) -> bool:
    """Does ``apply_hooks`` put a hook on the module at ``path``?"""
    info = modules.module(path)
    if info is None or min(_depth(n) for n in info.names) > MAX_DEPTH + 1:
        return False
    return bool(path) or not info.children or any(is_subclass(info.module_class, c) for c in _LAYER_MODULES)


@inventory_module_counter("torch-summary.row")
def row(call: ModuleCall, modules: ModelInventory) -> int:
    """``LayerInfo.calculate_macs`` of one row (see the module docstring)."""
    if not hooked(modules, call.path):
        return 0
    out = first_out(call)
    positions = abs(math.prod(out[2:])) if len(out) > 2 else 1
    macs = 0
    for name, t in modules.named_params(call.path):
        if name == "weight":
            macs += t.numel * (positions if "Conv" in call.module_type else 1)
        elif "weight" in name:
            macs += t.numel
    return macs


@param_counter("torch-summary")
def torch_summary_params(modules: ModelInventory, calls: Sequence[ModuleCall]) -> ParamTally:
    """``ModelStatistics.total_params`` (see the module docstring)."""
    tally = ParamTally()
    rows: set[str] = set()
    # A copy made in the forward carries the hooks and is another module (never "(recursive)"); its rows
    # come after the model's own, so that they are the extra counts where the module ran too.
    # NB: a copy called twice is "(recursive)" in torch-summary; counted again here.
    for call in sorted(calls, key=lambda c: c.copied):
        info = modules.module(call.path)
        if info is None or not hooked(modules, call.path):
            continue
        held = modules.named_params(call.path)
        why = COPIED if call.copied else ("rule", "")
        for name in info.names:
            if held and call.path in rows and not call.copied:
                break  # a repeated module with parameters is "(recursive)"
            if not call.copied:
                rows.add(call.path)
            depth = _depth(name)
            if depth == MAX_DEPTH or (not info.children and depth < MAX_DEPTH):
                for _, t in held:
                    tally.count(t, call.path, *why)
    called = {call.path for call in calls}
    for info in modules.modules:
        for t in info.params:
            if info.path not in called:
                tally.miss(t, *NEVER_CALLED)
            else:
                tally.miss(t, "unsupported", f"held by a module with children above depth {MAX_DEPTH} (only leaves "
                           f"and depth-{MAX_DEPTH} modules are counted)")
    return tally


TORCH_SUMMARY = register_ruleset(Ruleset(
    name="torch-summary",
    unit="MAC",
    description="torch-summary (TylerYep) Mult-Adds: per sample, for every hooked module call, its weights' element "
    "counts (x output positions for Conv classes), containers included; biases and functional ops 0.",
    module_rules=(
        ModuleRule("*", "torch-summary.row", suppress_inner=False,
                   reason="every module call (to depth 4) priced from its weights' element counts (x output positions "
                   "for Conv classes), containers counting their children's weights again, per sample"),
    ),
    default="zero",
    eval_mode=True,  # the backend calls model.eval() before its pass
    default_reason="operators are not counted (Mult-Adds come from weight counts only)",
    module_hooks=True,
    hooks_per_name=True,
    batch_scaled=True,
    params="torch-summary",
))
