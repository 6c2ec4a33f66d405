"""The ptflops ``pytorch`` backend (``get_model_complexity_info(..., backend="pytorch")``).

How ptflops' pytorch engine counts (``ptflops/pytorch_engine.py``, verified by
probes on ptflops 0.7.5):

* **module hooks**: a forward hook on every module whose exact type is in
  ``MODULES_MAPPING`` adds the module's count, for the whole batch it saw, to
  ``module.__flops__``. The module total is ``accumulate_flops`` of the root:
  a supported module gives its own ``__flops__`` (its children are not
  visited), any other module the sum over its children.
* **functional patches** (``count_functional=True``, the default):
  ``torch.nn.functional`` functions (relu, gelu, pools, softmax, interpolate,
  ...) and tensor ops (``torch.matmul``/``mm``/``bmm``/``addmm``/``baddbmm``/
  ``mul``/``add`` and the ``Tensor`` methods of the same names) are replaced
  by wrappers that append a count, for the whole batch, to a list. Operators
  (``@``, ``+``, ``*``) and ``torch.einsum`` are not patched.
* a forward hook on the root adds ``len(args[0])`` (the size of dim 0 of the
  first positional input) to ``__batch_counter__``.

ptflops then reports ``int(module_total / __batch_counter__ + functional)``:
module counts per sample, functional counts for the whole batch.
"""

from __future__ import annotations

import io
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Callable

from flopaudit.adapters._failures import named_failure
from flopaudit.adapters._ptflops_common import ZERO_OP_MODULE, common_options
from flopaudit.adapters.base import Adapter, RawCount, count_instances
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs

BACKEND = Backend(
    name="ptflops-pytorch",
    adapter="PtflopsPytorchAdapter",
    description="ptflops pytorch engine: module hooks plus patched torch/F functions",
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="ptflops",
    distribution="ptflops",
    install="pip install ptflops",
    ruleset="flopaudit.reference.backend_rulesets.ptflops_pytorch",
    meta=MetaSupport(
        False,
        "on meta tensors ptflops' functional patches also count the matmul inside nn.Linear "
        "(probed: linear-3d gives 21120 MACs on meta, 10880 on CPU)",
    ),
    unit_note="divides module-hook counts by the batch size (functional counts are not divided); "
    "normalised back to the whole batch",
    order=20,
    known_divergences={
        "jagged-token-mlp": "ptflops fails: its hooks multiply a jagged nested tensor's sizes as ints, and its ragged "
        "size is a symbolic int (AttributeError: 'NestedIntNode' object has no attribute 'int_')",
        "params-lazy": "ptflops fails: it counts parameters before the forward, when a lazy module's are still "
        "uninitialised (ValueError); a crash is not predicted",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "ptflops fails: its batch-counter hook cannot be registered on a "
                        "ScriptModule"),
        "root-calls-forward-itself": "ptflops fails: it divides by the batch size its hook on the root adds up, "
        "and the root's hooks never run (ZeroDivisionError)",
        "lstm-packed-sequence": "ptflops fails: its LSTM hook reads input.shape of a PackedSequence (AttributeError)",
        "lazy-linear": "ptflops fails: the LazyLinear gets no __flops__ counter (its type has no hook when ptflops "
        "starts) and has become a Linear by the time ptflops sums the counters (AttributeError)",
    },
)

def _no_batch(inputs: ModelInputs) -> str:
    """Why ptflops' batch size, by which it divides the module counts, is 0."""
    first = inputs.args[0] if inputs.args else None
    try:
        empty = first is not None and len(first) == 0
    except TypeError:  # (a 0-dim tensor, a number)
        empty = False
    if empty:
        return ("ptflops divides the module counts by the batch size, the length of the model's first positional "
                "input, which is 0 here")
    return ("ptflops divides the module counts by the batch size that its forward hook on the model's root adds "
            "up, and that hook never ran: the root's __call__ does not go through nn.Module.__call__ (gpytorch's "
            "modules call their forward themselves)")


