"""calflops' ``calculate_flops``: patched ``torch.nn.functional`` calls and module hooks.

What calflops 0.3.2 counts (``calflops/calculate_pipline.py``,
``pytorch_ops.py``; verified by probes on torch 2.14). It descends from
DeepSpeed's flops profiler:

* While the model runs (in eval mode, ``model.eval()``, with autograd on),
  the ``torch.nn.functional`` functions ``linear``, ``conv1d/2d/3d``,
  ``conv_transpose1d/2d/3d``, the activations, norms, pools,
  ``interpolate``/``upsample``, ``softmax`` and ``embedding`` and the tensor
  functions ``torch.matmul``, ``Tensor.matmul``, ``torch.addmm``,
  ``Tensor.addmm``, ``torch.mul``/``Tensor.mul``, ``torch.add``/
  ``Tensor.add``, ``torch.einsum`` and ``torch.baddbmm`` are replaced by
  wrappers that record (FLOPs, MACs) for the call; ``@``, ``*``, ``+``,
  ``torch.bmm``, ``torch.mm`` and ``scaled_dot_product_attention`` are not.
* MACs come only from ``linear`` (``numel(x) * out``), convolutions
  (``N * prod(out spatial) * (Cin) * (Cout/g) * K``; transposed ones by the
  *input* size), ``matmul`` (``prod(a.shape) * b.shape[-1]``) and
  ``addmm``/``baddbmm`` (``prod(mat1.shape) * mat2.shape[-1]``); activations,
  norms, pools, softmax and elementwise calls add FLOPs only. ``nn.LSTM``,
  ``nn.GRU``, ``nn.RNN`` and their cells are priced by a module hook in FLOPs
  only (0 MACs).
* Its interpolate rule reads ``scale_factor`` as one factor per spatial
  dimension only when the tuple's length is ``len(input)`` (the batch
  size) and otherwise raises the tuple to a power: ``F.interpolate`` with
  ``scale_factor=(2.0, 2.0)`` on a batch of one fails with a TypeError,
  named as such in the cell.
* A forward pre-hook/hook pair on every other module collects the calls made
  during that module's forward into the module's ``__macs__``; the total is a
  walk of ``children()`` from the root, so a module shared by two parents is
  added once per parent.

Results: FLOPs, MACs and the *trainable* parameter count
(``sum(p.numel() for p in module.parameters() if p.requires_grad)``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flopaudit.adapters._failures import type_named
from flopaudit.adapters.base import Adapter, RawCount
from flopaudit.adapters.descriptor import SCRIPT_MODULE_CASES, Backend, MetaSupport
from flopaudit.errors import BackendFailure, NotApplicable
from flopaudit.records import Granularity, Unit

if TYPE_CHECKING:
    from torch import nn

    from flopaudit.inputs import ModelInputs
    from flopaudit.passes import Pass


def walk_totals(model: nn.Module, attribute: str, names: dict[int, str]) -> dict[str, int]:
    """Per-module totals of a counter that stores ``attribute`` on every module
    and sums it over ``children()`` recursively (calflops' and DeepSpeed's
    ``get_module_macs`` walk): each module's own value plus its subtree's,
    under the module's first dotted name (``names``: ``id(module)`` -> path).
    A module reached twice in the walk keeps the larger of its totals."""
    out: dict[str, int] = {}

    def visit(module: nn.Module) -> int:
        total = int(getattr(module, attribute, 0) or 0)
        for child in module.children():
            total += visit(child)
        path = names.get(id(module))
        if path is not None:
            out[path] = max(out.get(path, 0), total)
        return total

    visit(model)
    return out


@contextlib.contextmanager
def collectors_emptied(module: Any) -> Iterator[None]:
    """Empty the module-level lists a profiler of calflops' family collects
    into (``module_flop_count``, ``module_mac_count``, ``old_functions``),
    before and after: a count that fails half-way leaves entries there."""

    def empty() -> None:
        for name in ("module_flop_count", "module_mac_count", "old_functions"):
            getattr(module, name).clear()

    empty()
    try:
        yield
    finally:
        empty()


def _check_movable(inputs: ModelInputs) -> None:
    """calflops moves its inputs to the model's device with ``.to(device)``: every keyword
    argument's value where there are any, else every positional argument. A model given one
    that has no ``.to`` (a flag, a list of images, a dict of targets) cannot be counted by it:
    :class:`NotApplicable` (its ``AttributeError: 'bool' object has no attribute 'to'``)."""
    moved = list(inputs.kwargs.items()) if inputs.kwargs else [(f"argument {i}", a) for i, a in enumerate(inputs.args)]
    refused = [f"{type_named(value)} as {name}" for name, value in moved if not callable(getattr(value, "to", None))]
    if refused:
        raise NotApplicable(
            "calflops moves every input with .to(device) (each keyword argument's value where there are any, "
            f"else each positional argument); this model takes {', '.join(refused)}"
        )


BACKEND = Backend(
    name="calflops",
    adapter="CalflopsAdapter",
    description=(
        "calflops calculate_flops: patched torch.nn.functional/tensor calls collected by module hooks; MACs, FLOPs"
    ),
    unit=Unit.MAC,
    granularity=Granularity.MODULE_HOOKS,
    module="calflops",
    distribution="calflops",
    install="pip install calflops",
    ruleset="flopaudit.reference.backend_rulesets.calflops",
    # The same on meta as on CPU but where meta runs other code (probed on the hard cases, the
    # transformers configs and the light torchvision and timm models): attention-frozen-fast-path
    # and knn-point-grouping.
    meta=MetaSupport(True, "counted on the meta device, where nn.MultiheadAttention does not take its fused "
                     "inference fast path and torch.cdist runs as a matrix product: attention and distance work "
                     "this backend misses on CPU is counted on meta"),
    known_divergences={
        "vmap-ensemble": "calflops fails: it moves the model to its first parameter's device, and the skeleton vmap "
        "runs is on meta (NotImplementedError: Cannot copy out of meta tensor)",
        "lstm-dynamic-quantized": "calflops fails: it reads next(model.parameters()).device, and a dynamically "
        "quantized model has no parameter left (its weights are packed objects): StopIteration",
        "params-lazy": "calflops fails: it counts parameters before the forward, when a lazy "
        "module's are still uninitialised (ValueError); a crash is not predicted",
        "buffers-only": "calflops fails: it reads next(model.parameters()).device and this model has no parameters "
        "(StopIteration); a crash is not predicted",
        "conv2d-unbatched": "calflops fails: its conv formula asserts weight.shape[1] * groups == input.shape[1], "
        "false for an unbatched (C, H, W) input; a crash is not predicted",
        "lazy-linear": "calflops fails: it counts parameters before the forward, when the LazyLinear's are still "
        "uninitialised (ValueError); a crash is not predicted",
        "lstm-packed-sequence": "calflops fails: its LSTM hook reads input.shape of a PackedSequence (AttributeError)",
        "static-quantized-residual": "calflops fails: it reads next(model.parameters()).device, and a statically "
        "quantized model has no parameter left (its weights are packed objects): StopIteration",
        **dict.fromkeys(SCRIPT_MODULE_CASES, "calflops fails: its forward pre-hooks cannot be registered on a "
                        "ScriptModule"),
    },
    order=110,
    passes=("inference", "train"),
    inputs_check=_check_movable,
)


class CalflopsAdapter(Adapter):
    """``calculate_flops(model, args=..., kwargs=..., forward_mode="forward", ...)``.

    * ``raw_total`` and ``macs``: calflops' MACs (whole batch, the unit it
      reports); ``extra``: ``flops`` (its FLOPs: 2 x MACs plus bias,
      activations, norms, pools, softmax and elementwise calls),
      ``params_trainable``.
    * ``params``: calflops' parameter count, which is the *trainable*
      parameters only.
    * ``per_module``: every module's ``__macs__`` summed over its children
      (calflops' own walk), read before calflops deletes them.

    Inputs: positional tensors as ``args``, keyword tensors as ``kwargs``
    (calflops moves every input with ``.to(device)``: non-tensor inputs make
    it fail). Options: ``include_backPropagation`` (default False, forward
    only; True multiplies FLOPs and MACs by ``1 + compute_bp_factor``, for
    training-step counts) and ``compute_bp_factor`` (2.0).

    A training step (``--pass train``) is calflops' own: the forward counted
    as above with ``include_backPropagation=True``, so MACs and FLOPs times
    ``1 + compute_bp_factor``; calflops runs no loss, backward or optimizer
    step (the ruleset ``calflops:train`` books what that multiple assumes).
    """

    backend = BACKEND


    def __init__(self, include_backPropagation: bool = False, compute_bp_factor: float = 2.0) -> None:  # noqa: N803
        self.include_backPropagation = include_backPropagation
        self.compute_bp_factor = compute_bp_factor

    def options(self) -> dict[str, Any]:
        return {
            "forward_mode": "forward",
            "include_backPropagation": self.include_backPropagation,
            "compute_bp_factor": self.compute_bp_factor,
            "print_results": False,
            "output_as_string": False,
            "ignore_modules": None,
        }

    def train_options(self) -> dict[str, Any]:
        return {**self.options(), "include_backPropagation": True}

    def _count(self, model: nn.Module, inputs: ModelInputs) -> RawCount:
        return self._calculate(model, inputs, self.options())

    def _count_train(self, model: nn.Module, inputs: ModelInputs, step: Pass) -> RawCount:
        return self._calculate(model, inputs, self.train_options())

    def _calculate(self, model: nn.Module, inputs: ModelInputs, opts: dict[str, Any]) -> RawCount:
        import calflops.calculate_pipline as pipeline_module
        from calflops import calculate_flops
        from calflops.calculate_pipline import CalFlopsPipline

        from flopaudit.adapters._failures import (
            conv_argument_as_list,
            einsum_operand_list,
            interpolate_scale_factors,
            located_assertions,
            named_failure,
        )
        from flopaudit.adapters._restore import namespaces_restored, torch_namespaces
        from flopaudit.module_paths import first_names

        names = first_names(model)
        per_module: dict[str, int] = {}
        original_end = CalFlopsPipline.end_flops_calculate

        def end_and_keep(pipeline: Any) -> None:
            if pipeline.model is model and pipeline.pipline_started:
                per_module.update(walk_totals(model, "__macs__", names))
            original_end(pipeline)

        CalFlopsPipline.end_flops_calculate = end_and_keep  # type: ignore[method-assign]
        try:
            with namespaces_restored(torch_namespaces()), collectors_emptied(pipeline_module), located_assertions():
                flops, macs, params = calculate_flops(
                    model,
                    args=list(inputs.args),
                    kwargs=dict(inputs.kwargs),
                    forward_mode=opts["forward_mode"],
                    include_backPropagation=opts["include_backPropagation"],
                    compute_bp_factor=opts["compute_bp_factor"],
                    print_results=opts["print_results"],
                    print_detailed=False,
                    output_as_string=opts["output_as_string"],
                    ignore_modules=opts["ignore_modules"],
                )
        except (AttributeError, TypeError) as exc:
            cause = (einsum_operand_list(exc, "calflops.pytorch_ops", model) if isinstance(exc, AttributeError)
                     else interpolate_scale_factors(exc, "calflops.pytorch_ops", model)
                     or conv_argument_as_list(exc, "calflops.pytorch_ops", model))
            if cause is None:
                raise
            raise named_failure(exc, cause) from exc
        except NotImplementedError as exc:
            moved = _moved_off_meta(exc, model)
            if moved is None:
                raise
            raise named_failure(exc, moved) from exc
        except StopIteration as exc:
            if next(model.parameters(), None) is not None:
                raise
            raise BackendFailure("calflops reads next(model.parameters()).device: a model without parameters "
                                 "raises StopIteration there") from exc
        finally:
            CalFlopsPipline.end_flops_calculate = original_end  # type: ignore[method-assign]
        if opts["include_backPropagation"]:
            factor = 1 + opts["compute_bp_factor"]
            per_module = {k: round(v * factor) for k, v in per_module.items()}
        return RawCount(
            raw_total=macs,
            macs=round(macs),
            params=int(params),
            per_module=per_module,
            extra={"flops": round(flops), "params_trainable": int(params)},
        )


def _moved_off_meta(exc: BaseException, model: nn.Module) -> str | None:
    """calflops moves the model to its first parameter's device (``model.to(next(model.parameters()).device)``):
    a model on the meta device but for a parameter made on another one (transformers' Wav2Vec2 makes
    ``masked_spec_embed`` with ``torch.Tensor(n)``, which ignores the default device) is moved off meta,
    whose tensors hold no data to copy. What that parameter is; None for any other error."""
    if "Cannot copy out of meta tensor" not in str(exc):
        return None
    name, first = next(iter(model.named_parameters()), (None, None))
    if first is None or first.is_meta or not any(p.is_meta for p in model.parameters()):
        return None
    return (f"calflops moves the model to the device of its first parameter ('{name}', on {first.device.type}), "
            "and its other parameters are on the meta device, whose tensors hold no data to copy")


__all__ = ["CalflopsAdapter", "collectors_emptied", "walk_totals"]
