"""Timing forward passes: the whole pass, and each module path's own share of it.

:func:`time_passes` times whole forward passes (after a warm-up, with the
cyclic garbage collector paused, as ``timeit`` does; on CUDA the device is
synchronised after each pass, so a time is what the caller waits), and
among them runs passes with a timer at every module call: global
module forward pre/post hooks (the ones the reference counter uses, so the
model's own hook dictionaries stay empty and fused fast paths still run)
take a timestamp when a module's ``forward`` starts and ends, on the CPU
with ``perf_counter_ns``, on CUDA with a timing event recorded on the
current stream (kernels run asynchronously; the events measure when the
device reached each point, read after the pass). A module call's own time
is its time less its child calls'; a path's is the sum over its calls.
Paths are the model's ``named_modules()`` names (a shared module under its
first name), the names the reference counter attributes operators to.
# NB: the hooks themselves cost a few microseconds per module call, which
# lands in the parent's own time; modules called outside ``__call__``
# (``self.block.forward(x)``) are not seen, and their time is their caller's.
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from flopaudit.inputs import ModelInputs
from flopaudit.module_paths import first_names


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _forward(model: nn.Module, inputs: ModelInputs) -> None:
    model(*inputs.args, **inputs.kwargs)


class _Clock:
    """Timestamps on the CPU (ints) or on a CUDA stream (events, converted after the pass)."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def now(self) -> Any:
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter_ns()

    def to_ns(self, marks: list[Any]) -> list[int]:
        if not self.cuda or not marks:
            return list(marks)
        torch.cuda.synchronize()
        first = marks[0]
        return [int(round(first.elapsed_time(m) * 1e6)) for m in marks]


def _own_times(events: list[tuple[str, bool]], stamps: list[int]) -> tuple[dict[str, int], dict[str, int]]:
    """Own time and calls per path from the open/close marks of one pass (a call's time less its children's)."""
    own: dict[str, int] = {}
    calls: dict[str, int] = {}
    stack: list[list[Any]] = []  # [path, start, children's time]
    for (path, opens), t in zip(events, stamps):
        if opens:
            stack.append([path, t, 0])
            continue
        if not stack or stack[-1][0] != path:  # pragma: no cover - hooks always pair up
            continue
        _, start, children = stack.pop()
        inclusive = t - start
        own[path] = own.get(path, 0) + inclusive - children
        calls[path] = calls.get(path, 0) + 1
        if stack:
            stack[-1][2] += inclusive
    return own, calls


class _LayerTimer:
    """Global module hooks that mark when each module call of one model starts and ends."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.names = first_names(model)
        self.clock = _Clock(device)
        self.marks: list[Any] = []
        self.events: list[tuple[str, bool]] = []

    def pre(self, module: nn.Module, args: Any) -> None:
        path = self.names.get(id(module))
        if path is not None:
            self.events.append((path, True))
            self.marks.append(self.clock.now())

    def post(self, module: nn.Module, args: Any, output: Any) -> None:
        stamp = self.clock.now()
        path = self.names.get(id(module))
        if path is not None:
            self.events.append((path, False))
            self.marks.append(stamp)

    def run(self, model: nn.Module, inputs: ModelInputs) -> tuple[dict[str, int], dict[str, int]]:
        """One hooked pass: each path's own time (ns) and calls."""
        self.marks.clear()
        self.events.clear()
        handles = [register_module_forward_pre_hook(self.pre), register_module_forward_hook(self.post, always_call=True)]
        try:
            _forward(model, inputs)
        finally:
            for h in handles:
                h.remove()
        return _own_times(list(self.events), self.clock.to_ns(list(self.marks)))


@dataclass(frozen=True)
class Passes:
    """What :func:`time_passes` measured."""

    samples_ns: tuple[int, ...]
    """Each timed (unhooked) pass."""
    layer_ns: dict[str, int]
    """Each module path's own time in the median hooked pass (:func:`median_pass`)."""
    layer_calls: dict[str, int]
    """Calls of each module path in one pass."""


def time_passes(model: nn.Module, inputs: ModelInputs, *, warmup: int, reps: int, layer_passes: int,
                device: torch.device, no_grad: bool = True) -> Passes:
    """``warmup`` untimed passes, then ``reps`` timed ones and ``layer_passes`` hooked ones, interleaved
    (spread evenly among the timed ones), so that both see the machine in the same state; under
    ``no_grad``, with the cyclic garbage collector paused, each on its own copy of ``inputs``
    (:meth:`~flopaudit.inputs.ModelInputs.fresh`, made outside the timed span). ``no_grad=False``: with
    autograd on, for a forward that differentiates (:mod:`flopaudit.grad_forward`)."""
    timer = _LayerTimer(model, device)
    hooked_at = {round((k + 1) * (reps + layer_passes) / (layer_passes + 1)) for k in range(layer_passes)} \
        if layer_passes else set()
    samples: list[int] = []
    per_pass: list[dict[str, int]] = []
    calls: dict[str, int] = {}
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with torch.no_grad() if no_grad else torch.enable_grad():
            for _ in range(warmup):
                _forward(model, inputs.fresh())
            synchronize(device)
            for k in range(reps + layer_passes):
                given = inputs.fresh()  # every pass from the inputs as given, copied before the clock starts
                if k in hooked_at and len(per_pass) < layer_passes:
                    own, calls = timer.run(model, given)
                    synchronize(device)
                    per_pass.append(own)
                    continue
                start = time.perf_counter_ns()
                _forward(model, given)
                synchronize(device)
                samples.append(time.perf_counter_ns() - start)
    finally:
        if was_enabled:
            gc.enable()
    return Passes(tuple(samples), median_pass(per_pass), calls)


def median_pass(per_pass: list[dict[str, int]]) -> dict[str, int]:
    """The per-path times of the median pass by total time (the mean of the two middle passes for an
    even number), so the paths add up to that pass's total.

    # NB: a median per path would not: on a shared machine every pass has a few layers slowed by
    # another process, and a median per path drops them all, adding up to less than any real pass.
    """
    if not per_pass:
        return {}
    ranked = sorted(per_pass, key=lambda own: sum(own.values()))
    mid = len(ranked) // 2
    kept = ranked[mid:mid + 1] if len(ranked) % 2 else ranked[mid - 1:mid + 1]
    paths = {p for own in kept for p in own}
    return {p: int(round(sum(own.get(p, 0) for own in kept) / len(kept))) for p in sorted(paths)}


__all__ = ["Passes", "synchronize", "time_passes"]