_Snapshot = list[tuple[Any, str, bool, Any]]
"""(namespace, attribute, was it the namespace's own attribute, value)."""


class PtflopsPytorchAdapter(Adapter):
    """ptflops' pytorch engine, run step by step so that the parts can be read.

    The adapter makes exactly the calls ``get_flops_pytorch`` makes
    (``add_flops_counting_methods``, ``eval()``, ``start_flops_count``,
    ``patch_functional``, ``patch_tensor_ops``, one forward,
    ``compute_average_flops_cost``, ``stop_flops_count``) but calls the model
    itself, as ``model(*args, **kwargs)``; so several positional inputs and
    keyword inputs need no wrapper. It reads every module's ``__flops__``
    before ``stop_flops_count`` deletes them.

    * ``raw_total`` is what ptflops returns:
      ``int(module_total / __batch_counter__ + functional_total)``.
    * ``macs`` undoes the division of the module part only:
      ``module_total + functional_total``, both already whole-batch, i.e. the
      division is undone exactly whatever ``__batch_counter__`` was (it is
      dim 0 of the first positional input, which for sequence-first inputs
      is the sequence length, and 1 when there is no positional input).
    * ``per_module`` is the tree ptflops' ``accumulate_flops`` walks,
      whole-batch: ``""`` is the root and holds the module total only
      (functional counts are attributed to no module); children of a
      supported module are not visited and are absent.
    * ``per_op`` holds the functional counts by patched function,
      e.g. ``"F.relu"``, ``"torch.matmul"``, ``"Tensor.add"``.
    * ``unsupported`` maps each class name ptflops reports as "treated as a
      zero-op" to the number of visited instances that do work of their own
      (leaves, and modules holding parameters directly). NB: ptflops also
      warns about modules whose work the functional patches do count (e.g.
      ``nn.Softmax`` through ``F.softmax``); they are listed all the same.

    NB: like ptflops, the forward runs with autograd enabled and leaves the
    model in eval mode; every patched torch function and ptflops' global
    custom-hook table are restored, even when the forward raises.
    """

    backend = BACKEND

    def options(self) -> dict[str, Any]:
        return {**common_options("pytorch"), "backend_specific_config": {"count_functional": True}}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        from ptflops import pytorch_engine as engine
        from ptflops import pytorch_ops

        ost = io.StringIO()
        names = _functional_names(pytorch_ops.FUNCTIONAL_MAPPING, pytorch_ops.TENSOR_OPS_MAPPING)
        functional = _NamedCollector(names)
        tensor_ops = _NamedCollector(names)
        saved_custom = engine.CUSTOM_MODULES_MAPPING
        snapshot = _snapshot(pytorch_ops.FUNCTIONAL_MAPPING, pytorch_ops.TENSOR_OPS_MAPPING)
        try:
            engine.CUSTOM_MODULES_MAPPING = {}
            flops_model = engine.add_flops_counting_methods(model)
            flops_model.eval()
            flops_model.start_flops_count(ost=ost, verbose=True, ignore_list=[])
            try:
                engine.patch_functional(functional)
                engine.patch_tensor_ops(tensor_ops)
                flops_model(*inputs.args, **inputs.kwargs)
            finally:
                _restore(snapshot)
            try:
                module_average, params = flops_model.compute_average_flops_cost()
            except ZeroDivisionError as exc:  # the batch it divides by is 0
                raise named_failure(exc, _no_batch(inputs)) from exc
            tree = _module_tree(flops_model, engine.is_supported_instance)
        finally:
            _restore(snapshot)
            # As ptflops' reset_environment: remove hooks and __flops__ (kept
            # only on this copy of the model anyway).
            if hasattr(model, "stop_flops_count"):
                model.stop_flops_count()
            engine.CUSTOM_MODULES_MAPPING = saved_custom

        # Same expression and order as get_flops_pytorch.
        reported = module_average
        reported += sum(functional)
        reported += sum(tensor_ops)
        per_op: defaultdict[str, float] = defaultdict(float)
        for collector in (functional, tensor_ops):
            for op_name, value in collector.by_name.items():
                per_op[op_name] += value
        messages = [line.strip() for line in ost.getvalue().splitlines() if line.strip()]
        zero_op_types = {m.group(1) for m in map(ZERO_OP_MODULE.search, messages) if m}
        modules = dict(model.named_modules())
        return RawCount(
            raw_total=int(reported),
            macs=int(round(tree[""] + sum(functional) + sum(tensor_ops))),
            params=int(params),
            per_module=tree,
            per_op={k: int(round(v)) for k, v in per_op.items()},
            # ptflops names a zero-op module by its class's __name__ (peft's lora.Linear reads "Linear"):
            # flagged are the modules of that name it has no hook for, as it decides.
            unsupported=count_instances((modules[p] for p in tree if p in modules),
                                        lambda m: type(m).__name__ in zero_op_types
                                        and not engine.is_supported_instance(m)),
            warnings=messages,
        )


