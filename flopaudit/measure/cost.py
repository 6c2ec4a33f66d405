"""Measuring one model's cost: latency, per-layer time and work, traffic, peak memory, ceilings.

:func:`measure_cost` runs where user code runs (a supervised worker, a
forked child of :func:`flopaudit.cost`, or the caller with isolation off).
In order, on the model's device and dtype and the current torch threads:

1. ``warmup`` untimed passes (at least one; the first measures the peak
   memory, :func:`~flopaudit.measure.memory.peak_memory`, and tells whether
   the forward needs autograd: :mod:`flopaudit.grad_forward`), then ``reps``
   timed forward passes and, among them, ``layer_passes`` passes with a
   timer at every module call (:func:`~flopaudit.measure.timing.time_passes`);
2. one reference count (:func:`flopaudit.reference.count`, canonical
   ruleset): MACs, FLOPs, parameters and every operator's bytes read and
   written, attributed to the module path running it;
3. the ceilings (:func:`~flopaudit.measure.ceilings.measure_ceilings`),
   once per process for each device, dtype and thread count.

A layer is a module path with operators of its own (the reference's
``module_path`` of an event); its FLOPs and bytes are the sum over those
operators, so the layers add up to the model's totals, and a path's own
bytes plus those of the paths under it are the reference's ``per_module``
figure for it. Module calls without operators of their own (containers,
``Identity``) are timed too; their time is the ``unattributed_ns`` of the
result, part of what the report shows as overhead.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from flopaudit.execution.protocol import CostRequest
from flopaudit.inputs import ModelInputs
from flopaudit.measure.records import Ceilings, LayerCost, ModelCost
from flopaudit.records import Status

_CEILINGS: dict[tuple[str, str, int], Ceilings] = {}
"""Ceilings measured in this process: (device, dtype, threads) -> ceilings."""

_CONTRACTIONS = ("conv", "matmul", "attention", "rnn")


def placement(model: nn.Module, inputs: ModelInputs) -> tuple[torch.device, torch.dtype]:
    """The device and floating dtype the model computes in: its first floating parameter or buffer's,
    else its first floating input's, else the CPU and float32."""
    for t in [*model.parameters(), *model.buffers(), *inputs.tensors()]:
        if t.is_floating_point():
            return t.device, t.dtype
    for t in [*model.parameters(), *inputs.tensors()]:
        return t.device, torch.float32
    return torch.device("cpu"), torch.float32


def ceilings_for(device: torch.device, dtype: torch.dtype) -> Ceilings:
    """The ceilings of this process's device, dtype and thread count, measured on first use."""
    from flopaudit.measure.ceilings import measure_ceilings

    key = (str(device), str(dtype), torch.get_num_threads())
    if key not in _CEILINGS:
        _CEILINGS[key] = measure_ceilings(device, dtype)
    return _CEILINGS[key]


def _kind(events: list[Any]) -> str:
    """What dominates a layer's own operators: its largest contraction's category (a convolution
    with one group per input channel is ``depthwise conv``, with several ``grouped conv``), else the
    category that moves the most bytes."""
    contractions = [e for e in events if e.category is not None and e.category.value in _CONTRACTIONS]
    if contractions:
        e = max(contractions, key=lambda e: e.macs)
        kind = e.category.value
        groups = e.arg("groups", 1) or 1
        if kind == "conv" and groups > 1:
            channels = e.input_shapes[0][1] if e.input_shapes and len(e.input_shapes[0]) > 1 else None
            kind = "depthwise conv" if groups == channels else "grouped conv"
        return kind
    moved: dict[str, int] = {}
    for e in events:
        name = e.category.value if e.category is not None else "unsupported"
        moved[name] = moved.get(name, 0) + e.bytes_read + e.bytes_written + e.flops
    return max(moved, key=lambda k: (moved[k], k)) if moved else "none"


def layer_costs(events: Any, own_ns: dict[str, int], calls: dict[str, int]) -> tuple[tuple[LayerCost, ...], int]:
    """Per-layer work (from the reference's events) joined with per-path own time; and the own time
    of the paths without operators (unattributed)."""
    by_path: dict[str, list[Any]] = {}
    for e in events:
        by_path.setdefault(e.module_path, []).append(e)
    layers = []
    for path, evs in by_path.items():
        layers.append(LayerCost(
            path=path, module_type=evs[0].module_type, kind=_kind(evs), calls=calls.get(path, 0),
            time_ns=own_ns.get(path, 0), macs=sum(e.macs for e in evs), flops=sum(e.flops for e in evs),
            bytes_read=sum(e.bytes_read for e in evs), bytes_written=sum(e.bytes_written for e in evs),
        ))
    unattributed = sum(t for p, t in own_ns.items() if p not in by_path)
    return tuple(layers), unattributed


def measure_cost(model: nn.Module, inputs: Any, request: CostRequest | None = None, *,
                 name: str = "model") -> ModelCost:
    """Measure ``model(*inputs)`` (see the module docstring); the model is left as it was."""
    from flopaudit.grad_forward import GRAD_FORWARD_NOTE, without_grad_if_it_runs
    from flopaudit.measure.memory import peak_memory
    from flopaudit.measure.timing import time_passes
    from flopaudit.reference import count

    request = request or CostRequest()
    inputs = ModelInputs.coerce(inputs)
    device, dtype = placement(model, inputs)
    # the first warm-up pass reads the peak memory, and tells whether the forward needs autograd
    (peak, method), grad = without_grad_if_it_runs(
        lambda no_grad: peak_memory(model, inputs.fresh(), device, no_grad=no_grad))
    passes = time_passes(
        model, inputs, warmup=max(1, request.warmup) - 1, reps=request.reps, layer_passes=request.layer_passes,
        device=device, no_grad=not grad)
    reference = count(model, inputs.fresh(), no_grad=not grad)
    layers, unattributed = layer_costs(reference.events, passes.layer_ns, passes.layer_calls) \
        if request.layer_passes else ((), 0)
    ceilings = ceilings_for(device, dtype) if request.ceilings else None
    notes = tuple(reference.notes) + ((GRAD_FORWARD_NOTE,) if grad else ())
    if reference.unsupported:
        ops = ", ".join(sorted(reference.unsupported))
        notes += (f"operators without a formula count 0 FLOPs : {ops}",)
    return ModelCost(
        model=name, status=Status.OK, device=str(device), dtype=str(dtype).replace("torch.", ""),
        threads=torch.get_num_threads(), batch_size=inputs.batch_size, inputs=inputs.describe(),
        warmup=max(1, request.warmup), samples_ns=passes.samples_ns, macs=reference.macs, flops=reference.flops,
        params=reference.params.unique, bytes_read=reference.totals.bytes_read,
        bytes_written=reference.totals.bytes_written, peak_memory=peak, memory_method=method, layers=layers,
        layer_passes=request.layer_passes, unattributed_ns=unattributed, ceilings=ceilings, notes=notes,
    )


__all__ = ["CostRequest", "measure_cost", "placement", "ceilings_for", "layer_costs"]