class _NamedCollector(list):
    """ptflops' functional-count list that also sums counts by function name.

    ptflops' ``torch_function_wrapper.__call__`` calls ``collector.append``
    with the count and keeps the original function in ``self.op``.
    NB: the name is read from the caller's frame (``self.op``); if ptflops
    ever calls ``append`` from elsewhere, the count is filed under
    ``"functional"`` and the total is unaffected.
    """

    def __init__(self, names: dict[int, str]) -> None:
        super().__init__()
        self._names = names
        self.by_name: defaultdict[str, float] = defaultdict(float)

    def append(self, value: Any) -> None:
        caller = sys._getframe(1).f_locals.get("self")
        op = getattr(caller, "op", None)
        self.by_name[self._names.get(id(op), "functional")] += float(value)
        super().append(value)


def _functional_names(functional: dict[Any, Any], tensor_ops: dict[Any, Any]) -> dict[int, str]:
    """``id(original function) -> "F.relu" / "torch.matmul" / "Tensor.matmul"``."""
    names = {id(fn): f"F.{fn.__name__}" for fn in functional}
    for fn in tensor_ops:
        owner = "Tensor" if hasattr(fn, "__objclass__") else "torch"
        names[id(fn)] = f"{owner}.{fn.__name__}"
    return names


def _snapshot(functional: dict[Any, Any], tensor_ops: dict[Any, Any]) -> _Snapshot:
    """Every attribute ptflops' patch functions may replace, as it is now."""
    import torch
    import torch.nn.functional as F

    targets = [(F, fn.__name__) for fn in functional]
    targets += [(ns, fn.__name__) for fn in tensor_ops for ns in (torch, torch.Tensor)]
    seen: set[tuple[int, str]] = set()
    out: _Snapshot = []
    for ns, attr in targets:
        if (id(ns), attr) in seen or not hasattr(ns, attr):
            continue
        seen.add((id(ns), attr))
        out.append((ns, attr, attr in vars(ns), getattr(ns, attr)))
    return out


def _restore(snapshot: _Snapshot) -> None:
    """Put every snapshotted attribute back; drop ones that were inherited.

    ptflops' own ``unpatch_tensor_ops`` leaves e.g. ``matmul`` as an own
    attribute of ``torch.Tensor`` (it was inherited from ``TensorBase``).
    """
    for ns, attr, was_own, value in snapshot:
        if was_own:
            setattr(ns, attr, value)
        elif attr in vars(ns):
            delattr(ns, attr)


def _module_tree(root: nn.Module, supported: Callable[[nn.Module], bool]) -> dict[str, int]:
    """Inclusive ``__flops__`` per module path, walked like ``accumulate_flops``."""
    out: dict[str, int] = {}

    def walk(module: nn.Module, path: str) -> int:
        if supported(module):
            total = int(getattr(module, "__flops__", 0))
        else:
            total = sum(walk(child, f"{path}.{name}" if path else name) for name, child in module.named_children())
        out[path] = total
        return total

    walk(root, "")
    return out


__all__ = ["PtflopsPytorchAdapter"]
